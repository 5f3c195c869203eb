// Package pbx defines what pbxd needs from a PBX: the Backend interface that
// the reconciler drives and the value types that cross it. It imports no
// domain package, so the built-in registrar (package sip) and the Asterisk
// backend (package pbx/asterisk) can both implement it.
package pbx

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// LineConfig is the desired (or, from List, the observed) PBX state of one
// line. The database is the source of truth; a backend holds a cache of it.
type LineConfig struct {
	// ID is the line's stable id (a UUID). Backends derive their object ids
	// from it, so objects pbxd owns are recognisable.
	ID string
	// Node names the Asterisk node the line's account lives on; empty means
	// the default node. The built-in registrar ignores it.
	Node string
	// Domain is the account's SIP domain (the digest realm).
	Domain string
	// Username is the SIP username (the user part of the AOR).
	Username string
	// Extension is the line's internal number.
	Extension string
	// Context is the dial context given by the line's package.
	Context string
	// CallerID is the display name shown on calls; the number is Extension.
	CallerID string
	// Password is the SIP password in clear. Never log it. Asterisk needs it
	// for userpass auth; the built-in registrar only uses the HA1 values.
	Password string
	// HA1MD5 and HA1SHA256 are the RFC 7616 digests of username:realm:password.
	HA1MD5    string
	HA1SHA256 string
	// Suspended lines must not be able to register or call.
	Suspended bool
	// MaxContacts bounds the simultaneous registrations of the line.
	MaxContacts int
	// Revision is the database revision this config was built from.
	Revision int64
	// Drift is set by List when the PBX holds the line differently in a
	// setting LineConfig does not carry (transport, codecs, object links):
	// a short description, so the reconciler applies the line again. It is
	// always empty in a desired config.
	Drift string
}

// SameConfig reports whether held (as listed by a backend) matches desired in
// every field a backend stores, and the backend saw no drift in the settings
// it owns. Revision and the HA1 values are not compared: the revision is
// bookkeeping and the HA1 values derive from the password.
func SameConfig(desired, held LineConfig) bool {
	return held.Drift == "" &&
		desired.ID == held.ID &&
		desired.Domain == held.Domain &&
		desired.Username == held.Username &&
		desired.Extension == held.Extension &&
		desired.Context == held.Context &&
		desired.CallerID == held.CallerID &&
		desired.Password == held.Password &&
		desired.Suspended == held.Suspended &&
		desired.MaxContacts == held.MaxContacts
}

// Contact is one registered binding of a line.
type Contact struct {
	URI       string `json:"uri"`
	UserAgent string `json:"user_agent,omitempty"`
	Source    string `json:"source,omitempty"`
	// Expires is when the binding lapses unless refreshed; zero (left out
	// of the JSON) when the PBX did not say.
	Expires time.Time `json:"expires"`
	// Status is the PBX's reachability of the contact (the qualify
	// result): one of the Contact* constants, or empty when the PBX does
	// not check (the built-in registrar) or did not say yet.
	Status string `json:"status,omitempty"`
}

// Contact statuses, as Asterisk's ContactStatusChange reports them.
const (
	ContactReachable    = "reachable"
	ContactUnreachable  = "unreachable"
	ContactUnknown      = "unknown"      // qualify on, no answer yet
	ContactNonQualified = "nonqualified" // qualify off: assumed reachable
)

// Usable reports whether calls can reach the contact: reachable, not
// qualified, or of a PBX that does not check.
func (c Contact) Usable() bool {
	return c.Status == "" || c.Status == ContactReachable || c.Status == ContactNonQualified
}

// MarshalJSON leaves out an unknown expiry instead of rendering
// "0001-01-01T00:00:00Z".
func (c Contact) MarshalJSON() ([]byte, error) {
	type plain Contact
	var exp *time.Time
	if !c.Expires.IsZero() {
		exp = &c.Expires
	}
	return json.Marshal(struct {
		plain
		Expires *time.Time `json:"expires,omitempty"`
	}{plain(c), exp})
}

// Registered reports whether any of contacts is usable.
func Registered(contacts []Contact) bool {
	for _, c := range contacts {
		if c.Usable() {
			return true
		}
	}
	return false
}

// RegistrationEvent reports the registration state of one line after a
// change: the full set of its current contacts, not a delta, so applying
// events in order always converges.
type RegistrationEvent struct {
	LineID   string
	Contacts []Contact
	At       time.Time
}

// Registered reports whether the line has at least one usable contact.
func (e RegistrationEvent) Registered() bool { return Registered(e.Contacts) }

// Backend is a PBX that pbxd keeps equal to the database.
type Backend interface {
	// Name is a short label for logs and metrics ("builtin", "asterisk").
	Name() string
	// Apply makes the PBX hold exactly this line config. It is idempotent.
	Apply(ctx context.Context, line LineConfig) error
	// Remove deletes the line from the PBX; removing an absent line is not an
	// error. Its registrations are dropped.
	Remove(ctx context.Context, lineID string) error
	// List returns every line pbxd owns on the PBX, as the PBX holds it, so
	// the reconciler can repair drift. Objects pbxd does not own (configured
	// by hand) are never listed.
	List(ctx context.Context) ([]LineConfig, error)
	// Events streams registration changes. The channel is shared by all
	// callers and closed when the backend stops.
	Events() <-chan RegistrationEvent
	// Connected reports whether the PBX can be reached now.
	Connected() bool
}

// The optional capabilities below are found by type assertion on a
// Backend. A backend that has one declares it with a compile-time
// assertion (var _ pbx.Resyncer = (*Backend)(nil)), so a renamed method
// fails the build instead of silently losing the capability, and pbxtest
// exercises every capability a backend has.

// Resyncer is implemented by backends that learn they must be fully resynced
// (Asterisk restarted or reconnected): a value arrives on the channel.
type Resyncer interface {
	Resync() <-chan struct{}
}

// ListedApplier is implemented by backends that can apply a resync's
// repair without reading the line again: held is what the List that resync
// called reported for the line (nil: the List did not report it). The
// backend decides whether what its List read is still good enough; it must
// never skip a write the line needs.
type ListedApplier interface {
	ApplyListed(ctx context.Context, desired LineConfig, held *LineConfig) error
}

// Preparer is implemented by backends for which creating many lines costs
// less when every line's supporting objects are created before any of
// them is applied (Asterisk: AORs before endpoints). Prepare is a hint:
// the lines' applies follow and must do whatever it left undone.
type Preparer interface {
	Prepare(ctx context.Context, lines []LineConfig) error
}

// ErrUnavailable is returned (wrapped) when the PBX cannot be reached; the
// reconciler retries such errors with backoff.
var ErrUnavailable = errors.New("pbx unavailable")

// NumberRouter is implemented by backends that route inbound calls to
// phone numbers (DIDs): a call arriving from a trunk for a routed number
// reaches the endpoint of the line it is routed to. The reconciler keeps
// the routes equal to the numbers assigned in the database. The built-in
// registrar places no calls and does not implement it.
type NumberRouter interface {
	// RouteTarget is what calls to a number assigned to line reach, as
	// HeldRoute reports it (Asterisk: the line's endpoint name).
	RouteTarget(line LineConfig) string
	// SetRoute routes number (E.164) on node ("" the default node) to
	// target; an empty target removes the route. It is idempotent.
	SetRoute(ctx context.Context, node, number, target string) error
	// HeldRoute reads the target the PBX holds for number on node, ""
	// when the number is not routed.
	HeldRoute(ctx context.Context, node, number string) (string, error)
}

// Splitter is implemented by backends made of several PBX nodes whose
// lines can be reconciled apart (Asterisk). Split returns one Backend per
// node, holding that node's lines only (List, Remove, Events, Resync and
// Connected are the node's); from then on registration events and resync
// signals come from those, and the whole backend's Events and Resync stay
// silent. The reconciler calls it once, before the backend runs, so that
// several pbxd instances can share the nodes out, one owner per node.
type Splitter interface {
	Split() []Node
}

// Node is one node of a Splitter's backend.
type Node struct {
	// Name is the node's name, as accounts name it (LineConfig.Node).
	Name string
	// Default is set on the node that holds the lines of accounts naming
	// no node.
	Default bool
	// Backend holds the node's lines only. It has the optional
	// capabilities of the whole backend.
	Backend Backend
}

// NodeRemover is implemented by backends with several nodes (Asterisk) on
// which a line can be held by a node other than its account's: an account
// move copies the lines to the new node first and removes them from the
// old one only once every line is applied there. Apply never removes a
// line from another node; RemoveFrom does, on the named node only.
// Removing an absent line is not an error.
type NodeRemover interface {
	RemoveFrom(ctx context.Context, node, lineID string) error
}

package asterisk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/pbxd/pbxd/pbx"
)

// node is one Asterisk server: a context-aware HTTP client for ARI
// requests (see send), pbxd's own events websocket reader, the index of the
// endpoints pbxd owns there and the contacts of its lines.
type node struct {
	b         *Backend
	cfg       NodeConfig
	http      *http.Client
	pace      *pacer // bounds and paces writes (see call)
	aors      *aorQueue
	connected atomic.Bool
	// subscribed is whether the application is subscribed to PJSIP
	// endpoint events on the current websocket (see subscribe).
	subscribed atomic.Bool

	mu       sync.Mutex
	contacts map[string]map[string]pbx.Contact // line id → uri → contact
	// fills are contacts whose expiry and user agent are still to be read
	// (ARI events do not carry them); see fillContacts.
	fills chan contactRef

	// The index: which endpoint (named user@domain) holds which line.
	// Entries are added by Apply and by scans; a stale entry is harmless
	// (every delete checks the endpoint's owner first).
	idxMu   sync.Mutex
	byLine  map[string]string   // line id → endpoint name
	byName  map[string]string   // endpoint name → line id
	extra   map[string][]string // line id → other endpoints claiming it (to delete)
	indexed bool                // a full scan has completed once
	scanMu  sync.Mutex          // one index scan at a time

	// listed is what the last List read (see listedState); nil when
	// dropped. Guarded by idxMu.
	listed *listedState
	// prepared is what Prepare wrote of the lines it created, line id →
	// entry (see takePrepared). Guarded by idxMu.
	prepared map[string]preparedLine

	// view is the node's own backend once the backend is split (see
	// Split): its events and resync signals go there.
	view *nodeBackend

	// names serialises the read-then-write of one endpoint name (apply,
	// removeEndpoint, Prepare's aor).
	names nameLocks
}

// preparedLine is a line whose auth and aor Prepare has just created with
// every attribute pbxd owns, and whose endpoint name no PJSIP endpoint
// held once Asterisk had run those writes.
type preparedLine struct {
	at        time.Time
	name      string
	auth, aor map[string]string
}

// preparedTTL bounds how long what Prepare wrote stands in for reading the
// objects again: long enough for the endpoint phase of a big push.
const preparedTTL = 15 * time.Minute

// listedTTL bounds how long what List read may stand in for Apply's GETs.
const listedTTL = time.Minute

// listedState is what the last List read on the node, so that applying
// the repairs of the resync that called it needs no second read of the
// same objects (applyListed). Each line's entry is used at most once and
// is dropped by any write pbxd makes to the line; the whole state is
// dropped when the node (re)connects, restarted or failed a health check,
// and after listedTTL (with 100,000 lines it holds hundreds of MB: a resync
// that repaired nothing would otherwise keep it until the next List).
type listedState struct {
	at    time.Time              // when the List began
	ready bool                   // the List completed and filled names and lines
	stale map[string]bool        // lines written while the List ran: not filled
	names map[string]bool        // every PJSIP endpoint /endpoints listed (owned or not)
	lines map[string]*listedLine // line id → its objects as read
}

type listedLine struct {
	name          string            // endpoint and aor name
	ep, auth, aor map[string]string // nil: absent
}

// dropListed forgets what List read and what Prepare wrote: the node
// (re)connected, restarted or failed a health check.
func (n *node) dropListed() {
	n.idxMu.Lock()
	n.listed = nil
	n.prepared = nil
	n.idxMu.Unlock()
}

// dropListedIf forgets st if it is still the node's.
func (n *node) dropListedIf(st *listedState) {
	n.idxMu.Lock()
	if n.listed == st {
		n.listed = nil
	}
	n.idxMu.Unlock()
}

// forgetListed drops one line's entries: pbxd is about to write its
// objects.
func (n *node) forgetListed(lineID string) {
	n.idxMu.Lock()
	delete(n.prepared, lineID)
	if st := n.listed; st != nil {
		delete(st.lines, lineID)
		if !st.ready {
			st.stale[lineID] = true
		}
	}
	n.idxMu.Unlock()
}

// takeListed returns (and removes) what the last List read of line l's
// objects, when that still stands in for reading them: ok is false when it
// cannot (no or expired state, the line held under another name, or an
// endpoint by l's name listed without being the line's). held tells
// whether the resync's List reported the line; a line it did not report
// has no owned endpoint, and its auth and aor were not read: they are
// returned absent, so Apply sends every attribute (PUT creates or merges).
func (n *node) takeListed(l pbx.LineConfig, name string, held bool) (ep, auth, aor map[string]string, ok bool) {
	n.idxMu.Lock()
	defer n.idxMu.Unlock()
	st := n.listed
	if st == nil || !st.ready || time.Since(st.at) > listedTTL {
		return nil, nil, nil, false
	}
	e, seen := st.lines[l.ID]
	delete(st.lines, l.ID)
	if held {
		if !seen || e.name != name {
			return nil, nil, nil, false
		}
		return e.ep, e.auth, e.aor, true
	}
	if seen || st.names[name] {
		return nil, nil, nil, false
	}
	return nil, nil, nil, true
}

// setPrepared records what Prepare wrote of lines, by line id.
func (n *node) setPrepared(lines map[string]preparedLine) {
	n.idxMu.Lock()
	defer n.idxMu.Unlock()
	if n.prepared == nil {
		n.prepared = make(map[string]preparedLine, len(lines))
	}
	for id, p := range lines {
		n.prepared[id] = p
	}
}

// takePrepared returns (and removes) what Prepare wrote of line l's auth
// and aor, when that still stands in for reading the line's objects: the
// entry is recent, for the same endpoint name, and nothing has written the
// line since (forgetListed drops it). The line's endpoint is then absent.
func (n *node) takePrepared(l pbx.LineConfig, name string) (auth, aor map[string]string, ok bool) {
	n.idxMu.Lock()
	defer n.idxMu.Unlock()
	p, found := n.prepared[l.ID]
	delete(n.prepared, l.ID)
	if !found || p.name != name || time.Since(p.at) > preparedTTL {
		return nil, nil, false
	}
	return p.auth, p.aor, true
}

// errAbsent marks a 404 from ARI.
var errAbsent = errors.New("not found")

func newNode(b *Backend, nc NodeConfig) *node {
	n := &node{
		b:        b,
		cfg:      nc,
		http:     &http.Client{Timeout: b.cfg.RequestTimeout, Transport: newTransport(b.cfg.ListConcurrency)},
		pace:     newPacer(b.backoff),
		contacts: map[string]map[string]pbx.Contact{},
		fills:    make(chan contactRef, 1024),
		byLine:   map[string]string{},
		byName:   map[string]string{},
		extra:    map[string][]string{},
	}
	n.aors = newAORQueue(n)
	return n
}

// newTransport keeps enough idle connections for the reads in flight
// (List runs ListConcurrency at once, plus the reconciler's applies): the
// default transport keeps 2 per host and would open a new TCP connection
// for most requests.
func newTransport(concurrency int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(concurrency, 8) * 2
	t.MaxIdleConns = t.MaxIdleConnsPerHost * 4
	return t
}

func (n *node) count(op, outcome string) {
	n.b.m.requests.WithLabelValues(n.cfg.Name, op, outcome).Inc()
}

// request sends an ARI request with basic auth, bounded by the request
// timeout. out, if not nil, receives a 200 answer's JSON. A 404 returns
// errAbsent; connection failures, timeouts and 5xx wrap pbx.ErrUnavailable.
//
// Requests for objects (/asterisk/config/...) wait out the back-off of the
// node's pacer and feed it, as writes do.
func (n *node) request(ctx context.Context, method, op, path string, out any) error {
	if !strings.HasPrefix(path, "/asterisk/config/") {
		return n.send(ctx, method, op, path, nil, out)
	}
	if err := n.pace.wait(ctx); err != nil {
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: %w", op, pbx.ErrUnavailable, err)
	}
	err := n.send(ctx, method, op, path, nil, out)
	n.pace.note(errors.Is(err, pbx.ErrUnavailable))
	return err
}

// send is request without pacing; body, if not nil, is sent as JSON.
func (n *node) send(ctx context.Context, method, op, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, n.b.cfg.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(n.cfg.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(n.cfg.Username, n.cfg.Password)
	resp, err := n.http.Do(req)
	if err != nil {
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: %w", op, pbx.ErrUnavailable, err)
	}
	// What the answer says is read before the close: its error changes
	// nothing (at worst the connection is not reused).
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode/100 == 2:
		if out != nil {
			if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
				n.count(op, "unavailable")
				return fmt.Errorf("%s: %w: decode answer: %w", op, pbx.ErrUnavailable, err)
			}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		n.count(op, "ok")
		return nil
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body)
		n.count(op, "absent")
		return errAbsent
	case resp.StatusCode == http.StatusUnprocessableEntity:
		_, _ = io.Copy(io.Discard, resp.Body)
		n.count(op, "error")
		return fmt.Errorf("%s: %w: ARI answered %s", op, errUnprocessable, resp.Status)
	case resp.StatusCode >= 500:
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: ARI answered %s", op, pbx.ErrUnavailable, resp.Status)
	}
	n.count(op, "error")
	return fmt.Errorf("%s: ARI answered %s", op, resp.Status)
}

func (n *node) get(ctx context.Context, op, path string, out any) error {
	return n.request(ctx, http.MethodGet, op, path, out)
}

// writeObject PUTs tuples to one res_pjsip object (creating or merging it), or
// DELETEs it when del. It is the ari library's Config().Update and
// Config().Delete request, sent by pbxd: ari v5.3.1's native.Client keeps
// its http.Client unexported and zero, with no option to give it a
// transport or a timeout, and its calls take no context. Its default
// transport keeps 2 idle connections per host, so a resync's parallel PUTs
// would open a TCP connection each (most of pbxd's CPU in a full re-push),
// and a write to a hung Asterisk would never end. The library's public
// types (ari.ConfigTupleList) still define the request.
//
// Writes go through the node's pacer: a slot is held while the request
// runs, and an unavailable answer delays the next writes.
func (n *node) writeObject(ctx context.Context, op, typ, id string, tuples []tuple, del bool) error {
	if err := n.pace.acquire(ctx); err != nil {
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: %w", op, pbx.ErrUnavailable, err)
	}
	path := "/asterisk/config/dynamic/res_pjsip/" + typ + "/" + url.PathEscape(id)
	var err error
	if del {
		err = n.send(ctx, http.MethodDelete, op, path, nil, nil)
	} else {
		err = n.send(ctx, http.MethodPut, op, path, toARI(tuples), nil)
	}
	n.pace.release(errors.Is(err, pbx.ErrUnavailable))
	return err
}

// getObject reads one res_pjsip object as attribute → value, nil if absent.
func (n *node) getObject(ctx context.Context, typ, id string) (map[string]string, error) {
	var ts []ari.ConfigTuple
	err := n.get(ctx, "get_"+typ, "/asterisk/config/dynamic/res_pjsip/"+typ+"/"+url.PathEscape(id), &ts)
	if errors.Is(err, errAbsent) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return tupleMap(ts), nil
}

// tupleMap turns ARI's tuple list into attribute → value. A repeated
// attribute keeps every value, joined with a newline.
func tupleMap(ts []ari.ConfigTuple) map[string]string {
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		if old, ok := m[t.Attribute]; ok && old != "" && t.Value != "" {
			m[t.Attribute] = old + "\n" + t.Value
		} else if !ok || old == "" {
			m[t.Attribute] = t.Value
		}
	}
	return m
}

// push creates the object with want, or PUTs the attributes of want that
// differ from held.
func (n *node) push(ctx context.Context, typ, id string, want []tuple, held map[string]string) error {
	send := want
	if held != nil {
		if send = diff(want, held); len(send) == 0 {
			return nil
		}
	}
	return n.put(ctx, typ, id, send)
}

// pushFull creates the object with want, or, if any attribute of want
// differs from held, PUTs all of want. disallow goes with allow, so the
// codecs end up exactly as wanted.
func (n *node) pushFull(ctx context.Context, typ, id string, want []tuple, held map[string]string) error {
	if held != nil && len(diff(want, held)) == 0 {
		return nil
	}
	return n.put(ctx, typ, id, want)
}

// put PUTs send to the object; AOR writes are paced on Asterisk's AOR
// queue (see aorQueue).
func (n *node) put(ctx context.Context, typ, id string, send []tuple) error {
	op := "put_" + typ
	return n.aorPaced(ctx, typ, op, func() error { return n.writeObject(ctx, op, typ, id, send, false) })
}

func (n *node) del(ctx context.Context, typ, id string) error {
	op := "delete_" + typ
	err := n.aorPaced(ctx, typ, op, func() error { return n.writeObject(ctx, op, typ, id, nil, true) })
	if errors.Is(err, errAbsent) {
		return nil
	}
	return err
}

// aorPaced runs the write f, admitted by and counted in the AOR queue
// when typ is "aor".
func (n *node) aorPaced(ctx context.Context, typ, op string, f func() error) error {
	if typ != "aor" {
		return f()
	}
	if err := n.aors.admit(ctx); err != nil {
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: %w", op, pbx.ErrUnavailable, err)
	}
	err := f()
	if err == nil {
		n.aors.wrote()
	}
	return err
}

// errForeign is returned when a line's endpoint name is taken by an
// endpoint pbxd does not own.
var errForeign = errors.New("endpoint exists and is not pbxd's (configured by hand?)")

// apply pushes line l. With listed (the repair of a resync), what the
// resync's List read of the line's objects stands in for reading them
// again, when it still can (takeListed); held tells whether that List
// reported the line. Without, what Prepare wrote of a new line stands in
// for them (takePrepared): its endpoint is then created with one PUT.
func (n *node) apply(ctx context.Context, l pbx.LineConfig, listed, held bool) error {
	if err := validName(l); err != nil {
		return err
	}
	if err := n.ensureIndex(ctx); err != nil {
		return err
	}
	authID := n.b.objectID(l.ID)
	name := endpointName(l)
	var ep, auth, aor map[string]string
	known := false
	switch {
	case listed:
		ep, auth, aor, known = n.takeListed(l, name, held)
	default:
		// A line Prepare has just created needs only its endpoint.
		auth, aor, known = n.takePrepared(l, name)
		n.forgetListed(l.ID)
	}
	// Again once written: a List that ran meanwhile may have read the
	// objects before the write.
	defer n.forgetListed(l.ID)
	unlock := n.names.lock(name)
	if !known {
		var err error
		if ep, auth, aor, err = n.readLine(ctx, l, authID, name); err != nil {
			unlock()
			return err
		}
	}
	stale, err := n.write(ctx, l, authID, name, ep, auth, aor, known)
	// The line's previous endpoints are removed with the name released:
	// each removal takes its own name's lock.
	unlock()
	if err != nil {
		return err
	}
	for _, s := range stale {
		if err := n.removeEndpoint(ctx, s, authID); err != nil {
			return fmt.Errorf("remove previous endpoint %s: %w", s, err)
		}
	}
	return nil
}

// readLine GETs line l's endpoint, auth and aor (nil: absent). The endpoint
// must be pbxd's.
func (n *node) readLine(ctx context.Context, l pbx.LineConfig, authID, name string) (ep, auth, aor map[string]string, err error) {
	ep, err = n.getObject(ctx, "endpoint", name)
	if err != nil {
		return nil, nil, nil, err
	}
	if ep != nil {
		switch owner, _, ours := n.b.owner(ep); {
		case !ours:
			return nil, nil, nil, fmt.Errorf("endpoint %s: %w", name, errForeign)
		case owner != authID:
			// Another of pbxd's lines held this AOR (deleted or renamed,
			// its removal not applied yet): the database says it is this
			// line's now. Its own removal will find it is no longer
			// the owner and leave the endpoint alone.
			n.b.logger.Info("endpoint taken over by another line", "node", n.cfg.Name, "endpoint", name,
				"line", l.ID, "previous", strings.TrimPrefix(owner, n.b.cfg.ObjectPrefix))
		}
	}
	if auth, err = n.getObject(ctx, "auth", authID); err != nil {
		return nil, nil, nil, err
	}
	if aor, err = n.getObject(ctx, "aor", name); err != nil {
		return nil, nil, nil, err
	}
	return ep, auth, aor, nil
}

// write pushes line l over its objects as held (nil: absent), then moves
// the index to name and returns the line's previous endpoints, for the
// caller to delete. fromList says that held is what an earlier List read
// rather than a GET just now: an object that differs then gets every
// attribute pbxd owns (pushFull), not only those that differed, so that
// the PUT leaves it right whatever happened to it since.
func (n *node) write(ctx context.Context, l pbx.LineConfig, authID, name string, ep, auth, aor map[string]string, fromList bool) (stale []string, err error) {
	push := n.push
	if fromList {
		push = n.pushFull
	}
	if err := push(ctx, "auth", authID, desiredAuth(l), auth); err != nil {
		return nil, err
	}
	sid := authID + suspendedSuffix
	wasSuspended := ep != nil && ep["auth"] == sid
	if l.Suspended {
		if err := n.pushSuspendedAuth(ctx, l, sid); err != nil {
			return nil, err
		}
	}
	if err := push(ctx, "aor", name, n.b.desiredAOR(l), aor); err != nil {
		return nil, err
	}
	if err := push(ctx, "endpoint", name, n.b.desiredEndpoint(l, authID), ep); err != nil {
		return nil, err
	}
	if wasSuspended && !l.Suspended {
		if err := n.del(ctx, "auth", sid); err != nil {
			return nil, err
		}
	}
	if ep == nil && n.connected.Load() && !n.subscribed.Load() {
		// The first PJSIP endpoint of this Asterisk: its events can be
		// subscribed to now, before the phone registers. On failure the
		// health check tries again.
		_, _ = n.subscribe(ctx)
	}

	// The line now lives at name: forget where it was (the caller
	// deletes it).
	for _, s := range n.moveIndex(l.ID, name) {
		if s != name {
			stale = append(stale, s)
		}
	}
	return stale, nil
}

// pushSuspendedAuth writes the auth object sid a suspended line's endpoint
// points at; a new one gets a random password, which no phone knows.
func (n *node) pushSuspendedAuth(ctx context.Context, l pbx.LineConfig, sid string) error {
	sauth, err := n.getObject(ctx, "auth", sid)
	if err != nil {
		return err
	}
	want := desiredSuspendedAuth(l)
	if sauth == nil {
		want = append(want, tuple{"password", randomPassword()})
	}
	return n.push(ctx, "auth", sid, want, sauth)
}

// moveIndex records that line id now lives at name, and returns the names
// it lived at before, whose objects are to be deleted.
func (n *node) moveIndex(id, name string) (stale []string) {
	n.idxMu.Lock()
	old := n.byLine[id]
	stale = n.extra[id]
	delete(n.extra, id)
	if prev, ok := n.byName[name]; ok && prev != id && n.byLine[prev] == name {
		delete(n.byLine, prev)
	}
	n.byLine[id] = name
	n.byName[name] = id
	if old != "" && old != name && n.byName[old] == id {
		delete(n.byName, old)
	}
	n.idxMu.Unlock()
	if old != "" && old != name {
		stale = append(stale, old)
	}
	return stale
}

// removeEndpoint deletes the endpoint name and its aor if the endpoint
// still belongs to authID (or is already gone).
func (n *node) removeEndpoint(ctx context.Context, name, authID string) error {
	defer n.names.lock(name)()
	ep, err := n.getObject(ctx, "endpoint", name)
	if err != nil {
		return err
	}
	if ep != nil {
		if owner, _, ours := n.b.owner(ep); !ours || owner != authID {
			return nil // taken over by another line, or not ours
		}
		if err := n.del(ctx, "endpoint", name); err != nil {
			return err
		}
	}
	return n.del(ctx, "aor", name)
}

func (n *node) remove(ctx context.Context, lineID string) error {
	if err := n.ensureIndex(ctx); err != nil {
		return err
	}
	n.forgetListed(lineID)
	defer n.forgetListed(lineID)
	authID := n.b.objectID(lineID)
	n.idxMu.Lock()
	names := slices.Clone(n.extra[lineID])
	if name := n.byLine[lineID]; name != "" {
		names = append(names, name)
	}
	n.idxMu.Unlock()
	for _, name := range names {
		if err := n.removeEndpoint(ctx, name, authID); err != nil {
			return err
		}
	}
	for _, id := range []string{authID, authID + suspendedSuffix} {
		if err := n.del(ctx, "auth", id); err != nil {
			return err
		}
	}
	n.idxMu.Lock()
	if name := n.byLine[lineID]; name != "" && n.byName[name] == lineID {
		delete(n.byName, name)
	}
	delete(n.byLine, lineID)
	delete(n.extra, lineID)
	n.idxMu.Unlock()
	n.mu.Lock()
	had := len(n.contacts[lineID]) > 0
	delete(n.contacts, lineID)
	n.mu.Unlock()
	if had {
		n.emit(pbx.RegistrationEvent{LineID: lineID, At: time.Now()})
	}
	return nil
}

type endpointJSON struct {
	Technology string `json:"technology"`
	Resource   string `json:"resource"`
	State      string `json:"state"`
}

// pjsipEndpoints lists every PJSIP endpoint of the node.
func (n *node) pjsipEndpoints(ctx context.Context) ([]endpointJSON, error) {
	var eps []endpointJSON
	err := n.get(ctx, "list_endpoints", "/endpoints/PJSIP", &eps)
	if errors.Is(err, errAbsent) {
		return nil, nil // no PJSIP endpoint at all
	}
	return eps, err
}

// ownedEndpoint is one endpoint pbxd owns, as a scan found it.
type ownedEndpoint struct {
	name, lineID, authID string
	marked               bool
	ep                   map[string]string
	state                string
}

// scan GETs every PJSIP endpoint, keeps those pbxd owns, and updates the
// index with them (an endpoint that claims a line already indexed under
// another name that also still exists is recorded for deletion).
func (n *node) scan(ctx context.Context) ([]ownedEndpoint, []endpointJSON, error) {
	eps, err := n.pjsipEndpoints(ctx)
	if err != nil {
		return nil, nil, err
	}
	owned, err := n.readOwned(ctx, eps)
	if err != nil {
		return nil, nil, err
	}
	// Several endpoints claiming one line (a rename pbxd did not finish):
	// the indexed one, else the first by name, holds the line.
	sort.Slice(owned, func(i, j int) bool { return owned[i].name < owned[j].name })
	n.indexOwned(owned)
	return owned, eps, nil
}

// readOwned reads the endpoints eps lists, ListConcurrency at a time, and
// returns those pbxd owns; one deleted since the listing is skipped.
func (n *node) readOwned(ctx context.Context, eps []endpointJSON) ([]ownedEndpoint, error) {
	out := make([]*ownedEndpoint, len(eps))
	errs := make([]error, len(eps))
	sem := make(chan struct{}, n.b.cfg.ListConcurrency)
	var wg sync.WaitGroup
	for i, e := range eps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ep, err := n.getObject(ctx, "endpoint", e.Resource)
			if err != nil || ep == nil {
				errs[i] = err // deleted since the listing: skipped
				return
			}
			authID, marked, ok := n.b.owner(ep)
			if !ok {
				return
			}
			out[i] = &ownedEndpoint{name: e.Resource, lineID: strings.TrimPrefix(authID, n.b.cfg.ObjectPrefix),
				authID: authID, marked: marked, ep: ep, state: e.State}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var owned []ownedEndpoint
	for _, o := range out {
		if o != nil {
			owned = append(owned, *o)
		}
	}
	return owned, nil
}

// indexOwned indexes owned (sorted by name): each line is held by its
// indexed endpoint if that is among them, else by the first; the others
// are its extra endpoints.
func (n *node) indexOwned(owned []ownedEndpoint) {
	byLine := map[string][]string{}
	for _, o := range owned {
		byLine[o.lineID] = append(byLine[o.lineID], o.name)
	}
	n.idxMu.Lock()
	defer n.idxMu.Unlock()
	for line, names := range byLine {
		keep := names[0]
		if cur := n.byLine[line]; slices.Contains(names, cur) {
			keep = cur
		}
		n.byLine[line] = keep
		n.byName[keep] = line
		var others []string
		for _, nm := range names {
			if nm != keep {
				others = append(others, nm)
			}
		}
		if len(others) > 0 {
			n.extra[line] = others
		} else {
			delete(n.extra, line)
		}
	}
	n.indexed = true
}

// ensureIndex scans the node once, so that Apply can move a renamed line
// and Remove can find a line's endpoint after pbxd restarted.
func (n *node) ensureIndex(ctx context.Context) error {
	n.idxMu.Lock()
	done := n.indexed
	n.idxMu.Unlock()
	if done {
		return nil
	}
	n.scanMu.Lock()
	defer n.scanMu.Unlock()
	n.idxMu.Lock()
	done = n.indexed
	n.idxMu.Unlock()
	if done {
		return nil
	}
	_, _, err := n.scan(ctx)
	return err
}

func (n *node) list(ctx context.Context) ([]pbx.LineConfig, error) {
	st := &listedState{at: time.Now(), stale: map[string]bool{}}
	n.idxMu.Lock()
	n.listed = st // from now on, writes to a line mark it stale
	n.idxMu.Unlock()
	time.AfterFunc(listedTTL, func() { n.dropListedIf(st) })
	n.scanMu.Lock()
	owned, eps, err := n.scan(ctx)
	n.scanMu.Unlock()
	if err != nil {
		n.dropListedIf(st)
		return nil, err
	}
	lines, dup := n.indexedLines(owned)
	out, read, err := n.readLines(ctx, lines, dup)
	if err != nil {
		n.dropListedIf(st)
		return nil, err
	}
	n.fillListed(st, eps, lines, read)
	return out, nil
}

// indexedLines keeps the owned endpoints the index places their line at,
// and tells which of those lines have duplicate endpoints too.
func (n *node) indexedLines(owned []ownedEndpoint) (lines []ownedEndpoint, dup map[string]bool) {
	n.idxMu.Lock()
	defer n.idxMu.Unlock()
	dup = map[string]bool{}
	for _, o := range owned {
		if n.byLine[o.lineID] == o.name {
			lines = append(lines, o)
			dup[o.lineID] = len(n.extra[o.lineID]) > 0
		}
	}
	return lines, dup
}

// readLines reads the auth and aor objects of lines, ListConcurrency at a
// time, and returns the lines as held and the objects read.
func (n *node) readLines(ctx context.Context, lines []ownedEndpoint, dup map[string]bool) ([]pbx.LineConfig, []listedLine, error) {
	out := make([]pbx.LineConfig, len(lines))
	read := make([]listedLine, len(lines))
	errs := make([]error, len(lines))
	sem := make(chan struct{}, n.b.cfg.ListConcurrency)
	var wg sync.WaitGroup
	for i, o := range lines {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			auth, err := n.getObject(ctx, "auth", o.authID)
			if err != nil {
				errs[i] = err
				return
			}
			aor, err := n.getObject(ctx, "aor", o.name)
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = n.b.heldLine(n.cfg.Name, o.lineID, o.name, o.authID, o.marked, o.ep, auth, aor)
			read[i] = listedLine{name: o.name, ep: o.ep, auth: auth, aor: aor}
			if dup[o.lineID] {
				out[i].Drift = strings.TrimPrefix(out[i].Drift+", duplicate endpoints", ", ")
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return out, read, nil
}

// fillListed records what the List read in st, unless st was dropped
// (reconnection) or replaced meanwhile; lines written during the List are
// left out.
func (n *node) fillListed(st *listedState, eps []endpointJSON, lines []ownedEndpoint, read []listedLine) {
	n.idxMu.Lock()
	defer n.idxMu.Unlock()
	if n.listed != st {
		return
	}
	st.names = make(map[string]bool, len(eps))
	for _, e := range eps {
		st.names[e.Resource] = true
	}
	st.lines = make(map[string]*listedLine, len(lines))
	for i, o := range lines {
		if !st.stale[o.lineID] {
			st.lines[o.lineID] = &read[i]
		}
	}
	st.ready, st.stale = true, nil
}

// run keeps the node connected until ctx ends: probe /asterisk/info,
// open pbxd's events websocket and subscribe the application to PJSIP
// endpoint events, then check every HealthInterval that Asterisk answers,
// has not restarted (startup_time) and that the websocket is still open.
// Each (re)connection rebuilds the contact picture from /endpoints and asks
// for a resync.
func (n *node) run(ctx context.Context) {
	log := n.b.logger.With("node", n.cfg.Name)
	var l nodeLink
	fillCtx, stopFills := context.WithCancel(ctx)
	fillsDone := make(chan struct{})
	go func() { n.fillContacts(fillCtx); close(fillsDone) }()
	defer func() {
		stopFills()
		<-fillsDone
		n.setConnected(false)
		if l.ws != nil {
			l.ws.close()
		}
	}()
	for ctx.Err() == nil {
		if err := n.check(ctx, &l, log); err != nil {
			if ctx.Err() != nil {
				return
			}
			n.lost(ctx, &l, err, log)
			continue
		}
		l.failing, l.attempt = false, 0
		wait(ctx, n.b.cfg.HealthInterval, l.ws.done)
	}
}

// nodeLink is what run knows of its connection to the node between checks.
type nodeLink struct {
	ws        *eventConn
	lastStart time.Time // startup_time of the Asterisk last resynced
	attempt   int       // failed checks in a row
	failing   bool      // the last check failed
	fresh     bool      // ws was dialled and no resync has followed yet
}

// check is one round of run: Asterisk answers and has not restarted, the
// events websocket is open and subscribed, and after a (re)connection the
// contact picture is rebuilt.
func (n *node) check(ctx context.Context, l *nodeLink, log *slog.Logger) error {
	start, err := n.startupTime(ctx)
	if err != nil {
		return err
	}
	if err := n.ensureEvents(ctx, l, start); err != nil {
		return err
	}
	late, err := n.ensureSubscribed(ctx, l, log)
	if err != nil {
		return err
	}
	if late && n.connected.Load() && start.Equal(l.lastStart) {
		if err := n.rebuildContacts(ctx); err != nil {
			return err
		}
	}
	if l.fresh || !n.connected.Load() || !start.Equal(l.lastStart) {
		return n.resync(ctx, l, start, log)
	}
	return nil
}

// ensureEvents keeps l.ws an open events websocket of the Asterisk that
// started at start, dialling a new one (l.fresh) when needed.
func (n *node) ensureEvents(ctx context.Context, l *nodeLink, start time.Time) error {
	if l.ws != nil && !l.lastStart.IsZero() && !start.Equal(l.lastStart) {
		// A restart seen before the websocket's end: that websocket
		// belongs to the Asterisk that stopped, and so does its
		// subscription.
		l.ws.close()
		l.ws = nil
	}
	if l.ws == nil {
		var err error
		l.ws, err = n.dialEvents(ctx, n.handle)
		l.fresh = err == nil
		if err != nil {
			return err
		}
	}
	if l.ws.closed() {
		return fmt.Errorf("events websocket: %w", l.ws.err())
	}
	if l.fresh {
		n.subscribed.Store(false)
	}
	return nil
}

// ensureSubscribed subscribes the application to PJSIP endpoint events if
// it is not. late reports a subscription on a websocket that was already
// up: phones may have registered before it, and must be read.
func (n *node) ensureSubscribed(ctx context.Context, l *nodeLink, log *slog.Logger) (late bool, err error) {
	if n.subscribed.Load() {
		return false, nil
	}
	// Subscribe after the websocket is up: Asterisk only knows the
	// application while its websocket is connected.
	ok, err := n.subscribe(ctx)
	if ok && !l.fresh {
		late = true
		log.Info("subscribed to PJSIP endpoint events")
	}
	return late, err
}

// resync rebuilds the contact picture of the Asterisk that started at
// start after a connection or a restart, and marks the node connected.
func (n *node) resync(ctx context.Context, l *nodeLink, start time.Time, log *slog.Logger) error {
	reason := "connect"
	if !l.lastStart.IsZero() && !start.Equal(l.lastStart) {
		reason = "restart"
		log.Warn("asterisk restarted", "startup_time", start)
	}
	n.dropListed() // what a List read before may be gone
	if err := n.rebuildContacts(ctx); err != nil {
		return err
	}
	l.lastStart, l.fresh = start, false
	n.pace.reset() // writes that failed while it was away wait no longer
	n.setConnected(true)
	n.b.m.resyncs.WithLabelValues(n.cfg.Name, reason).Inc()
	n.signalResync()
	log.Info("asterisk connected", "reason", reason)
	return nil
}

// lost handles a failed check: one WARN (and one count) per outage, not
// per attempt; the node is marked disconnected, its websocket closed, and
// run waits its backoff before the next attempt.
func (n *node) lost(ctx context.Context, l *nodeLink, err error, log *slog.Logger) {
	if n.connected.Load() || !l.failing {
		log.Warn("asterisk unreachable", "err", err)
		n.b.m.outages.WithLabelValues(n.cfg.Name).Inc()
	}
	l.failing = true
	n.dropListed()
	n.setConnected(false)
	if l.ws != nil {
		l.ws.close()
		l.ws = nil
	}
	wait(ctx, n.b.backoff(l.attempt), nil)
	l.attempt++
}

// errUnprocessable marks a 422 from ARI.
var errUnprocessable = errors.New("unprocessable")

// subscribe subscribes the node's application to the events of every PJSIP
// endpoint and reports whether it did. Until Asterisk has had a first
// PJSIP endpoint since it started, the event source endpoint:PJSIP does
// not exist: ARI answers 422 and Asterisk logs a WARNING per attempt. So
// subscribe first asks /endpoints/PJSIP (404 until then, logged nowhere)
// and reports false without error when there is nothing to hear about
// yet; run tries again at every health check, so the first endpoint pbxd
// pushes is followed within HealthInterval.
func (n *node) subscribe(ctx context.Context) (bool, error) {
	if n.subscribed.Load() {
		return true, nil
	}
	err := n.get(ctx, "list_endpoints", "/endpoints/PJSIP", nil)
	if errors.Is(err, errAbsent) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = n.request(ctx, http.MethodPost, "subscribe",
		"/applications/"+url.PathEscape(n.cfg.App)+"/subscription?eventSource="+url.QueryEscape("endpoint:PJSIP"), nil)
	if errors.Is(err, errUnprocessable) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	n.subscribed.Store(true)
	return true, nil
}

// wait sleeps d, or until ctx ends or done (if not nil) closes.
func wait(ctx context.Context, d time.Duration, done <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-done:
	}
}

func (n *node) setConnected(v bool) {
	n.connected.Store(v)
	g := 0.0
	if v {
		g = 1
	}
	n.b.m.connected.WithLabelValues(n.cfg.Name).Set(g)
}

func (n *node) startupTime(ctx context.Context) (time.Time, error) {
	var info ari.AsteriskInfo
	if err := n.get(ctx, "info", "/asterisk/info", &info); err != nil {
		if errors.Is(err, errAbsent) {
			return time.Time{}, fmt.Errorf("info: %w: 404", pbx.ErrUnavailable)
		}
		return time.Time{}, err
	}
	return time.Time(info.StatusInfo.StartupTime), nil
}

// lineOf maps an event's endpoint to the line it holds, through the index.
func (n *node) lineOf(tech, resource string) (string, bool) {
	if !strings.EqualFold(tech, "PJSIP") {
		return "", false
	}
	n.idxMu.Lock()
	defer n.idxMu.Unlock()
	id, ok := n.byName[resource]
	return id, ok
}

// handle maps ARI endpoint events onto full-set registration events:
// ContactStatusChange adds or refreshes a contact (Removed drops it);
// PeerStatusChange Unreachable clears a line known only as "online" from
// /endpoints. Other states of PeerStatusChange and EndpointStateChange carry
// no contact and change nothing (offline means unknown, see NOTES.md).
func (n *node) handle(ev event) {
	now := time.Now()
	switch ev.Type {
	case "ContactStatusChange":
		line, ok := n.lineOf(ev.Endpoint.Technology, ev.Endpoint.Resource)
		if !ok || ev.ContactInfo.URI == "" {
			return
		}
		n.mu.Lock()
		set := n.contacts[line]
		if set == nil {
			set = map[string]pbx.Contact{}
			n.contacts[line] = set
		}
		delete(set, "") // a real contact replaces the "online, contacts unknown" placeholder
		if ev.ContactInfo.ContactStatus == "Removed" {
			delete(set, ev.ContactInfo.URI)
		} else {
			c := set[ev.ContactInfo.URI] // keeps what is known of its expiry
			c.URI, c.Source, c.Status = ev.ContactInfo.URI, n.cfg.Name, contactStatus(ev.ContactInfo.ContactStatus)
			set[ev.ContactInfo.URI] = c
		}
		out := snapshot(line, set, now)
		n.mu.Unlock()
		n.emit(out)
		if ev.ContactInfo.ContactStatus != "Removed" && ev.ContactInfo.AOR != "" {
			select {
			case n.fills <- contactRef{line: line, uri: ev.ContactInfo.URI, aor: ev.ContactInfo.AOR}:
			default: // a registration storm: the expiry stays unknown
			}
		}
	case "PeerStatusChange":
		line, ok := n.lineOf(ev.Endpoint.Technology, ev.Endpoint.Resource)
		if !ok || ev.Peer.PeerStatus != "Unreachable" {
			return
		}
		n.mu.Lock()
		set := n.contacts[line]
		_, placeholder := set[""]
		if !placeholder || len(set) != 1 {
			n.mu.Unlock()
			return
		}
		delete(n.contacts, line)
		n.mu.Unlock()
		n.emit(pbx.RegistrationEvent{LineID: line, At: now})
	}
}

// contactStatus maps ARI's contact_status onto pbx's Contact statuses.
func contactStatus(s string) string {
	switch s {
	case "Reachable":
		return pbx.ContactReachable
	case "Unreachable":
		return pbx.ContactUnreachable
	case "NonQualified":
		return pbx.ContactNonQualified
	}
	return pbx.ContactUnknown
}

func snapshot(line string, set map[string]pbx.Contact, at time.Time) pbx.RegistrationEvent {
	ev := pbx.RegistrationEvent{LineID: line, At: at}
	for _, c := range set {
		ev.Contacts = append(ev.Contacts, c)
	}
	slices.SortFunc(ev.Contacts, func(a, b pbx.Contact) int { return strings.Compare(a.URI, b.URI) })
	return ev
}

// rebuildContacts reconciles the contact picture with /endpoints after a
// (re)connection, since Asterisk does not re-announce contacts: an owned
// endpoint that is online with no known contact gets a placeholder contact
// with an empty URI (registered, address unknown until its next event);
// offline means unknown and keeps what is known; a line whose endpoint is
// gone has no contact left.
func (n *node) rebuildContacts(ctx context.Context) error {
	if err := n.ensureIndex(ctx); err != nil {
		return err
	}
	eps, err := n.pjsipEndpoints(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var out []pbx.RegistrationEvent
	present := map[string]bool{}
	online := map[string]bool{}
	for _, e := range eps {
		if line, ok := n.lineOf(e.Technology, e.Resource); ok {
			present[line] = true
			online[line] = online[line] || e.State == "online"
		}
	}
	n.mu.Lock()
	for line := range present {
		if online[line] && len(n.contacts[line]) == 0 {
			set := map[string]pbx.Contact{"": {Source: n.cfg.Name}}
			n.contacts[line] = set
			out = append(out, snapshot(line, set, now))
		}
	}
	for line, set := range n.contacts {
		if !present[line] {
			delete(n.contacts, line)
			if len(set) > 0 {
				out = append(out, pbx.RegistrationEvent{LineID: line, At: now})
			}
		}
	}
	n.mu.Unlock()
	for _, ev := range out {
		n.emit(ev)
	}
	return nil
}

package sip

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Clock tells the registrar the time. The daemon passes its own clock so a
// test clock (PBXD_TEST_CLOCK) drives nonce ageing, binding expiry and
// throttling the same way it drives billing.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Config holds the registrar settings. The zero value is not usable; start
// from DefaultConfig and override what the operator configured, then call
// Validate (New does it too).
type Config struct {
	// UDPListen and TCPListen are the host:port the registrar binds for plain
	// SIP (PBXD_SIP_LISTEN sets both). An empty value disables that
	// transport; at least one transport must be enabled. Port 0 binds an
	// ephemeral port (tests), reported by Registrar.Addrs.
	UDPListen string
	TCPListen string
	// TLSListen is the host:port for SIP over TLS; it needs TLSCertFile and
	// TLSKeyFile. Empty disables TLS.
	TLSListen   string
	TLSCertFile string
	TLSKeyFile  string
	// ExtraListen are more host:port addresses served over UDP and TCP,
	// e.g. "[::1]:5060" beside "127.0.0.1:5060".
	ExtraListen []string

	// TCP and TLS connections (sipgo reads them without deadlines): a
	// connection must send its first bytes (TLS: the ClientHello) within
	// ConnFirstReadTimeout and is closed after ConnIdleTimeout without
	// reading anything. A source (IPv6: its /64) may hold ConnsPerSource
	// connections, all sources ConnsMax; more are closed on accept.
	ConnFirstReadTimeout time.Duration
	ConnIdleTimeout      time.Duration
	ConnsPerSource       int
	ConnsMax             int

	// Secret keys the HMAC that makes nonces stateless and unforgeable. It
	// must be at least 16 random bytes; keep it stable across restarts (and
	// equal on instances behind one address) or outstanding challenges
	// become invalid, which only costs phones one extra round trip.
	Secret []byte
	// NonceLifetime is how long a challenge nonce is accepted. Older nonces
	// get 401 with stale=true, so phones retry without bothering the user.
	NonceLifetime time.Duration
	// NonceTrackerSize bounds the nonce-count replay table (entries). When
	// it is full the oldest half is forgotten and nonces issued before that
	// point are treated as stale, so the bound never opens a replay hole.
	NonceTrackerSize int

	// MinExpires, MaxExpires and DefaultExpires bound registration
	// lifetimes. A request asking for less than MinExpires (but not 0) gets
	// 423 Interval Too Brief with Min-Expires; more than MaxExpires is
	// granted MaxExpires; no Expires at all gets DefaultExpires.
	MinExpires     time.Duration
	MaxExpires     time.Duration
	DefaultExpires time.Duration
	// MaxContacts bounds the simultaneous contacts of a line whose
	// LineConfig.MaxContacts is 0. When a new contact would exceed the bound
	// the least recently refreshed binding is replaced (a phone whose
	// address changed must not be locked out until its old binding expires).
	MaxContacts int

	// ThrottleFailures failed authentications for one user from one source
	// IP within ThrottleWindow block that user from that IP for
	// ThrottleBlock: its REGISTERs are answered 403 without any digest work.
	// Phones behind the same NAT with the right password are unaffected.
	// ThrottleSourceFailures failures for any users block the whole source
	// (scanners). Only failures that echo a nonce issued to the source
	// count. 0 disables the respective block. ThrottleMaxSources bounds the tracking table (fixed
	// memory, about 100 bytes a source; the least recently seen sources are
	// forgotten first). IPv6 sources are grouped by /64.
	ThrottleFailures       int
	ThrottleSourceFailures int
	ThrottleWindow         time.Duration
	ThrottleBlock          time.Duration
	ThrottleMaxSources     int

	// SweepInterval is how often expired bindings are removed (and their
	// registration events emitted).
	SweepInterval time.Duration
	// ReloadInterval is how often, with a SharedStore, the whole in-memory
	// view is read again from the store (changes of other instances
	// arrive at once through SharedStore.Watch; the reload repairs any
	// notification lost).
	ReloadInterval time.Duration
	// FlushTimeout bounds how long Run waits at shutdown for the write-behind
	// queue to reach the BindingStore.
	FlushTimeout time.Duration
	// EventBuffer is the capacity of the Events channel. Events are
	// coalesced per line behind it, so a slow consumer delays events but
	// never loses the latest state of a line nor blocks REGISTER handling.
	EventBuffer int
	// DigestAlgorithms are the digest algorithms offered in challenges, in
	// order (RFC 8760: one WWW-Authenticate each), and the only ones
	// accepted: "MD5", "SHA-256". Default MD5 only: Debian's baresip (libre
	// 1.1.0) fails on any SHA-256 challenge even after an MD5 one, and
	// several desk phones read only the last challenge.
	DigestAlgorithms []string
	// DomainDigestAlgorithms overrides DigestAlgorithms for a SIP domain
	// (an account), e.g. SHA-256 only for an account whose phones support
	// it. Keys are matched case-insensitively.
	DomainDigestAlgorithms map[string][]string
	// AllowThirdParty lets a REGISTER's From differ from its To (RFC 3261
	// §10.2: a third party registering on a user's behalf, still with the
	// To user's credentials). False answers such requests 403.
	AllowThirdParty bool
	// UserAgent is the Server header value sent in responses; empty sends
	// none.
	UserAgent string
}

// DefaultConfig returns production defaults listening on 127.0.0.1:5060 (UDP
// and TCP). The Secret is left empty: the daemon must supply one.
func DefaultConfig() Config {
	return Config{
		UDPListen:              "127.0.0.1:5060",
		TCPListen:              "127.0.0.1:5060",
		ConnFirstReadTimeout:   10 * time.Second,
		ConnIdleTimeout:        5 * time.Minute,
		ConnsPerSource:         200,
		ConnsMax:               50_000,
		NonceLifetime:          5 * time.Minute,
		NonceTrackerSize:       200_000,
		MinExpires:             60 * time.Second,
		MaxExpires:             2 * time.Hour,
		DefaultExpires:         time.Hour,
		MaxContacts:            3,
		ThrottleFailures:       20,
		ThrottleSourceFailures: 100,
		ThrottleWindow:         time.Minute,
		ThrottleBlock:          10 * time.Minute,
		ThrottleMaxSources:     100_000,
		SweepInterval:          5 * time.Second,
		ReloadInterval:         5 * time.Minute,
		FlushTimeout:           10 * time.Second,
		EventBuffer:            1024,
		UserAgent:              "pbxd",
		DigestAlgorithms:       []string{algMD5},
		AllowThirdParty:        true,
	}
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.UDPListen == "" && c.TCPListen == "" && c.TLSListen == "" {
		bad("sip: no listen address (udp, tcp or tls)")
	}
	for name, a := range map[string]string{"udp": c.UDPListen, "tcp": c.TCPListen, "tls": c.TLSListen} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("sip: %s listen address %q: %w", name, a, err)
		}
	}
	for _, a := range c.ExtraListen {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("sip: extra listen address %q: %w", a, err)
		}
	}
	if c.TLSListen != "" && (c.TLSCertFile == "" || c.TLSKeyFile == "") {
		bad("sip: tls listen address needs a certificate and a key file")
	}
	if c.ConnFirstReadTimeout <= 0 || c.ConnIdleTimeout <= 0 {
		bad("sip: connection first-read and idle timeouts must be positive")
	}
	if c.ConnsPerSource < 1 || c.ConnsMax < c.ConnsPerSource {
		bad("sip: connection caps %d per source, %d in all invalid (need 1 <= per source <= all)", c.ConnsPerSource, c.ConnsMax)
	}
	if len(c.Secret) < 16 {
		bad("sip: secret must be at least 16 bytes")
	}
	if c.NonceLifetime < time.Second {
		bad("sip: nonce lifetime %v below 1s", c.NonceLifetime)
	}
	if c.NonceTrackerSize < 1024 {
		bad("sip: nonce tracker size %d below 1024", c.NonceTrackerSize)
	}
	if c.MinExpires < time.Second || c.MaxExpires < c.MinExpires {
		bad("sip: expires bounds min %v max %v invalid (need 1s <= min <= max)", c.MinExpires, c.MaxExpires)
	}
	if c.DefaultExpires < c.MinExpires || c.DefaultExpires > c.MaxExpires {
		bad("sip: default expires %v outside [%v, %v]", c.DefaultExpires, c.MinExpires, c.MaxExpires)
	}
	if c.MaxContacts < 1 {
		bad("sip: max contacts %d below 1", c.MaxContacts)
	}
	if c.ThrottleFailures < 0 || c.ThrottleSourceFailures < 0 {
		bad("sip: throttle failures %d, %d per source negative", c.ThrottleFailures, c.ThrottleSourceFailures)
	}
	if (c.ThrottleFailures > 0 || c.ThrottleSourceFailures > 0) && (c.ThrottleWindow <= 0 || c.ThrottleBlock <= 0 || c.ThrottleMaxSources < 1) {
		bad("sip: throttling needs a positive window, block duration and source table size")
	}
	if err := checkAlgorithms(c.DigestAlgorithms); err != nil {
		bad("sip: digest algorithms: %w", err)
	}
	for d, algs := range c.DomainDigestAlgorithms {
		if err := checkAlgorithms(algs); err != nil {
			bad("sip: digest algorithms of %s: %w", d, err)
		}
	}
	if c.SweepInterval <= 0 {
		bad("sip: sweep interval must be positive")
	}
	if c.ReloadInterval <= 0 {
		bad("sip: reload interval must be positive")
	}
	if c.FlushTimeout <= 0 {
		bad("sip: flush timeout must be positive")
	}
	if c.EventBuffer < 0 {
		bad("sip: event buffer negative")
	}
	return errors.Join(errs...)
}

// checkAlgorithms accepts a non-empty list of distinct supported digest
// algorithms (case-insensitive).
func checkAlgorithms(algs []string) error {
	if len(algs) == 0 {
		return errors.New("none offered")
	}
	seen := map[string]bool{}
	for _, a := range algs {
		n := canonicalAlg(a)
		if n == "" {
			return fmt.Errorf("%q is not MD5 or SHA-256", a)
		}
		if seen[n] {
			return fmt.Errorf("%s listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// canonicalAlg returns algMD5 or algSHA256 for a, "" for anything else.
func canonicalAlg(a string) string {
	switch {
	case strings.EqualFold(a, algMD5):
		return algMD5
	case strings.EqualFold(a, algSHA256):
		return algSHA256
	}
	return ""
}

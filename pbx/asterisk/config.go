package asterisk

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Config configures the Asterisk backend. Build it from the daemon's YAML,
// then pass it to New, which applies the defaults and validates it.
type Config struct {
	// Nodes are the Asterisk servers pbxd provisions. Each account lives on
	// one node (pbx.LineConfig.Node); at least one is required.
	Nodes []NodeConfig
	// DefaultNode receives lines whose Node is empty; default: the first
	// node.
	DefaultNode string
	// ObjectPrefix starts the id of every endpoint, auth and aor pbxd
	// pushes (prefix + line id), so List and Remove only ever see objects
	// pbxd owns and never touch hand-made ones. Default "pbxd-". Changing it
	// orphans existing objects.
	ObjectPrefix string
	// Transport is the pjsip.conf transport endpoints use (transports cannot
	// be pushed over ARI). Empty lets Asterisk pick the first matching one.
	Transport string
	// Codecs are the endpoint's allowed codecs, in preference order;
	// default ulaw, alaw, g722.
	Codecs []string
	// QualifyFrequency is how often Asterisk sends OPTIONS to registered
	// phones (aor qualify_frequency); zero disables qualify. Whole seconds.
	QualifyFrequency time.Duration
	// MaxContacts bounds registrations of a line whose LineConfig has
	// MaxContacts 0; default 1. Lines should carry their own value: List
	// reports what Asterisk holds.
	MaxContacts int
	// KeepExistingContacts refuses a registration beyond max_contacts
	// instead of replacing the oldest contact (aor remove_existing=no).
	// The default (false) suits phones that re-register from a new address.
	KeepExistingContacts bool
	// RequestTimeout bounds every ARI request (the ari library takes no
	// context); default 5s.
	RequestTimeout time.Duration
	// BackoffMin and BackoffMax bound the exponential back-off between
	// connection attempts; defaults 500ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// HealthInterval is how often a connected node is checked (startup time,
	// events websocket); default 2s. A restart is noticed within it.
	HealthInterval time.Duration
	// ListConcurrency bounds the parallel object reads of List per node;
	// default 16.
	ListConcurrency int
}

// NodeConfig is one Asterisk server.
type NodeConfig struct {
	// Name identifies the node in LineConfig.Node, logs and metrics.
	Name string
	// URL is the ARI base URL, e.g. http://10.0.0.5:8088/ari.
	URL string
	// Username and Password are an ari.conf user. Never logged.
	Username, Password string
	// App is the Stasis application name of the events websocket; default
	// "pbxd". Give each pbxd instance sharing an Asterisk its own name: a
	// second websocket with the same name replaces the first.
	App string
}

// Default values applied by New.
const (
	DefaultObjectPrefix   = "pbxd-"
	DefaultMaxContacts    = 1
	DefaultRequestTimeout = 5 * time.Second
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultHealthInterval = 2 * time.Second
	DefaultApp            = "pbxd"
)

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.ObjectPrefix == "" {
		c.ObjectPrefix = DefaultObjectPrefix
	}
	if len(c.Codecs) == 0 {
		c.Codecs = []string{"ulaw", "alaw", "g722"}
	}
	if c.MaxContacts == 0 {
		c.MaxContacts = DefaultMaxContacts
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.ListConcurrency == 0 {
		c.ListConcurrency = 16
	}
	nodes := make([]NodeConfig, len(c.Nodes))
	copy(nodes, c.Nodes)
	for i := range nodes {
		if nodes[i].App == "" {
			nodes[i].App = DefaultApp
		}
	}
	c.Nodes = nodes
	if c.DefaultNode == "" && len(nodes) > 0 {
		c.DefaultNode = nodes[0].Name
	}
	return c
}

var (
	idRe    = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	codecRe = regexp.MustCompile(`^[a-z0-9_]+$`)
)

// Validate reports every problem of the configuration at once. Secrets are
// never quoted in its messages.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Nodes) == 0 {
		bad("asterisk: at least one node is required")
	}
	names := map[string]bool{}
	for i, n := range c.Nodes {
		switch {
		case n.Name == "":
			bad("asterisk: nodes[%d]: name is required", i)
		case names[n.Name]:
			bad("asterisk: nodes[%d]: duplicate name %q", i, n.Name)
		}
		names[n.Name] = true
		if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("asterisk: node %q: url must be http(s)://host:port/ari", n.Name)
		} else if u.User != nil {
			bad("asterisk: node %q: url must not carry credentials; use username and password", n.Name)
		}
		if n.Username == "" || n.Password == "" {
			bad("asterisk: node %q: username and password are required", n.Name)
		}
		if !idRe.MatchString(n.App) {
			bad("asterisk: node %q: app %q must match %s", n.Name, n.App, idRe)
		}
	}
	if c.DefaultNode != "" && !names[c.DefaultNode] {
		bad("asterisk: default node %q is not a configured node", c.DefaultNode)
	}
	if !idRe.MatchString(c.ObjectPrefix) {
		bad("asterisk: object prefix %q must match %s", c.ObjectPrefix, idRe)
	}
	if c.Transport != "" && !idRe.MatchString(c.Transport) {
		bad("asterisk: transport %q must match %s", c.Transport, idRe)
	}
	for _, cd := range c.Codecs {
		if !codecRe.MatchString(cd) || cd == "all" {
			bad("asterisk: codec %q is not a codec name", cd)
		}
	}
	if c.QualifyFrequency < 0 || c.QualifyFrequency%time.Second != 0 {
		bad("asterisk: qualify frequency must be a non-negative whole number of seconds")
	}
	if c.MaxContacts < 1 {
		bad("asterisk: max contacts must be at least 1")
	}
	if c.RequestTimeout <= 0 || c.HealthInterval <= 0 || c.BackoffMin <= 0 {
		bad("asterisk: request timeout, health interval and back-off must be positive")
	}
	if c.BackoffMax < c.BackoffMin {
		bad("asterisk: backoff max %v is below backoff min %v", c.BackoffMax, c.BackoffMin)
	}
	if c.ListConcurrency < 1 {
		bad("asterisk: list concurrency must be at least 1")
	}
	return errors.Join(errs...)
}

// wsURL derives the events websocket URL from the ARI base URL.
func wsURL(base string) string {
	u, _ := url.Parse(strings.TrimSuffix(base, "/"))
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path += "/events"
	return u.String()
}

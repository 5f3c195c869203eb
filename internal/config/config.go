// Package config reads pbxd's one YAML file, strictly: an unknown key or a
// bad value names the key and the daemon refuses to start. Secrets may come
// from the environment or systemd credentials instead of the file, and the
// PBXD_* variables of DESIGN.md §9 override the file.
package config

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// Config is the whole daemon configuration.
type Config struct {
	// StateDir holds what pbxd keeps on disk: the private PostgreSQL cluster
	// (when no database URL is set) and generated development secrets.
	StateDir string `yaml:"state_dir"`
	// Log chooses the log level and format.
	Log Log `yaml:"log"`
	// Database is the PostgreSQL connection.
	Database Database `yaml:"database"`
	// HTTP is the API, health and metrics listener.
	HTTP HTTP `yaml:"http"`
	// SecretKey (base64 of 32 bytes) encrypts line passwords at rest. Prefer
	// PBXD_SECRET_KEY or the systemd credential "secret_key".
	SecretKey string `yaml:"secret_key"`
	// TestClock, an RFC 3339 time, enables the settable test clock. Never in
	// production.
	TestClock string `yaml:"test_clock"`
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Backend is the PBX: "builtin" (the SIP registrar) or "asterisk".
	Backend string `yaml:"backend"`
	// SIP configures the built-in registrar.
	SIP SIP `yaml:"sip"`
	// Asterisk configures the ARI backend.
	Asterisk Asterisk `yaml:"asterisk"`
	// Reconciler tunes how the PBX is kept equal to the database.
	Reconciler Reconciler `yaml:"reconciler"`
	// Scheduler tunes the leader-only scheduled jobs.
	Scheduler Scheduler `yaml:"scheduler"`
	// Billing configures invoices, renewals and dunning.
	Billing Billing `yaml:"billing"`
	// Phones configures the phone auto-provisioning server.
	Phones Phones `yaml:"phones"`
	// Numbers configures the phone number inventory.
	Numbers Numbers `yaml:"numbers"`
	// Catalog is the list of packages and add-ons sold.
	Catalog []Package `yaml:"catalog"`
}

// Log selects the slog handler.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or logfmt
}

// Database is the PostgreSQL connection.
type Database struct {
	// URL is a PostgreSQL URL; empty starts a private cluster in StateDir.
	URL string `yaml:"url"`
	// MaxConns bounds the pool.
	MaxConns int32 `yaml:"max_conns"`
	// ConnectWait bounds how long start-up waits for the database.
	ConnectWait Duration `yaml:"connect_wait"`
}

// HTTP is the API listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// OperatorToken may do everything. Prefer PBXD_OPERATOR_TOKEN or the
	// systemd credential "operator_token".
	OperatorToken string `yaml:"operator_token"`
	// TLSCert and TLSKey enable HTTPS (phones fetch credentials here).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// SIP configures the built-in registrar.
type SIP struct {
	// Listen is host:port for both UDP and TCP.
	Listen string `yaml:"listen"`
	// ExtraListen are more host:port addresses for UDP and TCP, e.g.
	// "[::1]:5060" beside listen's 127.0.0.1:5060.
	ExtraListen []string `yaml:"extra_listen"`
	// TLSListen, TLSCert, TLSKey enable SIP over TLS.
	TLSListen      string   `yaml:"tls_listen"`
	TLSCert        string   `yaml:"tls_cert"`
	TLSKey         string   `yaml:"tls_key"`
	MinExpires     Duration `yaml:"min_expires"`
	MaxExpires     Duration `yaml:"max_expires"`
	DefaultExpires Duration `yaml:"default_expires"`
	NonceLifetime  Duration `yaml:"nonce_lifetime"`
	MaxContacts    int      `yaml:"max_contacts"`
	// SweepInterval is how often lapsed bindings are expired; ReloadInterval
	// how often the whole in-memory view of the bindings is read again from
	// the database, which instances share (changes of another instance
	// arrive at once by LISTEN/NOTIFY; the reload repairs a lost one).
	SweepInterval  Duration `yaml:"sweep_interval"`
	ReloadInterval Duration `yaml:"reload_interval"`
	// Throttle blocks a user from a source after ThrottleFailures auth
	// failures within ThrottleWindow, for ThrottleBlock; a source failing
	// ThrottleSourceFailures times for any users is blocked altogether.
	ThrottleFailures       int      `yaml:"throttle_failures"`
	ThrottleSourceFailures int      `yaml:"throttle_source_failures"`
	ThrottleWindow         Duration `yaml:"throttle_window"`
	ThrottleBlock          Duration `yaml:"throttle_block"`
	// TCP/TLS connections: first bytes (TLS ClientHello) within
	// ConnFirstReadTimeout, closed after ConnIdleTimeout without traffic,
	// at most ConnsPerSource per source address (IPv6 /64), ConnsMax in all.
	ConnFirstReadTimeout Duration `yaml:"conn_first_read_timeout"`
	ConnIdleTimeout      Duration `yaml:"conn_idle_timeout"`
	ConnsPerSource       int      `yaml:"conns_per_source"`
	ConnsMax             int      `yaml:"conns_max"`
	// ServerHeader is the Server header of responses; empty sends none.
	ServerHeader string `yaml:"server_header"`
	// AllowThirdParty lets a REGISTER's From differ from its To; false
	// answers 403.
	AllowThirdParty bool `yaml:"allow_third_party"`
	// DigestAlgorithms are offered in challenges, in order: MD5, SHA-256.
	// MD5 alone by default: some clients (Debian's baresip) fail on any
	// SHA-256 challenge.
	DigestAlgorithms []string `yaml:"digest_algorithms"`
	// AccountDigestAlgorithms overrides DigestAlgorithms per account, keyed
	// by the account's SIP domain.
	AccountDigestAlgorithms map[string][]string `yaml:"account_digest_algorithms"`
}

// Asterisk configures the ARI backend.
type Asterisk struct {
	Nodes          []AsteriskNode `yaml:"nodes"`
	ObjectPrefix   string         `yaml:"object_prefix"`
	Transport      string         `yaml:"transport"`
	Codecs         []string       `yaml:"codecs"`
	QualifySeconds int            `yaml:"qualify_seconds"`
	RequestTimeout Duration       `yaml:"request_timeout"`
}

// AsteriskNode is one Asterisk server.
type AsteriskNode struct {
	Name     string `yaml:"name"`
	URL      string `yaml:"url"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	App      string `yaml:"app"`
	// Capacity is the most live lines placement puts on the node (an
	// account created without pbx_node); 0 or absent: unlimited.
	Capacity int `yaml:"capacity"`
	// Weight is the node's share of the lines placement aims at; 0 or
	// absent: 1.
	Weight int `yaml:"weight"`
	// Registrar is the host the phones of the node's accounts register
	// to; absent: phones.registrar. Phone files follow account moves.
	Registrar string `yaml:"registrar"`
}

// Reconciler tunes the PBX sync loop.
type Reconciler struct {
	Concurrency    int      `yaml:"concurrency"`
	ResyncInterval Duration `yaml:"resync_interval"`
	RetryMin       Duration `yaml:"retry_min"`
	RetryMax       Duration `yaml:"retry_max"`
	// LeaseTTL bounds the takeover of a dead instance's Asterisk nodes
	// (about 1.25 × LeaseTTL): each node is reconciled by the holder of its
	// lease, renewed every quarter of it.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// Scheduler tunes the scheduled jobs' leader election.
type Scheduler struct {
	// CheckInterval bounds failover: every instance looks for due jobs
	// (another's interrupted run included) this often, and a leader checks
	// its lock session this often.
	CheckInterval Duration `yaml:"check_interval"`
}

// Billing configures the billing engine.
type Billing struct {
	// Schedule is the renewal job's cron expression (5 fields), in UTC.
	Schedule string `yaml:"schedule"`
	// CreditOnDecrease gives a prorated credit when lines are removed.
	CreditOnDecrease bool `yaml:"credit_on_decrease"`
	// PaymentTermDays sets invoice due dates.
	PaymentTermDays int `yaml:"payment_term_days"`
	// Dunning lists retry offsets after a failed payment; after the last
	// failure the subscription becomes inactive and its lines suspended.
	Dunning []Duration `yaml:"dunning"`
	// RenewalBatch is the most subscriptions one renewal transaction takes,
	// in whole accounts (1: one transaction per account).
	RenewalBatch int    `yaml:"renewal_batch"`
	Issuer       Issuer `yaml:"issuer"`
}

// Issuer is the operator's identity on invoices.
type Issuer struct {
	Code    string   `yaml:"code"` // invoice numbering series
	Name    string   `yaml:"name"`
	Address []string `yaml:"address"`
	VATID   string   `yaml:"vat_id"`
	// Bank details printed on invoices to be paid by bank transfer.
	Bank string `yaml:"bank"`
	IBAN string `yaml:"iban"`
	BIC  string `yaml:"bic"`
}

// Numbers configures the phone number inventory.
type Numbers struct {
	// Quarantine is how long a released or ported-out number ages before
	// it is sold again (regulators and callers expect a gap).
	Quarantine Duration `yaml:"quarantine"`
}

// Phones configures phone auto-provisioning.
type Phones struct {
	// Registrar is the host phones register to (written into their config).
	Registrar      string   `yaml:"registrar"`
	Port           int      `yaml:"port"`
	Transport      string   `yaml:"transport"`
	OutboundProxy  string   `yaml:"outbound_proxy"`
	RegisterExpiry int      `yaml:"register_expiry"`
	NTPServer      string   `yaml:"ntp_server"`
	TemplateDir    string   `yaml:"template_dir"`
	ThrottleMisses int      `yaml:"throttle_misses"`
	ThrottleWindow Duration `yaml:"throttle_window"`
	ThrottleBlock  Duration `yaml:"throttle_block"`
}

// Package is one catalog entry.
type Package struct {
	Code        string  `yaml:"code"`
	Name        string  `yaml:"name"`
	Kind        string  `yaml:"kind"` // package or addon
	PriceMinor  int64   `yaml:"price_minor"`
	Currency    string  `yaml:"currency"`
	Cycles      []Cycle `yaml:"cycles"`
	TrialDays   int     `yaml:"trial_days"`
	DialContext string  `yaml:"dial_context"`
	// FixedMonthDays prorates over a 30-day month instead of real days.
	FixedMonthDays bool `yaml:"fixed_month_days"`
	// ExcludeOrderDay does not charge the day of the order.
	ExcludeOrderDay bool `yaml:"exclude_order_day"`
	// Decrease is when a lower quantity takes effect: immediate_credit (the
	// default: lines go now, prorated credit) or period_end (lines stay
	// until the period ends, no credit).
	Decrease string `yaml:"decrease"`
	// DecreaseChoice lets customers pick the other one per order.
	DecreaseChoice bool `yaml:"decrease_choice"`
	// Stock (kind hardware) is how many units were received; unset:
	// unlimited. What is left is the stock minus the units sold.
	Stock *int `yaml:"stock"`
	// Vendor and Model (kind hardware) are what the phone provisions as.
	Vendor string `yaml:"vendor"`
	Model  string `yaml:"model"`
}

// Cycle is a billing cycle offered for a package.
type Cycle struct {
	Cycle           string  `yaml:"cycle"` // monthly, quarterly, semiannual or annual
	DiscountPercent Percent `yaml:"discount_percent"`
}

// Duration is a time.Duration written as "30s" or "24h".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration like 30s or 24h", n.Value)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Load reads path over the embedded defaults (path "" means defaults only),
// then applies secrets and environment overrides, then validates.
func Load(path string, env func(string) string) (*Config, error) {
	cfg, err := parse(defaultsYAML, "defaults")
	if err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decodeInto(cfg, b, path); err != nil {
			return nil, err
		}
	}
	if err := cfg.applyEnv(env); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Defaults returns the embedded default configuration.
func Defaults() *Config {
	cfg, err := parse(defaultsYAML, "defaults")
	if err != nil {
		panic(err) // tested
	}
	return cfg
}

func parse(b []byte, name string) (*Config, error) {
	cfg := &Config{}
	return cfg, decodeInto(cfg, b, name)
}

func decodeInto(cfg *Config, b []byte, name string) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(root.Content) == 0 {
		return nil // an empty file keeps the defaults
	}
	if err := checkKeys(root.Content[0], cfgType, ""); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// Replace lists wholesale (a file's catalog replaces the demo catalog),
	// merge maps key by key.
	if hasKey(root.Content[0], "catalog") {
		cfg.Catalog = nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func hasKey(n *yaml.Node, key string) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// Secret names: environment variable and systemd credential file.
var secrets = []struct {
	env, cred string
	field     func(*Config) *string
}{
	{"PBXD_DATABASE_URL", "database_url", func(c *Config) *string { return &c.Database.URL }},
	{"PBXD_SECRET_KEY", "secret_key", func(c *Config) *string { return &c.SecretKey }},
	{"PBXD_OPERATOR_TOKEN", "operator_token", func(c *Config) *string { return &c.HTTP.OperatorToken }},
}

func (c *Config) applyEnv(env func(string) string) error {
	if dir := env("CREDENTIALS_DIRECTORY"); dir != "" {
		for _, s := range secrets {
			b, err := os.ReadFile(filepath.Join(dir, s.cred))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("credential %s: %w", s.cred, err)
			}
			*s.field(c) = strings.TrimSpace(string(b))
		}
	}
	for _, s := range secrets {
		if v := env(s.env); v != "" {
			*s.field(c) = v
		}
	}
	plain := []struct {
		env string
		dst *string
	}{
		{"PBXD_STATE_DIR", &c.StateDir},
		{"PBXD_HTTP_LISTEN", &c.HTTP.Listen},
		{"PBXD_SIP_LISTEN", &c.SIP.Listen},
		{"PBXD_TEST_CLOCK", &c.TestClock},
		{"PBXD_BACKEND", &c.Backend},
	}
	for _, p := range plain {
		if v := env(p.env); v != "" {
			*p.dst = v
		}
	}
	if url := env("PBXD_ARI_URL"); url != "" {
		app := env("PBXD_ARI_APP")
		if app == "" {
			app = "pbxd"
		}
		c.Asterisk.Nodes = []AsteriskNode{{Name: "default", URL: url, Username: env("PBXD_ARI_USERNAME"), App: app}}
	}
	// The ARI password: PBXD_ARI_PASSWORD for a single node, else the systemd
	// credential "ari_password" for every node the file gives none.
	ariCred := ""
	if dir := env("CREDENTIALS_DIRECTORY"); dir != "" {
		b, err := os.ReadFile(filepath.Join(dir, "ari_password"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("credential ari_password: %w", err)
		}
		ariCred = strings.TrimSpace(string(b))
	}
	for i := range c.Asterisk.Nodes {
		if c.Asterisk.Nodes[i].Password == "" {
			c.Asterisk.Nodes[i].Password = ariCred
		}
	}
	if pw := env("PBXD_ARI_PASSWORD"); pw != "" && len(c.Asterisk.Nodes) == 1 {
		c.Asterisk.Nodes[0].Password = pw
	}
	if c.StateDir == "" {
		c.StateDir = env("STATE_DIRECTORY") // systemd StateDirectory=
	}
	if c.StateDir == "" {
		c.StateDir = ".pbxd"
	}
	return nil
}

var (
	codeRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	hostRe     = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)

// Validate checks every value and names the key at fault. Each section of
// the config has its own check; all problems are reported at once.
func (c *Config) Validate() error {
	var ps problems
	c.validateLog(&ps)
	c.validateListeners(&ps)
	c.validateProcess(&ps)
	c.validateBackend(&ps)
	c.validateSIP(&ps)
	c.validateReconciler(&ps)
	c.validateBilling(&ps)
	c.validateCatalog(&ps)
	return errors.Join(ps...)
}

// problems collects what Validate finds.
type problems []error

// bad records a problem with key.
func (ps *problems) bad(key, format string, args ...any) {
	*ps = append(*ps, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (c *Config) validateLog(ps *problems) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "logfmt" {
		ps.bad("log.format", "%q is not json or logfmt", c.Log.Format)
	}
	if c.Database.URL != "" && !strings.HasPrefix(c.Database.URL, "postgres://") && !strings.HasPrefix(c.Database.URL, "postgresql://") {
		ps.bad("database.url", "must be a postgres:// URL")
	}
}

// validateListeners checks the HTTP and SIP addresses and their TLS files.
func (c *Config) validateListeners(ps *problems) {
	checkAddr := func(key, v string, required bool) {
		if v == "" && !required {
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			ps.bad(key, "%q is not host:port", v)
		}
	}
	checkAddr("http.listen", c.HTTP.Listen, true)
	checkAddr("sip.listen", c.SIP.Listen, c.Backend == "builtin")
	checkAddr("sip.tls_listen", c.SIP.TLSListen, false)
	for i, a := range c.SIP.ExtraListen {
		checkAddr(fmt.Sprintf("sip.extra_listen[%d]", i), a, true)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		ps.bad("http.tls_cert", "tls_cert and tls_key go together")
	}
	if c.SIP.TLSListen != "" && (c.SIP.TLSCert == "" || c.SIP.TLSKey == "") {
		ps.bad("sip.tls_listen", "needs sip.tls_cert and sip.tls_key")
	}
}

// validateProcess checks the daemon-wide settings: secret key, test clock,
// shutdown bound.
func (c *Config) validateProcess(ps *problems) {
	if c.SecretKey != "" {
		if k, err := base64.StdEncoding.DecodeString(c.SecretKey); err != nil || len(k) != 32 {
			ps.bad("secret_key", "must be the base64 encoding of 32 bytes (openssl rand -base64 32)")
		}
	}
	if c.TestClock != "" {
		if _, err := time.Parse(time.RFC3339, c.TestClock); err != nil {
			ps.bad("test_clock", "%q is not an RFC 3339 time", c.TestClock)
		}
	}
	if c.ShutdownTimeout <= 0 {
		ps.bad("shutdown_timeout", "must be positive")
	}
}

func (c *Config) validateBackend(ps *problems) {
	switch c.Backend {
	case "builtin":
	case "asterisk":
		if len(c.Asterisk.Nodes) == 0 {
			ps.bad("asterisk.nodes", "the asterisk backend needs at least one node (or PBXD_ARI_URL)")
		}
		seen := map[string]bool{}
		for i, n := range c.Asterisk.Nodes {
			key := fmt.Sprintf("asterisk.nodes[%d]", i)
			if n.Name == "" || seen[n.Name] {
				ps.bad(key+".name", "must be set and unique")
			}
			seen[n.Name] = true
			if !strings.HasPrefix(n.URL, "http://") && !strings.HasPrefix(n.URL, "https://") {
				ps.bad(key+".url", "must be an http(s) URL like http://127.0.0.1:8088")
			}
			if n.Capacity < 0 {
				ps.bad(key+".capacity", "must be 0 (unlimited) or a number of lines, not %d", n.Capacity)
			}
			if n.Weight < 0 || n.Weight > 1000 {
				ps.bad(key+".weight", "must be between 1 and 1000 (0 or absent means 1), not %d", n.Weight)
			}
			if n.Registrar != "" && (strings.ContainsAny(n.Registrar, ":/ @") || (net.ParseIP(n.Registrar) == nil && !hostRe.MatchString(n.Registrar))) {
				ps.bad(key+".registrar", "%q is not a host name or IPv4 address (the port is phones.port)", n.Registrar)
			}
		}
	default:
		ps.bad("backend", "%q is not builtin or asterisk", c.Backend)
	}
}

// validateSIP checks the built-in registrar's limits and digest algorithms.
func (c *Config) validateSIP(ps *problems) {
	if c.SIP.MinExpires <= 0 || c.SIP.MaxExpires < c.SIP.MinExpires {
		ps.bad("sip.min_expires", "must be positive and not above sip.max_expires")
	}
	if c.SIP.MaxContacts < 1 {
		ps.bad("sip.max_contacts", "must be at least 1")
	}
	if c.SIP.SweepInterval <= 0 {
		ps.bad("sip.sweep_interval", "must be positive")
	}
	if c.SIP.ReloadInterval <= 0 {
		ps.bad("sip.reload_interval", "must be positive")
	}
	if c.SIP.ThrottleFailures < 0 {
		ps.bad("sip.throttle_failures", "must not be negative (0 disables)")
	}
	if c.SIP.ThrottleSourceFailures < 0 {
		ps.bad("sip.throttle_source_failures", "must not be negative (0 disables)")
	}
	if c.SIP.ConnFirstReadTimeout <= 0 || c.SIP.ConnIdleTimeout <= 0 {
		ps.bad("sip.conn_idle_timeout", "conn_first_read_timeout and conn_idle_timeout must be positive")
	}
	if c.SIP.ConnsPerSource < 1 || c.SIP.ConnsMax < c.SIP.ConnsPerSource {
		ps.bad("sip.conns_per_source", "must be at least 1 and not above sip.conns_max")
	}
	ps.checkAlgs("sip.digest_algorithms", c.SIP.DigestAlgorithms)
	for d, algs := range c.SIP.AccountDigestAlgorithms {
		ps.checkAlgs("sip.account_digest_algorithms."+d, algs)
	}
}

func (ps *problems) checkAlgs(key string, algs []string) {
	seen := map[string]bool{}
	for _, a := range algs {
		u := strings.ToUpper(a)
		if (u != "MD5" && u != "SHA-256") || seen[u] {
			ps.bad(key, "%q: each of MD5, SHA-256 at most once", a)
		}
		seen[u] = true
	}
	if len(algs) == 0 {
		ps.bad(key, "must offer at least one of MD5, SHA-256")
	}
}

// validateReconciler checks the reconciler and number inventory settings.
func (c *Config) validateReconciler(ps *problems) {
	if c.Numbers.Quarantine < 0 {
		ps.bad("numbers.quarantine", "must not be negative")
	}
	if c.Reconciler.Concurrency < 1 || c.Reconciler.Concurrency > 256 {
		ps.bad("reconciler.concurrency", "must be between 1 and 256")
	}
	if c.Scheduler.CheckInterval < Duration(100*time.Millisecond) || c.Scheduler.CheckInterval > Duration(time.Hour) {
		ps.bad("scheduler.check_interval", "must be between 100ms and 1h")
	}
	if c.Reconciler.LeaseTTL < Duration(time.Second) || c.Reconciler.LeaseTTL > Duration(10*time.Minute) {
		ps.bad("reconciler.lease_ttl", "must be between 1s and 10m")
	}
	if c.Reconciler.ResyncInterval < Duration(time.Second) {
		ps.bad("reconciler.resync_interval", "must be at least 1s")
	}
}

func (c *Config) validateBilling(ps *problems) {
	if _, err := cron.ParseStandard(c.Billing.Schedule); err != nil {
		ps.bad("billing.schedule", "%v", err)
	}
	if c.Billing.RenewalBatch < 1 || c.Billing.RenewalBatch > 1000 {
		ps.bad("billing.renewal_batch", "must be between 1 and 1000")
	}
	if c.Billing.PaymentTermDays < 0 {
		ps.bad("billing.payment_term_days", "must not be negative")
	}
	for i, d := range c.Billing.Dunning {
		if d <= 0 || (i > 0 && d <= c.Billing.Dunning[i-1]) {
			ps.bad(fmt.Sprintf("billing.dunning[%d]", i), "offsets must be positive and increasing")
		}
	}
	if !codeRE.MatchString(c.Billing.Issuer.Code) {
		ps.bad("billing.issuer.code", "%q must be lowercase letters, digits and dashes", c.Billing.Issuer.Code)
	}
}

func (c *Config) validateCatalog(ps *problems) {
	if len(c.Catalog) == 0 {
		ps.bad("catalog", "must hold at least one package")
	}
	codes := map[string]bool{}
	for i, p := range c.Catalog {
		key := fmt.Sprintf("catalog[%d]", i)
		if !codeRE.MatchString(p.Code) {
			ps.bad(key+".code", "%q must be lowercase letters, digits and dashes", p.Code)
		}
		if codes[p.Code] {
			ps.bad(key+".code", "%q appears twice", p.Code)
		}
		codes[p.Code] = true
		p.validate(ps, key)
	}
}

// validate checks one catalog entry, named key, but for its code (which
// validateCatalog checks against the others).
func (p Package) validate(ps *problems, key string) {
	if p.Name == "" {
		ps.bad(key+".name", "must be set")
	}
	switch p.Kind {
	case "package", "addon", "":
		if p.Stock != nil || p.Vendor != "" || p.Model != "" {
			ps.bad(key+".stock", "stock, vendor and model are for kind hardware")
		}
	case "hardware":
		// A one-time sale: no cycle, no dial plan; a phone model.
		if p.Vendor == "" {
			ps.bad(key+".vendor", "must be set (yealink, polycom, grandstream, snom or cisco)")
		}
		if p.Stock != nil && *p.Stock < 0 {
			ps.bad(key+".stock", "must not be negative")
		}
		if len(p.Cycles) > 0 || p.DialContext != "" || p.TrialDays != 0 || p.Decrease != "" {
			ps.bad(key+".cycles", "hardware is sold once: no cycles, dial_context, trial_days or decrease")
		}
	default:
		ps.bad(key+".kind", "%q is not package, addon or hardware", p.Kind)
		if p.Stock != nil || p.Vendor != "" || p.Model != "" {
			ps.bad(key+".stock", "stock, vendor and model are for kind hardware")
		}
	}
	if p.PriceMinor < 0 || p.PriceMinor > 100_000_000 {
		ps.bad(key+".price_minor", "must be between 0 and 100000000")
	}
	if !currencyRE.MatchString(p.Currency) {
		ps.bad(key+".currency", "%q is not an ISO 4217 code", p.Currency)
	}
	if p.TrialDays < 0 || p.TrialDays > 365 {
		ps.bad(key+".trial_days", "must be between 0 and 365")
	}
	if p.DialContext == "" && p.Kind != "hardware" {
		ps.bad(key+".dial_context", "must be set")
	}
	if p.Decrease != "" && p.Decrease != "immediate_credit" && p.Decrease != "period_end" {
		ps.bad(key+".decrease", "%q is not immediate_credit or period_end", p.Decrease)
	}
	if len(p.Cycles) == 0 && p.Kind != "hardware" {
		ps.bad(key+".cycles", "must offer at least one cycle")
	}
	for j, cy := range p.Cycles {
		if !slices.Contains([]string{"monthly", "quarterly", "semiannual", "annual"}, cy.Cycle) {
			ps.bad(fmt.Sprintf("%s.cycles[%d].cycle", key, j), "%q is not monthly, quarterly, semiannual or annual", cy.Cycle)
		}
	}
}

// Cycle returns the cycle named name, if the package offers it.
func (p Package) Cycle(name string) (Cycle, bool) {
	for _, c := range p.Cycles {
		if c.Cycle == name {
			return c, true
		}
	}
	return Cycle{}, false
}

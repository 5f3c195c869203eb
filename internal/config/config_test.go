package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pbxd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValidAndHoldTheDemoCatalog(t *testing.T) {
	t.Parallel()
	cfg, err := Load("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:8080" || cfg.SIP.Listen != "127.0.0.1:5060" || cfg.Backend != "builtin" {
		t.Fatalf("defaults: http %q sip %q backend %q", cfg.HTTP.Listen, cfg.SIP.Listen, cfg.Backend)
	}
	want := map[string]int64{"fr-fixed-mobile": 4990, "world": 6990}
	for _, p := range cfg.Catalog {
		if price, ok := want[p.Code]; ok {
			annual, _ := p.Cycle("annual")
			if p.PriceMinor != price || p.Currency != "EUR" || annual.DiscountPercent.BP != 1500 {
				t.Errorf("%s: %+v", p.Code, p)
			}
			delete(want, p.Code)
		}
	}
	if len(want) > 0 {
		t.Fatalf("demo catalog lacks %v", want)
	}
}

// The shipped example must load as it is and agree with the embedded
// defaults, so documentation and behaviour cannot drift apart.
func TestExampleConfigMatchesDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Load("../../configs/pbxd.yaml", noEnv)
	if err != nil {
		t.Fatalf("configs/pbxd.yaml: %v", err)
	}
	def := Defaults()
	def.StateDir, cfg.StateDir = "", ""
	a, b := strings.TrimSpace(dump(t, def)), strings.TrimSpace(dump(t, cfg))
	if a != b {
		t.Fatalf("configs/pbxd.yaml differs from the embedded defaults:\n--- defaults\n%s\n--- example\n%s", a, b)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, want string }{
		{"unknown top-level key", "htp:\n  listen: x\n", "unknown key htp (line 1)"},
		{"unknown nested key", "http:\n  listn: 127.0.0.1:1\n", "unknown key http.listn (line 2)"},
		{"unknown key in a list", "catalog:\n  - code: a\n    prize: 1\n", "unknown key catalog[0].prize (line 3)"},
		{"bad listen address", "http:\n  listen: nonsense\n", "http.listen"},
		{"bad duration", "shutdown_timeout: soon\n", "not a duration"},
		{"bad level", "log:\n  level: loud\n", "log.level"},
		{"bad backend", "backend: freeswitch\n", "backend"},
		{"asterisk without nodes", "backend: asterisk\n", "asterisk.nodes"},
		{"negative capacity", "backend: asterisk\nasterisk:\n  nodes:\n    - {name: a, url: 'http://127.0.0.1:8088', capacity: -1}\n", "asterisk.nodes[0].capacity"},
		{"weight out of range", "backend: asterisk\nasterisk:\n  nodes:\n    - {name: a, url: 'http://127.0.0.1:8088'}\n    - {name: b, url: 'http://127.0.0.1:8089', weight: 5000}\n", "asterisk.nodes[1].weight"},
		{"registrar with a port", "backend: asterisk\nasterisk:\n  nodes:\n    - {name: a, url: 'http://127.0.0.1:8088', registrar: 'pbx1.example.net:5060'}\n", "asterisk.nodes[0].registrar"},
		{"bad schedule", "billing:\n  schedule: every day\n", "billing.schedule"},
		{"renewal batch of none", "billing:\n  renewal_batch: 0\n", "billing.renewal_batch"},
		{"bad discount", "catalog:\n  - {code: a, name: A, price_minor: 1, currency: EUR, dial_context: c, cycles: [{cycle: annual, discount_percent: 120}]}\n", "discount_percent"},
		{"bad currency", "catalog:\n  - {code: a, name: A, price_minor: 1, currency: euro, dial_context: c, cycles: [{cycle: monthly}]}\n", "catalog[0].currency"},
		{"duplicate package", "catalog:\n  - {code: a, name: A, price_minor: 1, currency: EUR, dial_context: c, cycles: [{cycle: monthly}]}\n  - {code: a, name: B, price_minor: 1, currency: EUR, dial_context: c, cycles: [{cycle: monthly}]}\n", "appears twice"},
		{"bad secret key", "secret_key: short\n", "secret_key"},
		{"bad test clock", "test_clock: tomorrow\n", "test_clock"},
		{"bad database url", "database:\n  url: mysql://x\n", "database.url"},
		{"not yaml", "http: [\n", "pbxd.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(writeFile(t, tc.body), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	t.Parallel()
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), noEnv); err == nil {
		t.Fatal("a missing config file must be an error")
	}
}

func TestEnvironmentAndCredentialsOverrideTheFile(t *testing.T) {
	t.Parallel()
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "operator_token"), []byte("from-credential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "database_url"), []byte("postgres://cred@db/pbxd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "http:\n  operator_token: from-file\n")
	cfg, err := Load(path, envOf(map[string]string{
		"CREDENTIALS_DIRECTORY": creds,
		"PBXD_DATABASE_URL":     "postgres://env@db/pbxd",
		"PBXD_HTTP_LISTEN":      "127.0.0.1:9999",
		"PBXD_BACKEND":          "asterisk",
		"PBXD_ARI_URL":          "http://127.0.0.1:8088",
		"PBXD_ARI_USERNAME":     "pbxd",
		"PBXD_ARI_PASSWORD":     "s3cret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.OperatorToken != "from-credential" {
		t.Errorf("operator token = %q, want the credential's", cfg.HTTP.OperatorToken)
	}
	if cfg.Database.URL != "postgres://env@db/pbxd" {
		t.Errorf("database url = %q, want the environment's (it beats the credential)", cfg.Database.URL)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9999" {
		t.Errorf("http listen = %q", cfg.HTTP.Listen)
	}
	if len(cfg.Asterisk.Nodes) != 1 || cfg.Asterisk.Nodes[0].App != "pbxd" || cfg.Asterisk.Nodes[0].Password != "s3cret" {
		t.Errorf("asterisk nodes = %+v", cfg.Asterisk.Nodes)
	}
}

func TestFileCatalogReplacesTheDemoCatalog(t *testing.T) {
	t.Parallel()
	cfg, err := Load(writeFile(t, "catalog:\n  - {code: solo, name: Solo, price_minor: 1000, currency: USD, dial_context: pkg-solo, cycles: [{cycle: monthly, discount_percent: 12.5}]}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Catalog) != 1 || cfg.Catalog[0].Code != "solo" || cfg.Catalog[0].Cycles[0].DiscountPercent.BP != 1250 {
		t.Fatalf("catalog = %+v", cfg.Catalog)
	}
}

func TestARIPasswordFromACredential(t *testing.T) {
	t.Parallel()
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "ari_password"), []byte("from-credential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("", envOf(map[string]string{
		"CREDENTIALS_DIRECTORY": creds, "PBXD_BACKEND": "asterisk",
		"PBXD_ARI_URL": "http://127.0.0.1:8088", "PBXD_ARI_USERNAME": "pbxd",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.Asterisk.Nodes; len(n) != 1 || n[0].Password != "from-credential" || n[0].App != "pbxd" {
		t.Fatalf("nodes = %+v", n)
	}
	path := writeFile(t, "backend: asterisk\nasterisk:\n  nodes:\n    - {name: a, url: 'http://a:8088', username: u}\n    - {name: b, url: 'http://b:8088', username: u, password: own}\n")
	cfg, err = Load(path, envOf(map[string]string{"CREDENTIALS_DIRECTORY": creds}))
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.Asterisk.Nodes; n[0].Password != "from-credential" || n[1].Password != "own" {
		t.Fatalf("nodes = %+v", n)
	}
}

// Node capacity, weight and registrar are optional: an old config without
// them loads unchanged, a new one carries them.
func TestNodePlacementSettings(t *testing.T) {
	t.Parallel()
	body := "backend: asterisk\nasterisk:\n  nodes:\n    - {name: a, url: 'http://127.0.0.1:8088', username: u, password: p}\n" +
		"    - {name: b, url: 'http://127.0.0.1:8089', username: u, password: p, capacity: 50000, weight: 2, registrar: pbx2.example.net}\n"
	cfg, err := Load(writeFile(t, body), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Asterisk.Nodes[0], cfg.Asterisk.Nodes[1]
	if a.Capacity != 0 || a.Weight != 0 || a.Registrar != "" || b.Capacity != 50000 || b.Weight != 2 || b.Registrar != "pbx2.example.net" {
		t.Fatalf("nodes = %+v", cfg.Asterisk.Nodes)
	}
}

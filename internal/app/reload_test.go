package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/provisioning/phones"
)

// testConfig is a daemon's config on database url, as apptest builds it.
func testConfig(t *testing.T, url string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.Database.URL = url
	cfg.StateDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.HTTP.OperatorToken = "old-token"
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg.SecretKey = base64.StdEncoding.EncodeToString(key)
	cfg.TestClock = "2026-11-16T10:00:00+01:00"
	cfg.Log.Level = "info"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestApp builds (and does not run) a daemon with its own registry.
func newTestApp(t *testing.T, cfg *config.Config, version string) *App {
	t.Helper()
	logger, level := NewLogger(cfg, io.Discard)
	a, err := New(context.Background(), cfg, Options{Logger: logger, Level: level, Registry: prometheus.NewRegistry(), Version: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.teardown)
	return a
}

// reloadState is everything a reload may change.
type reloadState struct {
	Level    slog.Level
	Token    string
	Billing  billing.Settings
	Phones   phones.Settings
	Catalog  []string // code, name and retired of every package in the database
	Config   *config.Config
	LoadedAt int64
}

func stateOf(t *testing.T, a *App) reloadState {
	t.Helper()
	pkgs, err := a.prov.Packages(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var cat []string
	for _, p := range pkgs {
		b, _ := json.Marshal([]any{p.Code, p.Name, p.Retired, p.PriceMinor})
		cat = append(cat, string(b))
	}
	slices.Sort(cat)
	return reloadState{Level: a.level.Level(), Token: a.OperatorToken(), Billing: a.bill.Settings(),
		Phones: a.phones.Settings(), Catalog: cat, Config: a.cfg.Load(), LoadedAt: a.loadedAt.Load()}
}

// A reload is all or nothing: with any one part failing, neither the
// others' in-memory state nor the catalog in the database changes, and
// the reload is reported failed. The same config with no failing part
// changes every part (so the checks above can see a change).
func TestReloadIsAllOrNothing(t *testing.T) {
	url := storetest.NewDatabase(t)
	a := newTestApp(t, testConfig(t, url), "")
	a.loadedAt.Store(1) // any reload that succeeds moves it

	good := t.TempDir() // a template directory with no overrides: valid
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, "snom"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "snom", "settings.xml.tmpl"), []byte("{{ .NoSuchField }}"), 0o600); err != nil {
		t.Fatal(err)
	}
	// changed is a valid config that differs in every reloadable part.
	changed := func() *config.Config {
		c := testConfig(t, url)
		c.Log.Level = "debug"
		c.HTTP.OperatorToken = "new-token"
		c.Billing.Issuer.Name = "New Issuer Ltd"
		c.Phones.TemplateDir = good
		extra := c.Catalog[0]
		extra.Code, extra.Name = "reload-extra", "Added by the reload"
		c.Catalog = append(c.Catalog, extra)
		return c
	}
	// A trigger makes the catalog's write fail in the database itself, as
	// a lost connection or a constraint would.
	failWrites := func(t *testing.T) {
		_, err := a.pool.Exec(context.Background(), `
			CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
			CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON packages FOR EACH ROW EXECUTE FUNCTION refuse()`)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := a.pool.Exec(context.Background(), `DROP TRIGGER refuse ON packages; DROP FUNCTION refuse()`); err != nil {
				t.Error(err)
			}
		})
	}
	failures := []struct {
		name   string
		break_ func(t *testing.T, c *config.Config)
	}{
		{"billing settings", func(t *testing.T, c *config.Config) { c.Billing.Issuer.Name = "" }},
		{"phone templates", func(t *testing.T, c *config.Config) { c.Phones.TemplateDir = bad }},
		{"catalog check", func(t *testing.T, c *config.Config) {
			hw := c.Catalog[0]
			hw.Code, hw.Kind, hw.Vendor, hw.Model = "bad-phone", "hardware", "acme", "X1"
			c.Catalog = append(c.Catalog, hw)
		}},
		{"catalog write", func(t *testing.T, c *config.Config) { failWrites(t) }},
	}
	before := stateOf(t, a)
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			c := changed()
			f.break_(t, c)
			if err := a.Reload(c); err == nil {
				t.Fatal("the reload succeeded")
			}
			if after := stateOf(t, a); !reflect.DeepEqual(after, before) {
				t.Errorf("a failed reload changed the daemon:\nbefore %+v\nafter  %+v", before, after)
			}
			if v := testutil.ToFloat64(a.reloadOK); v != 0 {
				t.Errorf("pbxd_config_last_reload_successful = %v after a failed reload", v)
			}
		})
	}

	c := changed()
	if err := a.Reload(c); err != nil {
		t.Fatal(err)
	}
	after := stateOf(t, a)
	if after.Level != slog.LevelDebug || after.Token != "new-token" || after.Billing.Issuer.Name != "New Issuer Ltd" ||
		after.Phones.OverrideDir != good || len(after.Catalog) != len(before.Catalog)+1 || after.Config != c || after.LoadedAt == 1 {
		t.Errorf("the good reload did not change every part:\nbefore %+v\nafter  %+v", before, after)
	}
	if v := testutil.ToFloat64(a.reloadOK); v != 1 {
		t.Errorf("pbxd_config_last_reload_successful = %v after a good reload", v)
	}
}

// Two daemons in one process share no state: each reports its own
// version and its own configuration load time, and reloading one leaves
// the other's alone.
func TestTwoDaemonsShareNothing(t *testing.T) {
	a := newTestApp(t, testConfig(t, storetest.NewDatabase(t)), "v1.0.0-a")
	b := newTestApp(t, testConfig(t, storetest.NewDatabase(t)), "v2.0.0-b")
	for _, d := range []*App{a, b} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	for d, want := range map[*App]string{a: "v1.0.0-a", b: "v2.0.0-b"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+d.HTTPAddr()+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+d.OperatorToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Version string }
		err = json.NewDecoder(resp.Body).Decode(&st)
		if cerr := resp.Body.Close(); err == nil {
			err = cerr
		}
		if err != nil || st.Version != want || d.Version() != want {
			t.Errorf("daemon reports version %q (%v), want %q", st.Version, err, want)
		}
	}

	// Reload a once the second b was loaded in has passed: a's load time
	// moves, b's stays.
	bLoaded := b.LoadedAt()
	for !time.Now().After(bLoaded.Add(time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.Reload(testConfig(t, a.cfg.Load().Database.URL)); err != nil {
		t.Fatal(err)
	}
	if !a.LoadedAt().After(bLoaded) {
		t.Errorf("a's load time %v did not move past b's %v", a.LoadedAt(), bLoaded)
	}
	if got := b.LoadedAt(); !got.Equal(bLoaded) {
		t.Errorf("reloading a moved b's load time from %v to %v", bLoaded, got)
	}
}

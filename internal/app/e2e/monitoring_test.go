package e2e

// Tests of what ships for monitoring: the Grafana dashboard
// (configs/grafana/pbxd.json), the Prometheus rules
// (configs/prometheus/pbxd-rules.yml, with promtool unit tests beside them)
// and the metric catalogue (the README's Monitoring section), against a running daemon.
//
// "Exported" is decided honestly, by running daemons:
//
//  1. A daemon started exactly like the pbxd binary (app.Main: Go and process
//     collectors, pbxd_build_info) with the default built-in SIP registrar,
//     and a daemon on the Asterisk backend (app.New against the aritest ARI
//     server: pbxd_pbx_* exist only there) get some traffic and are scraped;
//     every family in either scrape is exported.
//  2. A family absent from both scrapes can still be real: a labelled metric
//     (a *Vec) has no series until its first event (the first invoice, the
//     first reconcile error). For those the test asks the registry of the
//     Asterisk daemon whether a collector of that name is registered, by
//     trying to register a probe of the same name: the registry refuses it
//     exactly when the name is taken. Registered-but-empty families are
//     logged, not failed; names the daemon does not register fail the test.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/pbxd/pbxd/internal/app"
	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
)

const (
	dashboardFile = "configs/grafana/pbxd.json"
	rulesFile     = "configs/prometheus/pbxd-rules.yml"
	rulesTestFile = "configs/prometheus/pbxd-rules.test.yml"
	catalogueFile = "README.md"
)

// monitoringRoot is the module root (tests run in their package directory).
func monitoringRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from the test directory: %v", err)
	}
	return root
}

// ---------------------------------------------------------------- the files

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows hold their panels
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T, root string) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows (collapsed rows nest their panels).
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T, root string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

// exprSource is one PromQL expression and where it comes from.
type exprSource struct {
	where, expr string
}

func monitoringExprs(t *testing.T, root string) (exprs []exprSource, recorded map[string]bool) {
	t.Helper()
	for _, p := range loadDashboard(t, root).allPanels() {
		for _, tg := range p.Targets {
			exprs = append(exprs, exprSource{fmt.Sprintf("dashboard panel %q (%s)", p.Title, tg.RefID), tg.Expr})
		}
	}
	recorded = map[string]bool{}
	for _, g := range loadRules(t, root).Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if r.Record != "" {
				name = r.Record
				recorded[r.Record] = true
			}
			exprs = append(exprs, exprSource{fmt.Sprintf("rule %s/%s", g.Name, name), r.Expr})
		}
	}
	return exprs, recorded
}

// ---------------------------------------------------------------- PromQL

// selector is a metric name in an expression with its label matchers.
type selector struct {
	name     string
	matchers []matcher
}

type matcher struct{ label, op, value string }

// notMetrics are PromQL words that look like metric names: aggregations
// (written before "by"/"without", so not always followed by "(") and
// keywords. Functions are recognised by the "(" after them.
var notMetrics = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
}

var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// parsePromQL extracts the metric selectors and the grouping labels (by,
// without, on, ignoring, group_*) of a PromQL expression. It is a small
// lexer, not a full parser (github.com/prometheus/prometheus is not a
// dependency of pbxd): it skips strings, range and subquery brackets and
// numbers/durations, and treats an identifier as a metric name unless it is
// a keyword, an aggregation or followed by "(". Grafana variables only occur
// inside strings and brackets here (checked by the dashboard test).
func parsePromQL(expr string) (sels []selector, groupLabels []string, err error) {
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n' || expr[i] == '\r') {
			i++
		}
		return i
	}
	readString := func(i int) (string, int, error) { // expr[i] is the quote
		q := expr[i]
		var b strings.Builder
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`' && j+1 < len(expr):
				j++
				b.WriteByte(expr[j])
			case expr[j] == q:
				return b.String(), j + 1, nil
			default:
				b.WriteByte(expr[j])
			}
		}
		return "", 0, fmt.Errorf("unterminated string at %d", i)
	}
	readIdent := func(i int) (string, int) {
		j := i
		for j < len(expr) && isIdent(expr[j]) {
			j++
		}
		return expr[i:j], j
	}
	readMatchers := func(i int) ([]matcher, int, error) { // expr[i] == '{'
		var ms []matcher
		i++
		for {
			i = skipSpace(i)
			if i >= len(expr) {
				return nil, 0, fmt.Errorf("unterminated label matchers")
			}
			if expr[i] == '}' {
				return ms, i + 1, nil
			}
			if expr[i] == ',' {
				i++
				continue
			}
			if !isIdentStart(expr[i]) {
				return nil, 0, fmt.Errorf("bad label name at %d", i)
			}
			var m matcher
			m.label, i = readIdent(i)
			i = skipSpace(i)
			for _, op := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(expr[i:], op) {
					m.op = op
					i += len(op)
					break
				}
			}
			if m.op == "" {
				return nil, 0, fmt.Errorf("no matcher operator at %d", i)
			}
			i = skipSpace(i)
			if i >= len(expr) || !strings.ContainsRune("\"'`", rune(expr[i])) {
				return nil, 0, fmt.Errorf("no label value at %d", i)
			}
			var err error
			if m.value, i, err = readString(i); err != nil {
				return nil, 0, err
			}
			ms = append(ms, m)
		}
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			_, j, err := readString(i)
			if err != nil {
				return nil, nil, err
			}
			i = j
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("unterminated [ at %d", i)
			}
			i += j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case c == '{': // a selector without a metric name
			return nil, nil, fmt.Errorf("selector without a metric name at %d", i)
		case isIdentStart(c):
			word, j := readIdent(i)
			k := skipSpace(j)
			switch {
			case grouping[word]:
				i = k
				if k < len(expr) && expr[k] == '(' {
					end := strings.IndexByte(expr[k:], ')')
					if end < 0 {
						return nil, nil, fmt.Errorf("unterminated %s list", word)
					}
					for _, l := range strings.Split(expr[k+1:k+end], ",") {
						if l = strings.TrimSpace(l); l != "" {
							groupLabels = append(groupLabels, l)
						}
					}
					i = k + end + 1
				}
			case notMetrics[word] || k < len(expr) && expr[k] == '(':
				i = j
			default:
				s := selector{name: word}
				i = j
				if k < len(expr) && expr[k] == '{' {
					ms, next, err := readMatchers(k)
					if err != nil {
						return nil, nil, err
					}
					s.matchers, i = ms, next
				}
				sels = append(sels, s)
			}
		default:
			i++
		}
	}
	return sels, groupLabels, nil
}

func TestParsePromQL(t *testing.T) {
	sels, groups, err := parsePromQL(`histogram_quantile(0.99, sum by (instance, le) (rate(a_b_bucket{x=~"a|b",y!="}"}[5m] offset 1h)))
		/ on () count(up{job="pbxd"}) > 2e3 and sum without(z)(c:rec) or vector(1)`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sels {
		names = append(names, s.name)
	}
	if !slices.Equal(names, []string{"a_b_bucket", "up", "c:rec"}) {
		t.Fatalf("names = %v", names)
	}
	if m := sels[0].matchers; len(m) != 2 || m[0] != (matcher{"x", "=~", "a|b"}) || m[1] != (matcher{"y", "!=", "}"}) {
		t.Fatalf("matchers = %+v", m)
	}
	if !slices.Equal(groups, []string{"instance", "le", "z"}) {
		t.Fatalf("grouping labels = %v", groups)
	}
}

// ---------------------------------------------------------------- daemons

func monitoringFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // a listener: nothing buffered to lose
	return l.Addr().String()
}

// startMainDaemon runs the daemon the way cmd/pbxd does (app.Main, with its Go and
// process collectors and build info) and returns its base URL once ready.
func startMainDaemon(t *testing.T) *apptest.Daemon {
	t.Helper()
	addr := monitoringFreeAddr(t)
	env := map[string]string{
		"PBXD_DATABASE_URL":   storetest.NewDatabase(t),
		"PBXD_STATE_DIR":      t.TempDir(),
		"PBXD_HTTP_LISTEN":    addr,
		"PBXD_SIP_LISTEN":     "127.0.0.1:0",
		"PBXD_OPERATOR_TOKEN": apptest.OperatorToken,
	}
	signals := make(chan os.Signal, 1)
	exit := make(chan int, 1)
	var logs apptest.LogBuffer
	go func() { exit <- app.Main(nil, func(k string) string { return env[k] }, signals, &logs) }()
	t.Cleanup(func() {
		signals <- os.Interrupt
		select {
		case <-exit:
		case <-time.After(30 * time.Second):
			t.Errorf("pbxd (app.Main) did not stop")
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case code := <-exit:
			t.Fatalf("pbxd exited with %d during start-up:\n%s", code, logs.String())
		default:
		}
		if resp, err := http.Get(url + "/readyz"); err == nil {
			_ = resp.Body.Close() // unread: only the status matters
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pbxd not ready within 60s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Only URL is used: apptest's client helpers work against any daemon.
	return &apptest.Daemon{URL: url}
}

// asteriskDaemon is an in-process daemon on the Asterisk backend.
type asteriskDaemon struct {
	*apptest.Daemon
	registry *prometheus.Registry
}

// startAsteriskDaemon runs a daemon on the Asterisk backend against a fake ARI
// server (node "ast1"), like apptest.Start but returning the start-up error
// instead of failing the test, so the other checks still run without it.
func startAsteriskDaemon(t *testing.T) (*asteriskDaemon, error) {
	t.Helper()
	srv := aritest.NewTest(t, aritest.Options{})
	cfg := config.Defaults()
	cfg.Database.URL = storetest.NewDatabase(t)
	cfg.StateDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.HTTP.OperatorToken = apptest.OperatorToken
	cfg.SecretKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
	cfg.Backend = "asterisk"
	cfg.Asterisk.Nodes = []config.AsteriskNode{{Name: "ast1", URL: srv.URL(), Username: srv.Username(), Password: srv.Password()}}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	logger, level := app.NewLogger(cfg, io.Discard)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Logger: logger, Level: level, Registry: reg})
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("asterisk daemon stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("asterisk daemon did not stop")
		}
	})
	d := &apptest.Daemon{App: a, Config: cfg, Registry: reg, URL: "http://" + a.HTTPAddr()}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if a.Ready(ctx) == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not ready within 30s: %v", a.Ready(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &asteriskDaemon{Daemon: d, registry: reg}, nil
}

// scrapeFamilies parses the daemon's /metrics.
func scrapeFamilies(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read to its end below
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// probeRegistered reports whether reg has a collector for the metric name: the
// registry refuses a probe of the same fully-qualified name (same or
// different help, labels or type), and accepts it otherwise, in which case
// the probe is removed at once.
func probeRegistered(reg *prometheus.Registry, name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "monitoring_test probe"})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}

// monitoringTraffic makes the labelled series of the HTTP API, provisioning,
// billing and phone provisioning exist.
func monitoringTraffic(t *testing.T, d *apptest.Daemon) {
	t.Helper()
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	card := d.CreateAccount(t, map[string]any{"payment_mode": "card"}) // an invoice paid by card
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+card+"/payment-methods",
		map[string]any{"gateway": "sandbox", "token": "sandbox_approve", "default": true})
	d.Change(t, card, map[string]any{"package": "world", "quantity": 1})
	d.Op(t, http.StatusOK, "GET", "/v1/packages", nil)
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines", nil)
	d.Call(t, "", "GET", "/v1/packages", nil)                         // 401: a 4xx series
	d.Call(t, "", "GET", "/provision/001565000000.cfg", nil)          // a phone provisioning request
	d.Call(t, apptest.OperatorToken, "GET", "/v1/accounts/nope", nil) // 404 from a route
}

// ---------------------------------------------------------------- the tests

// Every metric the dashboard and the rules use is one pbxd exports, with
// the labels they select and group by; the catalogue lists exactly the
// metrics pbxd registers.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	t.Parallel()
	root := monitoringRoot(t)
	exprs, recorded := monitoringExprs(t, root)
	if len(exprs) == 0 {
		t.Fatal("no expressions in the dashboard and rules")
	}

	daemon := startMainDaemon(t)
	monitoringTraffic(t, daemon)
	var probe *prometheus.Registry // a daemon's registry, for families without series
	ast, err := startAsteriskDaemon(t)
	if err != nil {
		t.Errorf("daemon on the asterisk backend: %v (its metrics are checked against the built-in one's registry)", err)
		probe = apptest.Start(t).Registry
	} else {
		probe = ast.registry
		monitoringTraffic(t, ast.Daemon)
	}

	// Gauges refreshed by background loops appear shortly after start.
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(20 * time.Second); ; {
		fams = scrapeFamilies(t, daemon.URL)
		if len(fams["pbxd_lines"].GetMetric()) > 0 && len(fams["pbxd_http_request_duration_seconds"].GetMetric()) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("built-in daemon (app.Main): %d families", len(fams))
	if ast != nil { // merge: series of both backends
		for deadline := time.Now().Add(10 * time.Second); ; {
			more := scrapeFamilies(t, ast.URL)
			if len(more["pbxd_reconcile_lag_seconds"].GetMetric()) > 0 && more["pbxd_reconcile_lag_seconds"].GetMetric()[0].GetHistogram().GetSampleCount() > 0 || time.Now().After(deadline) {
				for name, f := range more {
					if old, ok := fams[name]; !ok || len(old.GetMetric()) == 0 {
						fams[name] = f
					} else if strings.HasPrefix(name, "pbxd_") {
						old.Metric = append(old.Metric, f.GetMetric()...)
					}
				}
				t.Logf("asterisk daemon: %d families", len(more))
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// family resolves a series name to its family in the scrape, mapping
	// histogram and summary suffixes.
	family := func(name string) (string, *dto.MetricFamily) {
		if f, ok := fams[name]; ok {
			return name, f
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suf)
			if !ok {
				continue
			}
			if f, ok := fams[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || suf != "_bucket" && f.GetType() == dto.MetricType_SUMMARY) {
				return base, f
			}
			return base, nil
		}
		return name, nil
	}
	// labels lists the label names and values a family's series carry.
	labels := func(f *dto.MetricFamily) map[string]map[string]bool {
		out := map[string]map[string]bool{}
		add := func(k, v string) {
			if out[k] == nil {
				out[k] = map[string]bool{}
			}
			out[k][v] = true
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				add(lp.GetName(), lp.GetValue())
			}
			if f.GetType() == dto.MetricType_HISTOGRAM {
				for _, b := range m.GetHistogram().GetBucket() {
					add("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
				}
				add("le", "+Inf")
			}
			for _, q := range m.GetSummary().GetQuantile() {
				add("quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64))
			}
		}
		return out
	}
	// The catalogue's value sets: values that exist but need not have been
	// seen in this short run (a 5xx, a failed job).
	cat := readCatalogue(t, root)
	// Labels Prometheus adds to every series (job, instance).
	targetLabels := map[string]bool{"job": true, "instance": true}

	used := map[string][]string{} // family -> where
	empty := map[string]bool{}    // registered, no series yet
	missing := map[string]bool{}  // not registered at all
	for _, e := range exprs {
		sels, groups, err := parsePromQL(e.expr)
		if err != nil {
			t.Errorf("%s: cannot parse %q: %v", e.where, e.expr, err)
			continue
		}
		if len(sels) == 0 {
			t.Errorf("%s: no metric in %q", e.where, e.expr)
		}
		groupable := map[string]bool{"instance": true, "job": true, "le": true}
		complete := true // every metric of the expression has series to check labels against
		for _, s := range sels {
			if s.name == "up" { // made by Prometheus for each target
				continue
			}
			if recorded[s.name] {
				continue // its own rule's expression is checked
			}
			if strings.Contains(s.name, ":") {
				t.Errorf("%s: %s looks like a recording rule, but no rule records it", e.where, s.name)
				continue
			}
			fam, f := family(s.name)
			used[fam] = append(used[fam], e.where)
			if f == nil || len(f.GetMetric()) == 0 {
				complete = false
				if probeRegistered(probe, fam) {
					empty[fam] = true
				} else {
					missing[fam] = true
				}
				continue
			}
			have := labels(f)
			for l := range have {
				groupable[l] = true
			}
			for _, m := range s.matchers {
				l := m.label
				if targetLabels[l] {
					continue
				}
				vals, ok := have[l]
				if !ok {
					t.Errorf("%s: %s has no label %q (it has %v)", e.where, fam, l, monitoringKeys(have))
					continue
				}
				if m.op == "=" && !vals[m.value] && !slices.Contains(cat[fam][l], m.value) {
					t.Errorf("%s: %s{%s=%q}: the daemon exports %s values %v", e.where, fam, l, m.value, l, monitoringKeys(vals))
				}
			}
		}
		if complete {
			for _, g := range groups {
				if !groupable[g] {
					t.Errorf("%s: grouping by %q, a label none of its metrics has", e.where, g)
				}
			}
		}
	}
	for _, name := range monitoringKeys(missing) {
		t.Errorf("%s is used by %s but pbxd does not register it", name, strings.Join(used[name], "; "))
	}
	for _, name := range monitoringKeys(empty) {
		t.Logf("%s: registered, no series yet in this run (labelled; series appear with the first event)", name)
	}

	// The catalogue lists every pbxd_ family the daemon has, and nothing
	// else, and its value sets hold every value exported.
	for name, f := range fams {
		sets, ok := cat[name]
		if !strings.HasPrefix(name, "pbxd_") {
			continue
		}
		if !ok {
			t.Errorf("%s is exported but missing from %s", name, catalogueFile)
			continue
		}
		have := labels(f)
		for l, vals := range have {
			if sets[l] == nil {
				continue
			}
			for v := range vals {
				if !slices.Contains(sets[l], v) {
					t.Errorf("%s{%s=%q} is exported, but %s lists %s values %v", name, l, v, catalogueFile, l, sets[l])
				}
			}
		}
		for l, vals := range sets {
			if len(f.GetMetric()) > 0 && have[l] == nil {
				t.Errorf("%s lists a label %s on %s, which its series do not have (they have %v)", catalogueFile, l, name, slices.Sorted(maps.Keys(have)))
				continue
			}
			// A counter with a bounded label set has all its series from
			// start, at 0: rate() and increase() cannot see a series' birth.
			if f.GetType() != dto.MetricType_COUNTER {
				continue
			}
			for _, v := range vals {
				if !have[l][v] {
					t.Errorf("counter %s{%s=%q} is not exported before its first event; create it at 0", name, l, v)
				}
			}
		}
	}
	for name := range cat {
		if _, ok := fams[name]; !ok && !probeRegistered(probe, name) {
			t.Errorf("%s lists %s, which pbxd does not register", catalogueFile, name)
		}
	}
}

// readCatalogue reads the catalogue tables of README.md: rows that start with a
// `pbxd_...` name, and in their Labels column the enumerated value sets,
// written as `label` (`v1`, `v2`, ...). A label whose parenthesis is not a
// list of `values` only (a route pattern, a node name) is not enumerated.
func readCatalogue(t *testing.T, root string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, catalogueFile))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(pbxd_[a-z0-9_]+)` \\|")
	label := regexp.MustCompile("`([a-z_]+)` \\(([^)]*)\\)")
	value := regexp.MustCompile("^`([^`]+)`$")
	out := map[string]map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 5 {
			t.Fatalf("%s: row of %s has %d columns, want 5", catalogueFile, m[1], len(cells))
		}
		sets := map[string][]string{}
		for _, lm := range label.FindAllStringSubmatch(cells[2], -1) {
			var vals []string
			for _, v := range strings.Split(lm[2], ",") {
				vm := value.FindStringSubmatch(strings.TrimSpace(v))
				if vm == nil {
					vals = nil
					break
				}
				vals = append(vals, vm[1])
			}
			if vals != nil {
				sets[lm[1]] = vals
			}
		}
		out[m[1]] = sets
	}
	if len(out) == 0 {
		t.Fatalf("%s: no metric rows", catalogueFile)
	}
	return out
}

// The dashboard imports anywhere: valid JSON, the data source is a
// variable, every panel queries through it and filters by instance.
func TestDashboardStructure(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t, monitoringRoot(t))
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current one (>= 36)", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" && v.Query != "prometheus" {
			t.Errorf("datasource variable %s queries %v, want prometheus", v.Name, v.Query)
		}
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Fatalf("variables = %v: want datasource (type datasource) and instance (type query)", vars)
	}
	ids := map[int]bool{}
	var rows, graphs int
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			rows++
			continue
		}
		graphs++
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
			}
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q target %s: datasource %+v", p.Title, tg.RefID, tg.Datasource)
			}
			sels, _, err := parsePromQL(tg.Expr)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			for _, s := range sels {
				if !slices.Contains(s.matchers, matcher{"instance", "=~", "$instance"}) {
					t.Errorf("panel %q: %s does not filter on instance=~\"$instance\"", p.Title, s.name)
				}
			}
		}
	}
	if rows < 5 || graphs < 20 {
		t.Errorf("%d rows and %d panels: want the overview, SIP, PBX sync, provisioning, billing and process rows", rows, graphs)
	}
}

// The rules are valid for Prometheus and their unit tests pass. promtool
// comes with Debian's prometheus package; the test fails without it rather
// than skip, so CI cannot silently stop checking.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	root := monitoringRoot(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (apt-get install prometheus): %v", err)
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
	// Every alert tells the operator what to do.
	for _, g := range loadRules(t, root).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s: no severity label", r.Alert)
			}
		}
	}
}

func monitoringKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package phones

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var testNow = time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)

func testSettings() Settings {
	return Settings{
		Registrar: "sip.pbx.example.net", Port: 5060, Transport: UDP,
		RegisterExpiry: 600, NTPServer: "ntp.example.net",
	}
}

// newTestRenderer builds a renderer pinned to testNow, so golden files do not
// depend on the year's DST rules.
func newTestRenderer(t *testing.T, s Settings) *Renderer {
	t.Helper()
	r := &Renderer{now: func() time.Time { return testNow }}
	if err := r.Update(s); err != nil {
		t.Fatal(err)
	}
	return r
}

// testDevice has two lines whose passwords contain every XML metacharacter.
func testDevice(v Vendor) Device {
	return Device{
		MAC: MAC{0x80, 0x5e, 0xc0, 0x12, 0x34, 0x56}, Vendor: v, Model: "T54W",
		DisplayName: "Alice & Bob", TimeZone: "Europe/Paris", Language: "fr",
		Active: true, AccountID: "acct-1",
		Lines: []Line{
			{Key: 1, Extension: "101", Domain: "acme.voip.example.net", Username: "101", Password: `Pa&ss<w>rd"1'`},
			{Key: 2, Extension: "102", Label: "Sales", Domain: "acme.voip.example.net", Username: "102", Password: "s3cr3t]]>2"},
		},
	}
}

// vendorFiles lists, per vendor, the files a device of that vendor fetches.
var vendorFiles = map[Vendor][]File{
	Yealink:     {{Kind: KindMACCfg}, {Kind: KindYealinkCommon, Model: "44"}, {Kind: KindYealinkCommon, Model: "108"}, {Kind: KindYealinkCommon, Model: "124"}},
	Polycom:     {{Kind: KindMACCfg}, {Kind: KindPolycomPhone}},
	Grandstream: {{Kind: KindGrandstream}},
	Snom:        {{Kind: KindSnom}},
	Cisco:       {{Kind: KindCisco}},
}

// lineKeys gives, per vendor file, the setting names that must hold a
// line's user (and label), domain and password, for account slot n.
var lineKeys = map[string]func(n int) (user, label, domain, password string){
	"yealink/mac.cfg.tmpl": func(n int) (string, string, string, string) {
		p := fmt.Sprintf("account.%d.", n)
		return p + "user_name", p + "label", p + "sip_server.1.address", p + "password"
	},
	"polycom/phone.xml.tmpl": func(n int) (string, string, string, string) {
		p := fmt.Sprintf("reg.%d.", n)
		return p + "auth.userId", p + "label", p + "server.1.address", p + "auth.password"
	},
	"grandstream/cfg.xml.tmpl": func(n int) (string, string, string, string) {
		p := grandstreamP[n-1]
		return p["user"], p["name"], p["server"], p["password"]
	},
	"snom/settings.xml.tmpl": func(n int) (string, string, string, string) {
		s := fmt.Sprintf("#%d", n)
		return "user_name" + s, "user_idle_text" + s, "user_host" + s, "user_pass" + s
	},
	"cisco/spa.xml.tmpl": func(n int) (string, string, string, string) {
		s := fmt.Sprintf("_%d_", n)
		return "User_ID" + s, "Short_Name" + s, "Proxy" + s, "Password" + s
	},
}

// parseSettings reads a rendered file into setting name → value, the way
// the phone would: Yealink key = value lines, or XML where a setting is an
// attribute (Polycom), an <item name=…> (Grandstream), an element with an
// idx (Snom, keyed name#idx) or a plain element (Cisco, Snom).
func parseSettings(t *testing.T, name string, b []byte) map[string]string {
	t.Helper()
	if err := CheckSyntax(name, b); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, b)
	}
	m := make(map[string]string)
	if strings.HasPrefix(name, "yealink/") {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			k = strings.TrimSpace(k)
			if _, dup := m[k]; dup {
				t.Fatalf("%s: key %s set twice", name, k)
			}
			m[k] = strings.TrimSpace(v)
		}
		return m
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			key := e.Name.Local
			for _, a := range e.Attr {
				switch a.Name.Local {
				case "name":
					key = a.Value
				case "idx":
					key += "#" + a.Value
				case "perm", "version", "e":
				default:
					m[a.Name.Local] = a.Value
				}
			}
			stack = append(stack, key)
			m[key] = ""
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				m[stack[len(stack)-1]] += string(e)
			}
		}
	}
}

// models are the phones whose files the golden files record, each with the
// files it requests (a Yealink's common file is named by its model id, the
// first field of its firmware version). The goldens are what is reviewed
// against each vendor's documentation (cited in the templates).
var models = []struct {
	vendor Vendor
	model  string
	files  []File
}{
	{Yealink, "T54W", []File{{Kind: KindYealinkCommon, Model: "96"}, {Kind: KindMACCfg}}},
	{Yealink, "T46U", []File{{Kind: KindYealinkCommon, Model: "108"}, {Kind: KindMACCfg}}},
	{Yealink, "T31G", []File{{Kind: KindYealinkCommon, Model: "124"}, {Kind: KindMACCfg}}},
	{Polycom, "VVX450", []File{{Kind: KindMACCfg}, {Kind: KindPolycomPhone}}},
	{Grandstream, "GRP2614", []File{{Kind: KindGrandstream}}},
	{Snom, "D785", []File{{Kind: KindSnom}}},
	{Cisco, "SPA504G", []File{{Kind: KindCisco}}},
}

func TestRenderVendors(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testSettings())
	for _, pm := range models {
		vendor := pm.vendor
		for _, f := range pm.files {
			dev := testDevice(vendor)
			dev.Model = pm.model
			if f.Kind != KindYealinkCommon {
				f.MAC = dev.MAC
			}
			tmpl, _ := templateFor(f.Kind, vendor)
			t.Run(string(vendor)+"/"+pm.model+"/"+f.Name(), func(t *testing.T) {
				t.Parallel()
				out, err := r.Render(f, dev)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", string(vendor)+"-"+pm.model+"-"+f.Name()+".golden"), out)
				if !strings.HasPrefix(tmpl, "yealink/") {
					xmllint(t, out)
				}
				m := parseSettings(t, tmpl, out)
				if !strings.HasPrefix(tmpl, "yealink/") && bytes.Contains(out, []byte(dev.Lines[0].Password)) {
					t.Error("raw password with XML metacharacters appears unescaped")
				}
				keys, ok := lineKeys[tmpl]
				if !ok {
					// Not a per-line file: it must carry no credentials.
					for _, l := range dev.Lines {
						if strings.Contains(string(out), l.Extension) {
							t.Errorf("%s mentions line %s", tmpl, l.Extension)
						}
					}
					if tmpl == "polycom/master.cfg.tmpl" && m["CONFIG_FILES"] != dev.MAC.String()+"-phone.xml" {
						t.Errorf("master config points to %q", m["CONFIG_FILES"])
					}
					return
				}
				for i, l := range dev.Lines {
					user, label, domain, pass := keys(i + 1)
					wantLabel := l.Extension
					if l.Label != "" {
						wantLabel = l.Label
					}
					for k, want := range map[string]string{user: l.Extension, label: wantLabel, pass: l.Password} {
						if m[k] != want {
							t.Errorf("%s = %q, want %q", k, m[k], want)
						}
					}
					// Some formats append :port to the server.
					if got := m[domain]; got != l.Domain && got != l.Domain+":5060" {
						t.Errorf("%s = %q, want %s", domain, got, l.Domain)
					}
				}
				// Unused slots are written out, disabled and empty.
				for n := 3; n <= MaxLines; n++ {
					_, _, _, pass := keys(n)
					if v, ok := m[pass]; !ok || v != "" {
						t.Errorf("slot %d: %s = %q, %v; want present and empty", n, pass, v, ok)
					}
				}
				for _, s := range []string{"sip.pbx.example.net", "ntp.example.net"} {
					if !strings.Contains(string(out), s) {
						t.Errorf("%s missing", s)
					}
				}
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered file (go test -update to accept):\n%s", path, got)
	}
}

func TestRenderRefusesOtherVendorsFile(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testSettings())
	dev := testDevice(Yealink)
	for _, k := range []Kind{KindPolycomPhone, KindGrandstream, KindSnom, KindCisco} {
		if _, err := r.Render(File{Kind: k, MAC: dev.MAC}, dev); !errors.Is(err, ErrVendorMismatch) {
			t.Errorf("%v for a Yealink: err = %v", k, err)
		}
	}
}

func TestRenderOutboundProxy(t *testing.T) {
	t.Parallel()
	dev := testDevice(Yealink)
	f := File{Kind: KindMACCfg, MAC: dev.MAC}
	for _, tc := range []struct {
		s                 Settings
		enable, addr, prt string
		transport         string
	}{
		{Settings{Registrar: "acme.voip.example.net"}, "0", "", "", "0"},
		{Settings{Registrar: "sip.pbx.example.net", Transport: TLS}, "1", "sip.pbx.example.net", "5061", "2"},
		{Settings{Registrar: "acme.voip.example.net", OutboundProxy: "edge.example.net:5080", Transport: TCP}, "1", "edge.example.net", "5080", "1"},
	} {
		out, err := newTestRenderer(t, tc.s).Render(f, dev)
		if err != nil {
			t.Fatal(err)
		}
		m := parseSettings(t, "yealink/mac.cfg.tmpl", out)
		if m["account.1.outbound_proxy_enable"] != tc.enable || m["account.1.outbound_proxy.1.address"] != tc.addr ||
			m["account.1.outbound_proxy.1.port"] != tc.prt || m["account.1.sip_server.1.transport_type"] != tc.transport {
			t.Errorf("%+v: got enable %q addr %q port %q transport %q", tc.s, m["account.1.outbound_proxy_enable"],
				m["account.1.outbound_proxy.1.address"], m["account.1.outbound_proxy.1.port"], m["account.1.sip_server.1.transport_type"])
		}
	}
}

func TestRenderLineErrors(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testSettings())
	for name, mod := range map[string]func(*Device){
		"duplicate key":  func(d *Device) { d.Lines[1].Key = 1 },
		"key too large":  func(d *Device) { d.Lines[1].Key = MaxLines + 1 },
		"no domain":      func(d *Device) { d.Lines[0].Domain = "" },
		"bad time zone":  func(d *Device) { d.TimeZone = "Nowhere/Land" },
		"newline in cfg": nil, // handled by the cfg escaper: no error
	} {
		if mod == nil {
			continue
		}
		dev := testDevice(Cisco)
		mod(&dev)
		if _, err := r.Render(File{Kind: KindCisco, MAC: dev.MAC}, dev); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A label trying to inject a setting into a Yealink file stays one value.
	dev := testDevice(Yealink)
	dev.Lines[0].Label = "x\naccount.1.password = stolen"
	out, err := r.Render(File{Kind: KindMACCfg, MAC: dev.MAC}, dev)
	if err != nil {
		t.Fatal(err)
	}
	if m := parseSettings(t, "yealink/mac.cfg.tmpl", out); m["account.1.password"] != dev.Lines[0].Password {
		t.Errorf("injected password: %q", m["account.1.password"])
	}
}

func TestSettingsValidation(t *testing.T) {
	t.Parallel()
	for _, s := range []Settings{
		{},
		{Registrar: "bad host"},
		{Registrar: "sip.example.net", Transport: "sctp"},
		{Registrar: "sip.example.net", Port: 70000},
		{Registrar: "sip.example.net", RegisterExpiry: 5},
		{Registrar: "sip.example.net", OutboundProxy: "proxy:notaport"},
		{Registrar: "sip.example.net", NTPServer: "<ntp>"},
		{Registrar: "sip.example.net", OverrideDir: "/nonexistent/pbxd-phones"},
	} {
		if _, err := NewRenderer(s); err == nil {
			t.Errorf("NewRenderer(%+v) accepted", s)
		}
	}
	r, err := NewRenderer(Settings{Registrar: "192.0.2.10"})
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Settings(); s.Port != 5060 || s.Transport != UDP || s.RegisterExpiry != 3600 {
		t.Errorf("defaults not applied: %+v", s)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOverrideAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := testSettings()
	s.OverrideDir = dir
	r := newTestRenderer(t, s)
	dev := testDevice(Cisco)
	f := File{Kind: KindCisco, MAC: dev.MAC}
	render := func() string {
		t.Helper()
		out, err := r.Render(f, dev)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if !strings.Contains(render(), "<flat-profile>") {
		t.Fatal("embedded template not used with an empty override dir")
	}

	custom := `<?xml version="1.0"?>
<flat-profile><Custom>{{range .Accounts}}{{if .Enabled}}<User_ID_{{.Index}}_>{{xml .Username}}</User_ID_{{.Index}}_><Password_{{.Index}}_>{{xml .Password}}</Password_{{.Index}}_>{{end}}{{end}}</Custom></flat-profile>
`
	writeFile(t, filepath.Join(dir, "cisco", "spa.xml.tmpl"), custom)
	writeFile(t, filepath.Join(dir, ".git", "HEAD"), "ignored")
	if !strings.Contains(render(), "<flat-profile>") {
		t.Fatal("override applied before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if out := render(); !strings.Contains(out, "<Custom>") {
		t.Fatalf("override not applied after Reload:\n%s", out)
	}

	// Broken overrides are refused at reload, and the working set stays.
	for name, text := range map[string]string{
		"cisco/spa.xml.tmpl":       "{{.Nope",                                                                                       // parse error
		"snom/settings.xml.tmpl":   "<settings>{{.NoSuchField}}</settings>",                                                         // execution error
		"polycom/phone.xml.tmpl":   `<polycomConfig>{{range .Accounts}}<reg p="{{.Password}}"/>{{end}}</polycomConfig>`,             // forgets to escape
		"yealink/mac.cfg.tmpl":     "#!version:1.0.0.1\n{{range .Accounts}}account.{{.Index}}.label = {{.Label}}\n{{end}}",          // forgets cfg
		"yealink/typo.cfg.tmpl":    "#!version:1.0.0.1\n",                                                                           // unknown name
		"grandstream/cfg.xml.tmpl": "<gs>{{if .TZ.DST}}<P246>{{xml .TZ.POSIX}}</P246>{{else}}<P246>{{.TZ.Nope}}</P246>{{end}}</gs>", // breaks without DST only
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		old, _ := os.ReadFile(p)
		writeFile(t, p, text)
		if err := r.Reload(); err == nil {
			t.Errorf("%s: broken override accepted", name)
		}
		if out := render(); !strings.Contains(out, "<Custom>") {
			t.Errorf("%s: failed reload changed the templates", name)
		}
		if old != nil {
			writeFile(t, p, string(old))
		} else {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("reload after repair: %v", err)
	}

	// Update swaps settings and templates together.
	s2 := testSettings()
	s2.Registrar = "sip2.pbx.example.net"
	if err := r.Update(s2); err != nil {
		t.Fatal(err)
	}
	if out := render(); strings.Contains(out, "<Custom>") || !strings.Contains(out, "sip2.pbx.example.net") {
		t.Errorf("Update did not apply:\n%s", out)
	}
	if err := r.Update(Settings{}); err == nil || r.Settings().Registrar != "sip2.pbx.example.net" {
		t.Errorf("invalid Update applied: %v, %+v", err, r.Settings())
	}
}

func TestCheckSyntax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"x.xml", "<a><b/></a>", true},
		{"x.xml", "<a><b></a>", false},
		{"x.xml", "<a/><b/>", false},
		{"x.xml", "", false},
		{"x.xml", "<a>&nbsp;</a>", false},
		{"yealink/mac.cfg.tmpl", "#!version:1.0.0.1\n# c\n\na.b = c\n", true},
		{"yealink/mac.cfg.tmpl", "a.b = c\n", false},
		{"yealink/mac.cfg.tmpl", "#!version:1.0.0.1\nno equals\n", false},
		{"polycom/master.cfg.tmpl", "<APPLICATION/>", true},
	} {
		if err := CheckSyntax(tc.name, []byte(tc.text)); (err == nil) != tc.ok {
			t.Errorf("CheckSyntax(%s, %q) = %v", tc.name, tc.text, err)
		}
	}
}

// TestRenderTimeZones checks, per vendor, the time settings each file gives
// for a northern and a southern DST zone and a half-hour zone without DST.
func TestRenderTimeZones(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testSettings())
	want := map[string]map[Vendor]map[string]string{
		"Europe/Paris": {
			Yealink: {"local_time.time_zone": "+1", "local_time.summer_time": "1", "local_time.dst_time_type": "1",
				"local_time.start_time": "3/5/7/2", "local_time.end_time": "10/5/7/3", "local_time.offset_time": "60"},
			Polycom: {"tcpIpApp.sntp.gmtOffset": "3600", "tcpIpApp.sntp.daylightSavings.enable": "1",
				"tcpIpApp.sntp.daylightSavings.fixedDayEnable": "0",
				"tcpIpApp.sntp.daylightSavings.start.month":    "3", "tcpIpApp.sntp.daylightSavings.start.dayOfWeek": "1",
				"tcpIpApp.sntp.daylightSavings.start.dayOfWeek.lastInMonth": "1", "tcpIpApp.sntp.daylightSavings.start.time": "2",
				"tcpIpApp.sntp.daylightSavings.stop.month": "10", "tcpIpApp.sntp.daylightSavings.stop.dayOfWeek": "1",
				"tcpIpApp.sntp.daylightSavings.stop.dayOfWeek.lastInMonth": "1", "tcpIpApp.sntp.daylightSavings.stop.time": "3"},
			Cisco: {"Time_Zone": "GMT+01:00", "Daylight_Saving_Time_Enable": "Yes",
				"Daylight_Saving_Time_Rule": "start=3/-1/7/2;end=10/-1/7/3;save=1"},
			Snom:        {"timezone": "FRA+1", "utc_offset": "3600"},
			Grandstream: {gsTimeZoneKey: "CET-1CEST,M3.5.0,M10.5.0/3", "P64": "customize", "P143": "0"},
		},
		"America/New_York": {
			Yealink: {"local_time.time_zone": "-5", "local_time.summer_time": "1",
				"local_time.start_time": "3/2/7/2", "local_time.end_time": "11/1/7/2", "local_time.offset_time": "60"},
			Polycom: {"tcpIpApp.sntp.gmtOffset": "-18000", "tcpIpApp.sntp.daylightSavings.enable": "1",
				"tcpIpApp.sntp.daylightSavings.start.month": "3", "tcpIpApp.sntp.daylightSavings.start.date": "8",
				"tcpIpApp.sntp.daylightSavings.start.dayOfWeek.lastInMonth": "0",
				"tcpIpApp.sntp.daylightSavings.stop.month":                  "11", "tcpIpApp.sntp.daylightSavings.stop.date": "1",
				"tcpIpApp.sntp.daylightSavings.stop.time": "2"},
			Cisco: {"Time_Zone": "GMT-05:00", "Daylight_Saving_Time_Enable": "Yes",
				"Daylight_Saving_Time_Rule": "start=3/8/7/2;end=11/1/7/2;save=1"},
			Snom:        {"timezone": "USA-5", "utc_offset": "-18000"},
			Grandstream: {gsTimeZoneKey: "EST5EDT,M3.2.0,M11.1.0"},
		},
		"Australia/Sydney": {
			Yealink: {"local_time.time_zone": "+10", "local_time.summer_time": "1",
				"local_time.start_time": "10/1/7/2", "local_time.end_time": "4/1/7/3"},
			Polycom: {"tcpIpApp.sntp.gmtOffset": "36000", "tcpIpApp.sntp.daylightSavings.enable": "1",
				"tcpIpApp.sntp.daylightSavings.start.month": "10", "tcpIpApp.sntp.daylightSavings.start.date": "1",
				"tcpIpApp.sntp.daylightSavings.stop.month": "4", "tcpIpApp.sntp.daylightSavings.stop.date": "1",
				"tcpIpApp.sntp.daylightSavings.stop.time": "3"},
			Cisco: {"Time_Zone": "GMT+10:00", "Daylight_Saving_Time_Enable": "Yes",
				"Daylight_Saving_Time_Rule": "start=10/1/7/2;end=4/1/7/3;save=1"},
			Snom:        {"timezone": "AUS+10", "utc_offset": "36000"},
			Grandstream: {gsTimeZoneKey: "AEST-10AEDT,M10.1.0,M4.1.0/3"},
		},
		"Asia/Kolkata": {
			Yealink:     {"local_time.time_zone": "+5:30", "local_time.summer_time": "0"},
			Polycom:     {"tcpIpApp.sntp.gmtOffset": "19800", "tcpIpApp.sntp.daylightSavings.enable": "0"},
			Cisco:       {"Time_Zone": "GMT+05:30", "Daylight_Saving_Time_Enable": "No", "Daylight_Saving_Time_Rule": ""},
			Snom:        {"timezone": "IND+5.5", "utc_offset": "19800"},
			Grandstream: {gsTimeZoneKey: "IST-5:30"},
		},
	}
	files := map[Vendor]Kind{Yealink: KindMACCfg, Polycom: KindPolycomPhone, Cisco: KindCisco, Snom: KindSnom, Grandstream: KindGrandstream}
	for tz, vendors := range want {
		for v, keys := range vendors {
			dev := testDevice(v)
			dev.TimeZone = tz
			f := File{Kind: files[v], MAC: dev.MAC}
			tmpl, _ := templateFor(f.Kind, v)
			out, err := r.Render(f, dev)
			if err != nil {
				t.Fatal(err)
			}
			if v != Yealink {
				xmllint(t, out)
			}
			m := parseSettings(t, tmpl, out)
			for k, w := range keys {
				if got, ok := m[k]; !ok || got != w {
					t.Errorf("%s %s: %s = %q (set %v), want %q", tz, v, k, got, ok, w)
				}
			}
			if tz == "Asia/Kolkata" {
				for _, k := range []string{"local_time.start_time", "tcpIpApp.sntp.daylightSavings.start.month"} {
					if _, ok := m[k]; ok {
						t.Errorf("%s %s: DST rule %s written for a zone without DST", tz, v, k)
					}
				}
			}
		}
	}
}

// gsTimeZoneKey is the Grandstream setting holding the POSIX TZ string.
const gsTimeZoneKey = "P246"

// Snom reads port and transport from user_outbound only, so it is written
// even when no outbound proxy is needed.
func TestRenderSnomPortTransport(t *testing.T) {
	t.Parallel()
	dev := testDevice(Snom)
	f := File{Kind: KindSnom, MAC: dev.MAC}
	for _, tc := range []struct {
		s              Settings
		host, outbound string
	}{
		{Settings{Registrar: "acme.voip.example.net", Transport: TLS}, "acme.voip.example.net", "acme.voip.example.net:5061;transport=tls"},
		{Settings{Registrar: "acme.voip.example.net", Transport: TCP, Port: 5080}, "acme.voip.example.net", "acme.voip.example.net:5080;transport=tcp"},
		{Settings{Registrar: "acme.voip.example.net"}, "acme.voip.example.net", "acme.voip.example.net:5060;transport=udp"},
		{Settings{Registrar: "sip.pbx.example.net", Transport: TCP}, "acme.voip.example.net", "sip.pbx.example.net:5060;transport=tcp"},
	} {
		out, err := newTestRenderer(t, tc.s).Render(f, dev)
		if err != nil {
			t.Fatal(err)
		}
		m := parseSettings(t, "snom/settings.xml.tmpl", out)
		if m["user_host#1"] != tc.host || m["user_outbound#1"] != tc.outbound {
			t.Errorf("%+v: user_host %q user_outbound %q; want %q %q", tc.s, m["user_host#1"], m["user_outbound#1"], tc.host, tc.outbound)
		}
	}
}

// Every file the Polycom master config names is one pbxd serves, or none.
func TestPolycomMasterNamesServedFiles(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testSettings())
	dev := testDevice(Polycom)
	out, err := r.Render(File{Kind: KindMACCfg, MAC: dev.MAC}, dev)
	if err != nil {
		t.Fatal(err)
	}
	m := parseSettings(t, "polycom/master.cfg.tmpl", out)
	for _, attr := range []string{"APP_FILE_PATH", "CONFIG_FILES", "MISC_FILES"} {
		v, ok := m[attr]
		if !ok {
			t.Errorf("%s missing", attr)
		}
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if f, err := ParseFile(name); err != nil || !f.Kind.Serves(Polycom) {
				t.Errorf("%s names %q, which pbxd does not serve to a Polycom", attr, name)
			}
		}
	}
}

// The Grandstream file is the documented version 1 form: P-values only,
// every account slot with its own, distinct numbers.
func TestRenderGrandstreamPValues(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for n := 1; n <= MaxLines; n++ {
		p, err := grandstreamSlot(n)
		if err != nil || len(p) != 11 {
			t.Fatalf("slot %d: %v %v", n, p, err)
		}
		for _, v := range p {
			if prev, dup := seen[v]; dup {
				t.Errorf("%s used by slots %d and %d", v, prev, n)
			}
			seen[v] = n
		}
	}
	if _, err := grandstreamSlot(MaxLines + 1); err == nil {
		t.Error("slot beyond MaxLines accepted")
	}
	r := newTestRenderer(t, Settings{Registrar: "acme.voip.example.net", Transport: TLS, RegisterExpiry: 600})
	dev := testDevice(Grandstream)
	out, err := r.Render(File{Kind: KindGrandstream, MAC: dev.MAC}, dev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`<config version="1">`)) || bytes.Contains(out, []byte("<item")) {
		t.Errorf("not the P-value form:\n%s", out)
	}
	m := parseSettings(t, "grandstream/cfg.xml.tmpl", out)
	for k, want := range map[string]string{
		"P271": "1", "P47": "acme.voip.example.net:5061", "P35": "101", "P36": "101", "P3": "Alice & Bob",
		"P31": "1", "P32": "10", "P130": "2", "P401": "1", "P404": "102", "P406": "s3cr3t]]>2", "P501": "0", "P1801": "0",
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
}

// xmllint checks b with libxml2's parser, stricter than encoding/xml (it
// also checks the XML declaration and comments). scripts/deps test installs
// it; a missing xmllint fails the test rather than skipping it, so the
// check cannot silently stop running.
func xmllint(t *testing.T, b []byte) {
	t.Helper()
	if out, err := runXMLLint(t, b); err != nil {
		t.Errorf("xmllint: %v\n%s\n%s", err, out, b)
	}
}

func runXMLLint(t *testing.T, b []byte) ([]byte, error) {
	t.Helper()
	path, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatalf("xmllint not found (Debian package libxml2-utils; scripts/deps test installs it): %v", err)
	}
	cmd := exec.Command(path, "--noout", "--nonet", "-")
	cmd.Stdin = bytes.NewReader(b)
	return cmd.CombinedOutput()
}

// The lint is not a formality: libxml2 refuses what encoding/xml lets by.
func TestXMLLintCatchesErrors(t *testing.T) {
	t.Parallel()
	// A setting written twice: Polycom's attributes make it an easy slip.
	bad := []byte("<?xml version=\"1.0\"?>\n<a x=\"1\" x=\"2\"/>\n")
	if err := checkXML(bad); err != nil {
		t.Fatalf("encoding/xml refuses it already: %v", err)
	}
	if _, err := runXMLLint(t, bad); err == nil {
		t.Error("xmllint accepted an attribute set twice")
	}
}

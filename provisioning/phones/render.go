package phones

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"
)

//go:embed templates
var embedded embed.FS

// templateFor maps a requested file kind and the device's registered vendor
// to a template name (relative to templates/ and to Settings.OverrideDir).
func templateFor(k Kind, v Vendor) (string, bool) {
	if !k.Serves(v) {
		return "", false
	}
	switch k {
	case KindYealinkCommon:
		return "yealink/common.cfg.tmpl", true
	case KindMACCfg:
		if v == Polycom {
			return "polycom/master.cfg.tmpl", true
		}
		return "yealink/mac.cfg.tmpl", true
	case KindPolycomPhone:
		return "polycom/phone.xml.tmpl", true
	case KindGrandstream:
		return "grandstream/cfg.xml.tmpl", true
	case KindSnom:
		return "snom/settings.xml.tmpl", true
	case KindCisco:
		return "cisco/spa.xml.tmpl", true
	}
	return "", false
}

// templateKinds lists every template with a file kind and vendor that
// selects it, for the dry run at load time.
var templateKinds = map[string]struct {
	kind   Kind
	vendor Vendor
}{
	"yealink/common.cfg.tmpl":  {KindYealinkCommon, Yealink},
	"yealink/mac.cfg.tmpl":     {KindMACCfg, Yealink},
	"polycom/master.cfg.tmpl":  {KindMACCfg, Polycom},
	"polycom/phone.xml.tmpl":   {KindPolycomPhone, Polycom},
	"grandstream/cfg.xml.tmpl": {KindGrandstream, Grandstream},
	"snom/settings.xml.tmpl":   {KindSnom, Snom},
	"cisco/spa.xml.tmpl":       {KindCisco, Cisco},
}

// ErrVendorMismatch is returned by Render when the file asked for is not one
// the device's registered vendor uses.
var ErrVendorMismatch = errors.New("file does not match the device's vendor")

// Renderer turns a device into the config file its firmware asked for. It
// holds the templates and server settings as one immutable set swapped
// atomically, so a reload never leaves a mix of old and new templates and
// requests in flight finish with the set they started with.
type Renderer struct {
	mu  sync.Mutex // serialises Update and Reload
	cur atomic.Pointer[templateSet]
	now func() time.Time
	// zones caches what time zones derive to, for this renderer's
	// template sets only.
	zones zoneCache
}

type templateSet struct {
	settings Settings
	tmpl     map[string]*template.Template
	zones    *zoneCache // the renderer's
}

// NewRenderer validates s and loads the embedded templates, overridden by
// those in s.OverrideDir. Every template is dry-run against a sample device
// whose names and passwords hold XML metacharacters, so an override that
// forgets to escape, names a missing field or breaks the file syntax is
// refused here rather than on a phone.
func NewRenderer(s Settings) (*Renderer, error) {
	r := &Renderer{now: time.Now}
	if err := r.Update(s); err != nil {
		return nil, err
	}
	return r, nil
}

// Settings returns the settings in use.
func (r *Renderer) Settings() Settings { return r.cur.Load().settings }

// Reload re-reads the override directory, for SIGHUP. On error the previous
// templates stay in use.
func (r *Renderer) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.swap(r.cur.Load().settings)
}

// Update replaces the settings and re-reads the templates from the (possibly
// new) override directory, all or nothing: on error nothing changes.
func (r *Renderer) Update(s Settings) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.swap(s)
}

func (r *Renderer) swap(s Settings) error {
	set, err := r.load(s)
	if err != nil {
		return err
	}
	r.cur.Store(set)
	return nil
}

// Prepare loads and checks the templates for s without putting them in
// force; the returned swap does, and cannot fail. A reload prepares every
// part before it swaps any.
func (r *Renderer) Prepare(s Settings) (swap func(), err error) {
	set, err := r.load(s)
	if err != nil {
		return nil, err
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.cur.Store(set)
	}, nil
}

func (r *Renderer) load(s Settings) (*templateSet, error) {
	s, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	return loadTemplates(s, r.now(), &r.zones)
}

// Render produces file f for dev. It refuses (ErrVendorMismatch) a file of
// another vendor than the device's, which also settles the Yealink/Polycom
// ambiguity of {mac}.cfg.
func (r *Renderer) Render(f File, dev Device) ([]byte, error) {
	return r.cur.Load().render(f, dev, r.now())
}

func (set *templateSet) render(f File, dev Device, now time.Time) ([]byte, error) {
	name, ok := templateFor(f.Kind, dev.Vendor)
	if !ok {
		return nil, fmt.Errorf("%s for %s device: %w", f.Kind, dev.Vendor, ErrVendorMismatch)
	}
	v, err := newView(f, dev, set.settings, now, set.zones)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := set.tmpl[name].Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// loadTemplates builds a complete set: embedded defaults, then overrides,
// then a dry run of each. Its renderings derive time zones through zones.
func loadTemplates(s Settings, now time.Time, zones *zoneCache) (*templateSet, error) {
	set := &templateSet{settings: s, tmpl: make(map[string]*template.Template), zones: zones}
	for name := range templateKinds {
		text, err := embedded.ReadFile("templates/" + name)
		if err != nil {
			return nil, fmt.Errorf("embedded template %s: %w", name, err)
		}
		t, err := parseTemplate(name, string(text))
		if err != nil {
			return nil, err
		}
		set.tmpl[name] = t
	}
	if s.OverrideDir != "" {
		if err := set.loadOverrides(s.OverrideDir); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(set.tmpl))
	for name := range set.tmpl {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		k := templateKinds[name]
		// A zone with DST and one without, so both branches of the time
		// settings are tried.
		for _, tz := range []string{"Europe/Paris", "Asia/Kolkata"} {
			dev := sampleDevice(k.vendor)
			dev.TimeZone = tz
			f := File{Kind: k.kind, MAC: dev.MAC, Model: "44"}
			out, err := set.render(f, dev, now)
			if err == nil {
				err = CheckSyntax(name, out)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("template %s: dry run (%s): %w", name, tz, err))
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

// loadOverrides reads operator templates. Unknown file names are an error,
// not ignored: a misspelt override that silently does nothing is worse.
// Dotfiles are skipped (editors' and config managers' temporary files).
func (set *templateSet) loadOverrides(dir string) (err error) {
	root, err := os.OpenRoot(dir) // confines symlinks and names to dir
	if err != nil {
		return fmt.Errorf("template override dir: %w", err)
	}
	defer func() { err = errors.Join(err, root.Close()) }()
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("template override dir: %w", err)
		}
		if strings.HasPrefix(d.Name(), ".") && p != "." {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if _, ok := templateKinds[p]; !ok {
			return fmt.Errorf("template override %s: unknown template name (known: %s)",
				filepath.Join(dir, filepath.FromSlash(p)), strings.Join(knownTemplates(), ", "))
		}
		text, err := fs.ReadFile(root.FS(), p)
		if err != nil {
			return fmt.Errorf("template override: %w", err)
		}
		t, err := parseTemplate(p, string(text))
		if err != nil {
			return fmt.Errorf("template override %s: %w", filepath.Join(dir, filepath.FromSlash(p)), err)
		}
		set.tmpl[p] = t
		return nil
	})
}

func knownTemplates() []string {
	var names []string
	for name := range templateKinds {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(path.Base(name)).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	return t, nil
}

// funcs are the helpers templates escape values with. Nothing is escaped
// implicitly (text/template), so every value that comes from a customer or a
// password generator must go through one of them.
var funcs = template.FuncMap{
	// gs names the Grandstream P-values of an account slot (grandstream.go).
	"gs": grandstreamSlot,
	// xml escapes for element text and attribute values alike.
	"xml": func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	},
	// cfg makes a value safe for Yealink's key = value lines: the format has
	// no escaping, so line breaks (which would inject settings) and other
	// control characters become spaces.
	"cfg": func(s string) string {
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, s)
	},
}

// CheckSyntax verifies that a rendered file parses in its format: XML files
// (.xml, and Polycom's XML master .cfg) must be one well-formed document;
// Yealink .cfg files must be the version header followed by comments, blank
// lines and "key = value" lines. name is a template or file name; its
// directory or extension decides the format.
func CheckSyntax(name string, b []byte) error {
	base := strings.TrimSuffix(path.Base(name), ".tmpl")
	switch {
	case strings.HasSuffix(base, ".xml") || strings.HasPrefix(name, "polycom/"):
		return checkXML(b)
	case strings.HasSuffix(base, ".cfg"):
		return checkCfg(b)
	}
	return fmt.Errorf("%s: unknown file format", name)
}

func checkXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return errors.New("xml: text outside the root element")
			}
		}
	}
	if roots != 1 {
		return fmt.Errorf("xml: %d root elements, want 1", roots)
	}
	return nil
}

// yealinkHeader must be the first line of every Yealink file or the phone
// ignores the whole file.
const yealinkHeader = "#!version:1.0.0.1"

func checkCfg(b []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			if line != yealinkHeader {
				return fmt.Errorf("cfg line 1: want %q", yealinkHeader)
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, _, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsFunc(key, func(r rune) bool {
			return r != '.' && r != '_' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
		}) {
			return fmt.Errorf("cfg line %d: not a key = value line", n)
		}
	}
	if n == 0 {
		return errors.New("cfg: empty file")
	}
	return sc.Err()
}

// sampleDevice is the dry-run device: two lines, and every customer-supplied
// string carries characters that break a template that does not escape.
func sampleDevice(v Vendor) Device {
	return Device{
		MAC: MAC{0x00, 0x15, 0x65, 0x12, 0x34, 0x56}, Vendor: v, Model: "sample",
		DisplayName: "Sample <&> \"Name\" 'x'\ninjected", Language: "fr",
		Active: true,
		Lines: []Line{
			{Key: 1, Extension: "100", Label: "L<1>&\ninjected", Domain: "sample.example.net", Username: "100", Password: `p&<>"'x`},
			{Key: 2, Extension: "101", Domain: "sample.example.net", Username: "101", Password: "]]>&amp;\r\n"},
		},
	}
}

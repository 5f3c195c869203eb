// Package archtest holds the import rules of pbxd as a test: which packages
// may use the database driver, the SIP stack, the ARI client and the PDF
// library, and which way the layers point. A change that breaks a rule
// fails here, with the rule's reason.
package archtest

import (
	"go/build"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/pbxd/pbxd"

// pkg is one package of the module, by its path relative to the module
// root ("billing", "internal/app"), with its non-test imports.
type pkg struct {
	rel     string
	imports []string
}

// packages lists the module's packages (tools/ is a module of its own).
func packages(t *testing.T) []pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	var out []pkg
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		name := d.Name()
		if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "tools") {
			return filepath.SkipDir
		}
		bp, err := build.Default.ImportDir(p, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, pkg{rel: filepath.ToSlash(rel), imports: bp.Imports})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("found %d packages: the walk is broken", len(out))
	}
	return out
}

// within reports whether rel is one of dirs or below one.
func within(rel string, dirs ...string) bool {
	for _, d := range dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

func importsModule(p pkg, prefix string) []string {
	var hits []string
	for _, imp := range p.imports {
		if imp == prefix || strings.HasPrefix(imp, prefix+"/") {
			hits = append(hits, imp)
		}
	}
	return hits
}

// Each dependency that touches the outside world is used by the one
// package that owns that world, so it can be replaced or upgraded there.
func TestDependencyOwners(t *testing.T) {
	rules := []struct {
		dep     string
		allowed []string
		why     string
	}{
		// The data-access layer (internal/store and its generated query
		// packages) and the SIP binding store; LISTEN/NOTIFY and advisory
		// locks live in internal/store too.
		{"github.com/jackc/pgx", []string{"internal/store", "sip/sippg"}, "SQL belongs to the data-access layer"},
		{"github.com/emiago/sipgo", []string{"sip"}, "the SIP stack is the registrar's"},
		{"github.com/CyCoreSystems/ari", []string{"pbx/asterisk"}, "the ARI client is the Asterisk backend's"},
		{"github.com/go-pdf/fpdf", []string{"billing"}, "invoices are rendered by billing"},
	}
	pkgs := packages(t)
	for _, r := range rules {
		for _, p := range pkgs {
			if hits := importsModule(p, r.dep); len(hits) > 0 && !within(p.rel, r.allowed...) {
				t.Errorf("%s imports %s: only %v may (%s)", p.rel, hits[0], r.allowed, r.why)
			}
		}
	}
}

// The layers point one way: pbx is the interface backends implement and
// knows no domain; domain packages never reach up into the daemon's wiring
// (internal/app) or its HTTP API (internal/httpapi). Tests may: an
// integration test starts a whole daemon.
func TestLayers(t *testing.T) {
	domain := []string{"billing", "provisioning", "sip", "pbx", "internal/users", "internal/scheduler", "internal/store"}
	for _, p := range packages(t) {
		if within(p.rel, "pbx") && !within(p.rel, "pbx/asterisk") {
			for _, imp := range importsModule(p, module) {
				if rel := strings.TrimPrefix(imp, module+"/"); !within(rel, "pbx") {
					t.Errorf("%s imports %s: pbx and pbxtest import no domain package", p.rel, imp)
				}
			}
		}
		if within(p.rel, "pbx/asterisk") {
			for _, imp := range importsModule(p, module) {
				if rel := strings.TrimPrefix(imp, module+"/"); !within(rel, "pbx") {
					t.Errorf("%s imports %s: a backend knows only pbx", p.rel, imp)
				}
			}
		}
		if within(p.rel, domain...) {
			for _, up := range []string{"internal/app", "internal/httpapi", "internal/portal", "cmd"} {
				if hits := importsModule(p, path.Join(module, up)); len(hits) > 0 {
					t.Errorf("%s imports %s: domain packages never import the daemon's wiring or its front ends", p.rel, hits[0])
				}
			}
		}
	}
}

package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sqlStatement matches a string literal that is a SQL statement (not an
// HTTP method or an error message): SELECT, WITH, INSERT INTO, UPDATE … SET,
// DELETE FROM, upper case as pbxd writes them.
var sqlStatement = regexp.MustCompile(`^(SELECT\s|WITH\s|INSERT\s+INTO\s|UPDATE\s+\S+(\s+\S+)?\s+SET\s|DELETE\s+FROM\s)`)

// sqlDriverLevel are the files that keep hand-written SQL on purpose:
// store plumbing (schema version, fences, test databases), the SIP
// registrar's own named binding queries, database administration and
// LISTEN/NOTIFY.
var sqlDriverLevel = []string{
	"internal/store/admin.go",
	"internal/store/advisory.go", // session advisory locks (billing's payment owners)
	"internal/store/fence.go",
	"internal/store/store.go",
	"internal/store/storetest/factory.go", // fixtures for tables whose insert is not generated yet
	"internal/store/storetest/storetest.go",
	"provisioning/provisioning.go",
	"sip/sippg/sippg.go",
}

// sqlToMove are the files whose SQL still has to move into an owner's
// .sql files under internal/store (issue 16). Like pgxToMove, the list only
// shrinks: a file whose SQL has moved must leave it, and no file may join.
var sqlToMove = []string{}

// SQL lives in the data-access layer: production code outside the
// generated packages holds no SQL statement, except the named driver-level
// files and those still to move.
func TestSQLStaysInTheDataAccessLayer(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	holding := map[string]int{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "tools") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasSuffix(name, ".sql.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		ast.Inspect(f, func(n ast.Node) bool {
			if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				if s, err := strconv.Unquote(bl.Value); err == nil && sqlStatement.MatchString(strings.TrimSpace(s)) {
					holding[filepath.ToSlash(rel)]++
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(holding) == 0 {
		t.Fatal("no SQL found anywhere: the scan is broken")
	}
	total := 0
	for _, n := range holding {
		total += n
	}
	// The figure issue 16's notes track (go test -v -run TestSQL ./internal/archtest).
	t.Logf("%d SQL statements in %d production files outside the generated packages", total, len(holding))
	for file, n := range holding {
		if !slices.Contains(sqlDriverLevel, file) && !slices.Contains(sqlToMove, file) {
			t.Errorf("%s holds %d SQL statements: put them in an owner's .sql file under internal/store (make generate)", file, n)
		}
	}
	for _, file := range sqlToMove {
		if holding[file] == 0 {
			t.Errorf("%s holds no SQL any more: remove it from sqlToMove", file)
		}
	}
}

package archtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	createTable = regexp.MustCompile(`(?i)CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)`)
	writesTable = regexp.MustCompile(`(?i)\b(?:INSERT INTO|UPDATE|DELETE FROM)\s+([a-z_]+)`)
)

// Each table is written by one owner: of the generated query packages
// under internal/store (<owner>db), exactly one holds statements that
// insert into, update or delete from it. Other owners read it, or ask its
// owner (provisioning writes a change's subscriptions through billing).
func TestOneWriterPerTable(t *testing.T) {
	tables := map[string]bool{}
	migrations, err := filepath.Glob("../store/migrations/*.sql")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for _, m := range migrations {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range createTable.FindAllStringSubmatch(string(b), -1) {
			tables[strings.ToLower(c[1])] = true
		}
	}
	queries, err := filepath.Glob("../store/*db/*.sql")
	if err != nil || len(queries) == 0 {
		t.Fatalf("no query files found: %v", err)
	}
	writers := map[string][]string{} // table → owners writing it
	for _, q := range queries {
		owner := filepath.Base(filepath.Dir(q))
		b, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range writesTable.FindAllStringSubmatch(string(b), -1) {
			table := strings.ToLower(w[1])
			if tables[table] && !slices.Contains(writers[table], owner) {
				writers[table] = append(writers[table], owner)
			}
		}
	}
	if len(writers) < 10 {
		t.Fatalf("found writers for %d tables only: the scan is broken", len(writers))
	}
	for table, owners := range writers {
		if len(owners) > 1 {
			slices.Sort(owners)
			t.Errorf("table %s is written by %v: one owner writes it, the others go through it", table, owners)
		}
	}
}

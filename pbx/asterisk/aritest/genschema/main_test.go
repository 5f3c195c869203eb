package main

import (
	"bytes"
	"os"
	"testing"
)

// schema_gen.go is what the generator makes of the trimmed input: run
// go generate ./pbx/asterisk/aritest after changing either.
func TestSchemaGenUpToDate(t *testing.T) {
	in, err := os.ReadFile("../testdata/pjsip_options.xml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(objs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../schema_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("schema_gen.go is stale: run go generate ./pbx/asterisk/aritest")
	}
	if n := len(objs[0].Options); n < 100 {
		t.Errorf("endpoint has %d options: the input lost some", n)
	}
}

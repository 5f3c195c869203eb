// Command pbxctl is the operator CLI of pbxd: it talks to the HTTP API.
//
//	pbxctl [-url URL] [-token TOKEN] [-o table|json] [-q] COMMAND ...
//
// The token comes from -token, else $PBXD_TOKEN, else $PBXD_OPERATOR_TOKEN,
// else the file pbxd generated in its state directory ($PBXD_STATE_DIR or
// .pbxd)/operator-token.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pbxd/pbxd/internal/client"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv)) }

type cli struct {
	c      *client.Client
	out    *errWriter
	json   bool
	quiet  bool // -q: ids only, for capturing in shell variables
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("pbxctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envOr(getenv, "PBXD_URL", "http://127.0.0.1:8080"), "pbxd API base URL ($PBXD_URL)")
	token := fs.String("token", "", "bearer token (default $PBXD_TOKEN, $PBXD_OPERATOR_TOKEN, or the state directory's operator-token)")
	output := fs.String("o", "table", "output: table or json")
	quiet := fs.Bool("q", false, "print only ids: the created or shown object's, or each listed object's, one per line")
	// Writes to stderr that fail have nowhere else to be reported: the
	// exit code says what went wrong.
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return 2
	}
	if *output != "table" && *output != "json" {
		_, _ = fmt.Fprintln(stderr, "pbxctl: -o must be table or json")
		return 2
	}
	tok := *token
	for _, k := range []string{"PBXD_TOKEN", "PBXD_OPERATOR_TOKEN"} {
		if tok == "" {
			tok = getenv(k)
		}
	}
	if tok == "" {
		dir := envOr(getenv, "PBXD_STATE_DIR", ".pbxd")
		if b, err := os.ReadFile(filepath.Join(dir, "operator-token")); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	c := &cli{c: &client.Client{BaseURL: *url, Token: tok}, out: &errWriter{w: stdout}, json: *output == "json", quiet: *quiet, ctx: context.Background(), getenv: getenv, stdin: os.Stdin}
	err := c.dispatch(fs.Args())
	if err == nil && c.out.err != nil {
		err = fmt.Errorf("write output: %w", c.out.err)
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "pbxctl:", err)
		if _, ok := err.(usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}

// errWriter is pbxctl's standard output: it keeps the first write error
// (a closed pipe, a full disk), after which writes are dropped, and run
// reports it in the exit code. Printing through it needs no check at each
// call (printf, fprintf).
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (c *cli) printf(format string, a ...any) { fprintf(c.out, format, a...) }

func (c *cli) println(a ...any) { fprintln(c.out, a...) }

// fprintf and fprintln write to w, which ends in the cli's errWriter: that
// keeps the error.
func fprintf(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }

func fprintln(w io.Writer, a ...any) { _, _ = fmt.Fprintln(w, a...) }

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

type usageError string

func (u usageError) Error() string { return string(u) + "\n" + usage }

const usage = `usage: pbxctl [-url URL] [-token TOKEN] [-o table|json] [-q] COMMAND

  -q prints only ids (of the object created or shown, of each object listed,
  or of the change a preview made), one per line, so a shell can keep them:
  ACCT=$(pbxctl -q accounts create -name Acme -domain acme.example.net)

  status                                   daemon version and readiness
  cluster                                  which instance reconciles which Asterisk node
  packages                                 the catalog
  accounts list
  accounts show ACCOUNT
  accounts create -name N -domain D [-currency EUR] [-timezone Europe/Paris]
                  [-vat 20] [-mode card|invoice] [-seats auto_purchase|block]
                  [-first 100] [-last 899] [-node NODE]
                                           no -node: placed by capacity
  accounts token ACCOUNT                   issue an account-scoped token
  accounts move ACCOUNT NODE               move its lines to another PBX node
  accounts move-status ACCOUNT             the move in progress (or the last)
  nodes                                    PBX nodes: lines, accounts, capacity
  lines list ACCOUNT
  line password ACCOUNT LINE [-reset]      reveal (audited) or regenerate
  change preview ACCOUNT PACKAGE=QTY[:CYCLE][@now|@period_end] ... [+NUMBER] [+PREFIX*QTY] [release:+NUMBER]
  change confirm CHANGE
  subscriptions ACCOUNT
  devices list ACCOUNT
  devices add ACCOUNT -mac MAC -vendor V [-model M] [-line LINE ...]
              [-timezone Europe/Paris]     phone's zone; default the account's
  devices remove ACCOUNT DEVICE
  invoices list ACCOUNT
  invoices show INVOICE
  invoices pdf INVOICE FILE
  invoice mark-paid INVOICE
  invoice credit-note INVOICE [REASON]     correct an issued invoice
  billing summary ACCOUNT
  billing run                              run the renewal job now
  payment-methods add ACCOUNT -gateway sandbox -token sandbox_approve [-default]
  payment-methods list ACCOUNT
  numbers import -country FR [-area +331] [-kind local|toll-free] [-addon local-number]
                 [-setup-fee 0] FILE|-     one E.164 number per line; idempotent
  numbers list [-prefix +331] [-state S]   the inventory
  numbers available [-prefix +331]         free local numbers a customer may order
  numbers account ACCOUNT                  the account's numbers
  numbers assign ACCOUNT NUMBER [-line LINE] [-caller-id]
  numbers unassign ACCOUNT NUMBER
  requests file ACCOUNT KIND [DETAILS-JSON]  cancel_all, downgrade, remove_addon, remove_number,
                                           port_in, port_out, change_owner or other
  requests list [ACCOUNT] [-state open]    one account's, or all (operator)
  requests show REQUEST
  requests comment REQUEST TEXT
  requests approve REQUEST [-now] [-comment C]   default: at the period end
  requests reject REQUEST -comment C
  requests done REQUEST [-comment C]       a port-in's numbers join the account
  hardware buy ACCOUNT ITEM [-quantity N]  a phone, paid by card at once
  hardware list ACCOUNT                    orders and units awaiting their MAC
  hardware ship ACCOUNT UNIT -mac MAC [-line LINE ...]   registers the device
  scheduled list ACCOUNT                   decreases waiting for their period end
  scheduled cancel ACCOUNT ID
  clock [RFC3339-TIME]                     read or set the test clock
`

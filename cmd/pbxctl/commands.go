package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// dispatch runs the command args names: the top-level word picks a
// section, each section picks its subcommand.
func (c *cli) dispatch(args []string) error {
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "status":
		return c.show("GET", "/v1/status", nil, nil)
	case "nodes":
		return c.list("/v1/nodes", "nodes", []string{"node", "lines", "accounts", "capacity", "weight"})
	case "cluster":
		return c.list("/v1/cluster/nodes", "nodes", []string{"node", "owner", "epoch", "expires_at", "live"})
	case "packages":
		return c.list("/v1/packages", "packages", []string{"code", "name", "kind", "price_minor", "currency", "trial_days", "dial_context", "retired"})
	case "accounts":
		return c.cmdAccounts(args, rest)
	case "lines":
		return c.cmdLines(args, rest)
	case "line":
		return c.cmdLine(args, rest)
	case "change":
		return c.cmdChange(args, rest)
	case "subscriptions":
		id, err := arg(rest, 0, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/subscriptions", "subscriptions", []string{"package", "quantity", "used", "available", "cycle", "per_month_minor", "status", "current_period_start", "current_period_end", "next_payment_at"})
	case "devices":
		return c.cmdDevices(args, rest)
	case "invoices":
		return c.cmdInvoices(args, rest)
	case "invoice":
		return c.cmdInvoice(args, rest)
	case "billing":
		return c.cmdBilling(args, rest)
	case "payment-methods":
		return c.cmdPaymentMethods(args, rest)
	case "numbers":
		return c.numbers(rest)
	case "requests":
		return c.requests(rest)
	case "hardware":
		return c.hardware(rest)
	case "scheduled":
		return c.cmdScheduled(args, rest)
	case "clock":
		if len(rest) == 0 {
			return c.show("GET", "/v1/test-clock", nil, nil)
		}
		return c.show("POST", "/v1/test-clock", map[string]string{"now": rest[0]}, nil)
	}
	return unknownCommand(args)
}

func unknownCommand(args []string) error {
	return usageError("unknown command " + strings.Join(args, " "))
}

// subcommand is rest's first word, "" if none.
func subcommand(rest []string) string {
	if len(rest) == 0 {
		return ""
	}
	return rest[0]
}

// cmdAccounts runs the "accounts" commands.
func (c *cli) cmdAccounts(args, rest []string) error {
	switch subcommand(rest) {
	case "list":
		return c.list("/v1/accounts", "accounts", []string{"id", "name", "sip_domain", "currency", "payment_mode", "status"})
	case "show":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.show("GET", "/v1/accounts/"+id, nil, nil)
	case "create":
		return c.createAccount(rest[1:])
	case "token":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.show("POST", "/v1/accounts/"+id+"/tokens", nil, nil)
	case "move":
		if len(rest) != 3 {
			return usageError("accounts move ACCOUNT NODE")
		}
		return c.show("POST", "/v1/accounts/"+rest[1]+"/move", map[string]string{"node": rest[2]}, nil)
	case "move-status":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.show("GET", "/v1/accounts/"+id+"/move", nil, nil)
	}
	return unknownCommand(args)
}

// cmdLines runs the "lines" commands.
func (c *cli) cmdLines(args, rest []string) error {
	switch subcommand(rest) {
	case "list":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/lines", "lines", []string{"extension", "package", "sip_username", "sip_domain", "state", "registered", "contacts", "pbx_synced", "applied_at", "apply_error", "device_mac", "id"})
	}
	return unknownCommand(args)
}

// cmdLine runs the "line" commands.
func (c *cli) cmdLine(args, rest []string) error {
	switch subcommand(rest) {
	case "password":
		fs := flag.NewFlagSet("line password", flag.ContinueOnError)
		reset := fs.Bool("reset", false, "generate a new password")
		pos, err := parseMixed(fs, rest[1:])
		if err != nil || len(pos) != 2 {
			return usageError("line password ACCOUNT LINE [-reset]")
		}
		method := "GET"
		if *reset {
			method = "POST"
		}
		return c.show(method, "/v1/accounts/"+pos[0]+"/lines/"+pos[1]+"/password", nil, nil)
	}
	return unknownCommand(args)
}

// cmdChange runs the "change" commands.
func (c *cli) cmdChange(args, rest []string) error {
	switch subcommand(rest) {
	case "preview":
		return c.preview(rest[1:])
	case "confirm":
		id, err := arg(rest, 1, "CHANGE")
		if err != nil {
			return err
		}
		return c.show("POST", "/v1/changes/"+id+"/confirm", nil, nil)
	}
	return unknownCommand(args)
}

// cmdDevices runs the "devices" commands.
func (c *cli) cmdDevices(args, rest []string) error {
	switch subcommand(rest) {
	case "list":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/devices", "devices", []string{"id", "mac", "vendor", "model", "active", "lines"})
	case "add":
		return c.addDevice(rest[1:])
	case "remove":
		if len(rest) != 3 {
			return usageError("devices remove ACCOUNT DEVICE")
		}
		if _, err := c.c.Do(c.ctx, "DELETE", "/v1/accounts/"+rest[1]+"/devices/"+rest[2], nil); err != nil {
			return err
		}
		c.println("removed")
		return nil
	}
	return unknownCommand(args)
}

// cmdInvoices runs the "invoices" commands.
func (c *cli) cmdInvoices(args, rest []string) error {
	switch subcommand(rest) {
	case "list":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/invoices", "invoices", []string{"number", "kind", "status", "issued_at", "due_at", "net_minor", "tax_minor", "gross_minor", "currency", "id"})
	case "show":
		id, err := arg(rest, 1, "INVOICE")
		if err != nil {
			return err
		}
		return c.showInvoice(id)
	case "pdf":
		if len(rest) != 3 {
			return usageError("invoices pdf INVOICE FILE")
		}
		b, err := c.c.Do(c.ctx, "GET", "/v1/invoices/"+rest[1]+".pdf", nil)
		if err != nil {
			return err
		}
		if err := os.WriteFile(rest[2], b, 0o644); err != nil {
			return err
		}
		c.printf("wrote %s (%d bytes)\n", rest[2], len(b))
		return nil
	}
	return unknownCommand(args)
}

// cmdInvoice runs the "invoice" commands.
func (c *cli) cmdInvoice(args, rest []string) error {
	switch subcommand(rest) {
	case "mark-paid":
		id, err := arg(rest, 1, "INVOICE")
		if err != nil {
			return err
		}
		return c.show("POST", "/v1/invoices/"+id+"/mark-paid", map[string]any{}, nil)
	case "credit-note":
		id, err := arg(rest, 1, "INVOICE")
		if err != nil {
			return err
		}
		reason := strings.Join(rest[2:], " ")
		return c.show("POST", "/v1/invoices/"+id+"/credit-note", map[string]any{"reason": reason}, nil)
	}
	return unknownCommand(args)
}

// cmdBilling runs the "billing" commands.
func (c *cli) cmdBilling(args, rest []string) error {
	switch subcommand(rest) {
	case "summary":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.show("GET", "/v1/accounts/"+id+"/billing", nil, nil)
	case "run":
		return c.show("POST", "/v1/billing/run", map[string]any{}, nil)
	}
	return unknownCommand(args)
}

// cmdPaymentMethods runs the "payment-methods" commands.
func (c *cli) cmdPaymentMethods(args, rest []string) error {
	switch subcommand(rest) {
	case "list":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/payment-methods", "payment_methods", []string{"id", "gateway", "label", "default", "created_at"})
	case "add":
		fs := flag.NewFlagSet("payment-methods add", flag.ContinueOnError)
		gw := fs.String("gateway", "sandbox", "gateway: sandbox or manual")
		tok := fs.String("token", "", "gateway token")
		def := fs.Bool("default", false, "make it the default")
		pos, err := parseMixed(fs, rest[1:])
		if err != nil || len(pos) != 1 {
			return usageError("payment-methods add ACCOUNT -gateway G -token T [-default]")
		}
		return c.show("POST", "/v1/accounts/"+pos[0]+"/payment-methods", map[string]any{"gateway": *gw, "token": *tok, "default": *def}, nil)
	}
	return unknownCommand(args)
}

// cmdScheduled runs the "scheduled" commands.
func (c *cli) cmdScheduled(args, rest []string) error {
	switch subcommand(rest) {
	case "list":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/scheduled-changes", "scheduled_changes", []string{"id", "package", "from", "to", "effective_at", "state", "release_numbers"})
	case "cancel":
		if len(rest) != 3 {
			return usageError("scheduled cancel ACCOUNT ID")
		}
		return c.show("DELETE", "/v1/accounts/"+url.PathEscape(rest[1])+"/scheduled-changes/"+url.PathEscape(rest[2]), nil, nil)
	}
	return unknownCommand(args)
}

func arg(args []string, i int, name string) (string, error) {
	if len(args) <= i || strings.HasPrefix(args[i], "-") {
		return "", usageError("missing " + name)
	}
	return url.PathEscape(args[i]), nil
}

// parseMixed parses flags that may come before or after positional args.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	return pos, nil
}

func (c *cli) createAccount(args []string) error {
	fs := flag.NewFlagSet("accounts create", flag.ContinueOnError)
	name := fs.String("name", "", "account name")
	domain := fs.String("domain", "", "SIP domain")
	currency := fs.String("currency", "EUR", "currency")
	tz := fs.String("timezone", "Europe/Paris", "IANA time zone")
	vat := fs.String("vat", "20", "VAT percent")
	mode := fs.String("mode", "invoice", "payment mode: card or invoice")
	seats := fs.String("seats", "auto_purchase", "seat preference: auto_purchase or block")
	first := fs.Int("first", 100, "first extension")
	last := fs.Int("last", 899, "last extension")
	node := fs.String("node", "", "PBX node (default: placed by capacity)")
	if _, err := parseMixed(fs, args); err != nil {
		return usageError(err.Error())
	}
	body := map[string]any{
		"name": *name, "sip_domain": *domain, "currency": *currency, "timezone": *tz, "vat_percent": json.Number(*vat),
		"payment_mode": *mode, "seat_preference": *seats, "extension_range": map[string]int{"first": *first, "last": *last},
	}
	if *node != "" {
		body["pbx_node"] = *node
	}
	return c.show("POST", "/v1/accounts", body, nil)
}

func (c *cli) preview(args []string) error {
	if len(args) < 2 {
		return usageError("change preview ACCOUNT PACKAGE=QTY[:annual] ...")
	}
	body, err := changeOrder(args[1:])
	if err != nil {
		return err
	}
	b, err := c.call("POST", "/v1/accounts/"+url.PathEscape(args[0])+"/changes", body)
	if err != nil || b == nil {
		return err
	}
	var pv changePreview
	if err := json.Unmarshal(b, &pv); err != nil {
		return err
	}
	if err := c.printPreviewTable(&pv); err != nil {
		return err
	}
	c.printPreviewSummary(&pv)
	return nil
}

// changeOrder builds a change order's body from the command's arguments:
// PACKAGE=QTY[:CYCLE][@EFFECTIVE] items, +NUMBER or +PREFIX*QTY number
// orders, and release:NUMBER releases.
func changeOrder(args []string) (map[string]any, error) {
	items := []map[string]any{}
	body := map[string]any{}
	var numbers []map[string]any
	var release []string
	for _, a := range args {
		if nr, ok := strings.CutPrefix(a, "release:"); ok {
			release = append(release, nr)
			continue
		}
		if strings.HasPrefix(a, "+") {
			n, err := numberOrder(a)
			if err != nil {
				return nil, err
			}
			numbers = append(numbers, n)
			continue
		}
		it, err := packageItem(a)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	body["items"] = items
	if numbers != nil {
		body["numbers"] = numbers
	}
	if release != nil {
		body["release_numbers"] = release
	}
	return body, nil
}

// numberOrder parses "+NUMBER" (that number) or "+PREFIX*QTY" (QTY numbers
// starting with PREFIX).
func numberOrder(a string) (map[string]any, error) {
	prefix, q, ok := strings.Cut(a, "*")
	if !ok {
		return map[string]any{"number": a}, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil {
		return nil, usageError("bad number order " + a + " (want +PREFIX*QTY)")
	}
	return map[string]any{"prefix": prefix, "quantity": n}, nil
}

// packageItem parses "PACKAGE=QTY[:CYCLE][@EFFECTIVE]".
func packageItem(a string) (map[string]any, error) {
	pkg, q, ok := strings.Cut(a, "=")
	q, effective, _ := strings.Cut(q, "@")
	qty, cycle, _ := strings.Cut(q, ":")
	n, err := strconv.Atoi(qty)
	if !ok || err != nil {
		return nil, usageError("bad item " + a + " (want PACKAGE=QTY)")
	}
	it := map[string]any{"package": pkg, "quantity": n}
	if cycle != "" {
		it["cycle"] = cycle
	}
	if effective != "" {
		it["effective"] = effective
	}
	return it, nil
}

// changePreview is the API's preview of a change order.
type changePreview struct {
	ID    string
	Items []struct {
		Package       string
		From, To      int
		LinesCreated  int                       `json:"lines_created"`
		LinesRemoved  []struct{ Extension int } `json:"lines_removed"`
		ProratedMinor int64                     `json:"prorated_minor"`
		Effective     string                    `json:"effective"`
		EffectiveAt   string                    `json:"effective_at"`
	}
	DueNow struct {
		Net      int64 `json:"net_minor"`
		Tax      int64 `json:"tax_minor"`
		Gross    int64 `json:"gross_minor"`
		Currency string
	} `json:"due_now"`
	Credit      int64  `json:"credit_next_bill_minor"`
	ChargeLater int64  `json:"charge_next_bill_minor"`
	Method      string `json:"payment_method"`
	Numbers     []struct {
		Action, Number, Prefix, Addon string
		Quantity                      int
	}
	OneTime []struct {
		Description string
		Amount      int64 `json:"amount_minor"`
	} `json:"one_time_charges"`
}

// printPreviewTable prints the preview's packages, one row each with the
// direction of the change, and its one-time charges.
func (c *cli) printPreviewTable(pv *changePreview) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fprintln(tw, "PACKAGE\tBEFORE\tAFTER\t\tNEW LINES\tREMOVED\tPRORATED")
	for _, it := range pv.Items {
		arrow := "="
		if it.To > it.From {
			arrow = "↑"
		} else if it.To < it.From {
			arrow = "↓"
		}
		var removed []string
		for _, l := range it.LinesRemoved {
			removed = append(removed, strconv.Itoa(l.Extension))
		}
		when := ""
		if it.Effective == "period_end" {
			when = "at period end " + it.EffectiveAt
		}
		fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", it.Package, it.From, it.To, arrow, it.LinesCreated, strings.Join(removed, ","), money(it.ProratedMinor), when)
	}
	for _, o := range pv.OneTime {
		fprintf(tw, "%s (one-time)\t\t\t\t\t\t%s\n", o.Description, money(o.Amount))
	}
	return tw.Flush()
}

// printPreviewSummary prints what the change costs now and later, the
// numbers it orders or releases, and how to confirm it.
func (c *cli) printPreviewSummary(pv *changePreview) {
	cur := pv.DueNow.Currency
	c.printf("\ndue now:          %s %s net + %s tax = %s %s\n", money(pv.DueNow.Net), cur, money(pv.DueNow.Tax), money(pv.DueNow.Gross), cur)
	c.printf("credit next bill: %s %s\n", money(pv.Credit), cur)
	if pv.ChargeLater != 0 {
		c.printf("charge next bill: %s %s\n", money(pv.ChargeLater), cur)
	}
	if pv.Method != "" {
		c.printf("payment method:   %s\n", pv.Method)
	}
	for _, n := range pv.Numbers {
		what := n.Number
		if what == "" {
			what = fmt.Sprintf("%d starting %s", n.Quantity, n.Prefix)
		}
		c.printf("number %-8s %s (%s)\n", n.Action+":", what, n.Addon)
	}
	c.printf("\nconfirm with: pbxctl change confirm %s\n", pv.ID)
}

func (c *cli) addDevice(args []string) error {
	fs := flag.NewFlagSet("devices add", flag.ContinueOnError)
	mac := fs.String("mac", "", "MAC address")
	vendor := fs.String("vendor", "", "yealink, polycom, grandstream, snom or cisco")
	model := fs.String("model", "", "model")
	tz := fs.String("timezone", "", "IANA time zone of the phone (default: the account's)")
	var lines multi
	fs.Var(&lines, "line", "line id to bind (repeatable, keys in order)")
	pos, err := parseMixed(fs, args)
	if err != nil || len(pos) != 1 {
		return usageError("devices add ACCOUNT -mac MAC -vendor V [-model M] [-timezone TZ] [-line LINE ...]")
	}
	ls := []map[string]any{} // the API refuses null
	for i, l := range lines {
		ls = append(ls, map[string]any{"line": l, "key": i + 1})
	}
	return c.show("POST", "/v1/accounts/"+url.PathEscape(pos[0])+"/devices", map[string]any{"mac": *mac, "vendor": *vendor, "model": *model, "timezone": *tz, "lines": ls}, nil)
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// money renders minor units with two decimals, by integer arithmetic.
func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}

// call makes a request whose answer is one object and prints it itself
// for -q (its id) and -o json; otherwise it returns the body for the
// caller's table (nil when already printed).
func (c *cli) call(method, path string, body any) ([]byte, error) {
	b, err := c.c.Do(c.ctx, method, path, body)
	switch {
	case err != nil:
		return nil, err
	case c.quiet:
		return nil, c.printID(b)
	case c.json:
		return nil, writeIndented(c.out, b)
	}
	return b, nil
}

func (c *cli) show(method, path string, body any, _ []string) error {
	b, err := c.call(method, path, body)
	if err != nil || b == nil {
		return err
	}
	var m map[string]any
	if err := unmarshal(b, &m); err != nil {
		return writeIndented(c.out, b)
	}
	flat := map[string]any{}
	flatten(flat, "", m)
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(flat)) {
		fprintf(tw, "%s:\t%s\n", label(k), cell(k, flat[k]))
	}
	return tw.Flush()
}

// flatten copies m into dst with nested objects' keys joined by dots
// (next_payment.gross_minor), so a table never shows raw JSON.
func flatten(dst map[string]any, prefix string, m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			flatten(dst, prefix+k+".", sub)
			continue
		}
		dst[prefix+k] = v
	}
}

// label names a column or field for people: amounts drop their _minor
// suffix because cell prints them with two decimals.
func label(key string) string { return strings.TrimSuffix(key, "_minor") }

// showInvoice prints an invoice as a document: header, one row per line
// (credits included), totals.
func (c *cli) showInvoice(id string) error {
	b, err := c.call("GET", "/v1/invoices/"+id, nil)
	if err != nil || b == nil {
		return err
	}
	var inv struct {
		ID, Number, Kind, Status, Currency string
		IssuedAt                           time.Time `json:"issued_at"`
		DueAt                              time.Time `json:"due_at"`
		Customer                           struct{ Name string }
		Lines                              []struct {
			Package, Description string
			PeriodStart          string `json:"period_start"`
			PeriodEnd            string `json:"period_end"`
			Quantity             int64
			UnitMinor            int64  `json:"unit_minor"`
			AmountMinor          int64  `json:"amount_minor"`
			ProrationNote        string `json:"proration_note"`
		}
		NetMinor   int64 `json:"net_minor"`
		TaxMinor   int64 `json:"tax_minor"`
		GrossMinor int64 `json:"gross_minor"`
	}
	if err := json.Unmarshal(b, &inv); err != nil {
		return fmt.Errorf("decode invoice: %w", err)
	}
	c.printf("%s %s (%s), %s\n", inv.Kind, inv.Number, inv.Status, inv.Customer.Name)
	c.printf("issued %s, due %s\n\n", utc(inv.IssuedAt), utc(inv.DueAt))
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fprintln(tw, "PACKAGE\tPERIOD\tQUANTITY\tUNIT\tAMOUNT\tNOTE")
	for _, l := range inv.Lines {
		fprintf(tw, "%s\t%s – %s\t%d\t%s\t%s\t%s\n", l.Package, l.PeriodStart, l.PeriodEnd, l.Quantity, money(l.UnitMinor), money(l.AmountMinor), l.ProrationNote)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.out, "\ntotal: %s %s net + %s tax = %s %s\n", money(inv.NetMinor), inv.Currency, money(inv.TaxMinor), money(inv.GrossMinor), inv.Currency)
	return err
}

// utc prints every time pbxctl shows the same way, whatever offset the API
// gave it (lists answer in UTC, single objects in the account's offset).
func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (c *cli) list(path, key string, cols []string) error {
	b, err := c.c.Do(c.ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	if c.json {
		return writeIndented(c.out, b)
	}
	var m map[string][]map[string]any
	if err := unmarshal(b, &m); err != nil {
		return err
	}
	if c.quiet {
		for _, row := range m[key] {
			id, ok := row["id"].(string)
			if !ok {
				return fmt.Errorf("-q: the %s listed have no id", key)
			}
			c.println(id)
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	var heads []string
	for _, col := range cols {
		heads = append(heads, strings.ToUpper(label(col)))
	}
	fprintln(tw, strings.Join(heads, "\t"))
	for _, row := range m[key] {
		var cells []string
		for _, col := range cols {
			cells = append(cells, cell(col, row[col]))
		}
		fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// printID prints the "id" of a JSON object answer: what -q asks for.
func (c *cli) printID(b []byte) error {
	var m struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
		return errors.New("-q: the answer has no id")
	}
	_, err := fmt.Fprintln(c.out, m.ID)
	return err
}

// cell renders one value of field key: amounts (…_minor) with two
// decimals, times in UTC.
func cell(key string, v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if t, err := time.Parse(time.RFC3339, x); err == nil {
			return utc(t)
		}
		return x
	case json.Number:
		if n, err := x.Int64(); err == nil && strings.HasSuffix(key, "_minor") {
			return money(n)
		}
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return strconv.Itoa(len(x))
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// unmarshal keeps numbers exact (amounts are integers in minor units).
func unmarshal(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	return dec.Decode(v)
}

func writeIndented(w io.Writer, b []byte) error {
	var v any
	if err := unmarshal(b, &v); err != nil {
		_, err := w.Write(b)
		return err
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	_, err := fmt.Fprintln(w, string(out))
	return err
}

package main

import (
	"flag"
	"net/url"
)

// hardware runs the "hardware" subcommands.
func (c *cli) hardware(rest []string) error {
	if len(rest) == 0 {
		return usageError("hardware buy|list|ship")
	}
	switch rest[0] {
	case "buy":
		fs := flag.NewFlagSet("hardware buy", flag.ContinueOnError)
		qty := fs.Int("quantity", 1, "how many")
		pos, err := parseMixed(fs, rest[1:])
		if err != nil || len(pos) != 2 {
			return usageError("hardware buy ACCOUNT ITEM [-quantity N]")
		}
		return c.show("POST", "/v1/accounts/"+url.PathEscape(pos[0])+"/hardware", map[string]any{"item": pos[1], "quantity": *qty}, nil)
	case "list":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/hardware", "orders", []string{"id", "item", "quantity", "state", "invoice_id", "units", "created_at"})
	case "ship":
		fs := flag.NewFlagSet("hardware ship", flag.ContinueOnError)
		mac := fs.String("mac", "", "the phone's MAC address")
		var lines multi
		fs.Var(&lines, "line", "line id to bind (repeatable, keys in order)")
		pos, err := parseMixed(fs, rest[1:])
		if err != nil || len(pos) != 2 || *mac == "" {
			return usageError("hardware ship ACCOUNT UNIT -mac MAC [-line LINE ...]")
		}
		ls := []map[string]any{}
		for i, l := range lines {
			ls = append(ls, map[string]any{"line": l, "key": i + 1})
		}
		return c.show("POST", "/v1/accounts/"+url.PathEscape(pos[0])+"/hardware/"+url.PathEscape(pos[1])+"/ship", map[string]any{"mac": *mac, "lines": ls}, nil)
	}
	return usageError("unknown command hardware " + rest[0])
}

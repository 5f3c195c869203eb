package main

import (
	"bufio"
	"errors"
	"flag"
	"net/url"
	"os"
	"strconv"
	"strings"
)

const numberCols = "number,kind,state,addon,area,extension,caller_id,account_id,aging_until"

// numbers runs the "numbers" subcommands.
func (c *cli) numbers(rest []string) error {
	if len(rest) == 0 {
		return usageError("numbers import|list|available|account|assign|unassign")
	}
	cols := strings.Split(numberCols, ",")
	switch rest[0] {
	case "import":
		return c.importNumbers(rest[1:])
	case "list", "available":
		fs := flag.NewFlagSet("numbers "+rest[0], flag.ContinueOnError)
		state := fs.String("state", "", "available, reserved, assigned, removal_requested or aging")
		prefix := fs.String("prefix", "", "numbers starting with this, e.g. +331")
		limit := fs.Int("limit", 100, "at most this many (max 1000)")
		if _, err := parseMixed(fs, rest[1:]); err != nil {
			return usageError("numbers " + rest[0] + " [-prefix +331] [-state S] [-limit N]")
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *prefix != "" {
			q.Set("prefix", *prefix)
		}
		path := "/v1/numbers/available?"
		if rest[0] == "list" {
			path = "/v1/numbers?"
			if *state != "" {
				q.Set("state", *state)
			}
		}
		return c.list(path+q.Encode(), "numbers", cols)
	case "account":
		id, err := arg(rest, 1, "ACCOUNT")
		if err != nil {
			return err
		}
		return c.list("/v1/accounts/"+id+"/numbers", "numbers", cols)
	case "assign":
		fs := flag.NewFlagSet("numbers assign", flag.ContinueOnError)
		line := fs.String("line", "", "line id (default: the account's main line)")
		callerID := fs.Bool("caller-id", false, "present the number as the line's caller id")
		pos, err := parseMixed(fs, rest[1:])
		if err != nil || len(pos) != 2 {
			return usageError("numbers assign ACCOUNT NUMBER [-line LINE] [-caller-id]")
		}
		return c.show("POST", "/v1/accounts/"+url.PathEscape(pos[0])+"/numbers/"+url.PathEscape(pos[1])+"/assignment",
			map[string]any{"line": *line, "caller_id": *callerID}, nil)
	case "unassign":
		if len(rest) != 3 {
			return usageError("numbers unassign ACCOUNT NUMBER")
		}
		return c.show("DELETE", "/v1/accounts/"+url.PathEscape(rest[1])+"/numbers/"+url.PathEscape(rest[2])+"/assignment", nil, nil)
	}
	return usageError("unknown command numbers " + rest[0])
}

// importNumbers reads numbers, one per line ('#' starts a comment), from a
// file or standard input ("-") and imports them in calls of up to 10,000.
func (c *cli) importNumbers(args []string) (err error) {
	fs := flag.NewFlagSet("numbers import", flag.ContinueOnError)
	country := fs.String("country", "", "ISO 3166 country, e.g. FR")
	area := fs.String("area", "", "area label or prefix, e.g. +331")
	kind := fs.String("kind", "local", "local or toll-free")
	addon := fs.String("addon", "local-number", "catalog add-on billing each number")
	fee := fs.Int64("setup-fee", 0, "one-time setup fee per number, minor units")
	pos, err := parseMixed(fs, args)
	if err != nil || len(pos) != 1 || *country == "" {
		return usageError("numbers import -country FR [-area +331] [-kind local|toll-free] [-addon local-number] [-setup-fee 0] FILE|-")
	}
	in := c.stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, f.Close()) }()
		in = f
	}
	var batch []string
	total := map[string]int{}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var res struct{ Imported, Existing int }
		b, err := c.c.Do(c.ctx, "POST", "/v1/numbers/import", map[string]any{"country": *country, "area": *area, "kind": *kind,
			"addon": *addon, "setup_fee_minor": *fee, "numbers": batch})
		if err != nil {
			return err
		}
		if err := unmarshal(b, &res); err != nil {
			return err
		}
		total["imported"] += res.Imported
		total["existing"] += res.Existing
		batch = batch[:0]
		return nil
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		batch = append(batch, line)
		if len(batch) == 10_000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	c.printf("imported %d, already there %d\n", total["imported"], total["existing"])
	return nil
}

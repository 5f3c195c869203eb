package main

import (
	"encoding/json"
	"flag"
	"net/url"
	"strings"
)

var requestCols = []string{"id", "kind", "state", "account_id", "created_at", "change_id"}

// requests runs the "requests" subcommands.
func (c *cli) requests(rest []string) error {
	if len(rest) == 0 {
		return usageError("requests file|list|show|comment|approve|reject|done")
	}
	switch rest[0] {
	case "file":
		if len(rest) < 3 || len(rest) > 4 {
			return usageError(`requests file ACCOUNT KIND [DETAILS-JSON], e.g. requests file ACCT cancel_all '{"reason": "moving"}'`)
		}
		details := json.RawMessage("{}")
		if len(rest) == 4 {
			details = json.RawMessage(rest[3])
			if !json.Valid(details) {
				return usageError("DETAILS-JSON is not valid JSON")
			}
		}
		return c.show("POST", "/v1/accounts/"+url.PathEscape(rest[1])+"/requests", map[string]any{"kind": rest[2], "details": details}, nil)
	case "list":
		fs := flag.NewFlagSet("requests list", flag.ContinueOnError)
		state := fs.String("state", "", "open, approved, rejected or done")
		pos, err := parseMixed(fs, rest[1:])
		if err != nil || len(pos) > 1 {
			return usageError("requests list [ACCOUNT] [-state S]")
		}
		path := "/v1/requests"
		if len(pos) == 1 {
			path = "/v1/accounts/" + url.PathEscape(pos[0]) + "/requests"
		}
		if *state != "" {
			path += "?state=" + url.QueryEscape(*state)
		}
		return c.list(path, "requests", requestCols)
	case "show":
		id, err := arg(rest, 1, "REQUEST")
		if err != nil {
			return err
		}
		return c.show("GET", "/v1/requests/"+id, nil, nil)
	case "comment":
		if len(rest) < 3 {
			return usageError("requests comment REQUEST TEXT")
		}
		return c.show("POST", "/v1/requests/"+url.PathEscape(rest[1])+"/comments", map[string]any{"text": strings.Join(rest[2:], " ")}, nil)
	case "approve", "reject", "done":
		fs := flag.NewFlagSet("requests "+rest[0], flag.ContinueOnError)
		comment := fs.String("comment", "", "a comment for the customer")
		now := fs.Bool("now", false, "approve: take effect now (default: at the period end)")
		pos, err := parseMixed(fs, rest[1:])
		if err != nil || len(pos) != 1 {
			return usageError("requests " + rest[0] + " REQUEST [-comment C]")
		}
		body := map[string]any{"comment": *comment}
		if *now {
			body["effective"] = "now"
		}
		return c.show("POST", "/v1/requests/"+url.PathEscape(pos[0])+"/"+rest[0], body, nil)
	}
	return usageError("unknown command requests " + rest[0])
}

// Package billing is pbxd's billing, in two layers.
//
// The pure core (money.go, period.go, date.go, cycle.go, proration.go,
// tax.go, rate.go, invoice.go, render.go, dunning.go, and the gateways'
// contract in gateway.go) computes money, billing periods, proration, tax,
// invoice drafts and their rendering, and the dunning schedule. It performs
// no I/O of its own (rendering writes to a caller's io.Writer), so it is
// table-tested exhaustively.
//
// The transactional shell, Service (shell.go and the files of its units of
// work: quote.go, issue.go, renew.go, pay.go, intent.go, credit.go,
// oneoff.go, default_method.go, summary.go, sandbox_ledger.go), runs SQL
// on PostgreSQL through pgx: it reads what the core needs, calls it, and
// stores the result, one transaction per unit of work. Its queries are due
// to move to the data-access layer under internal/store (issue 16).
//
// Amounts are int64 minor units of an ISO 4217 currency; no float is used
// anywhere. Rounding is always half away from zero, done once per figure.
package billing

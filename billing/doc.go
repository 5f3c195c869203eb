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
// oneoff.go, default_method.go, subscriptions.go, summary.go,
// sandbox_ledger.go, owner.go), reads what the core needs, calls it, and
// stores the result, one unit of work (store.Tx) per operation. It holds
// no SQL: its statements are billing's generated queries in
// internal/store/billdb (one .sql file per part), and its pipelined
// batches (the renewal pipeline, a change's payment and invoice) send the
// text of those same queries through store.Batch. It does not import the
// database driver.
//
// Billing owns invoices, payment attempts and methods, credits, pending
// items, dunning and subscriptions; provisioning writes a change's
// subscriptions through its Biller (SaveSubscription), and billing
// suspends lines through the LineSwitch it is given (Options.Lines).
//
// Amounts are int64 minor units of an ISO 4217 currency; no float is used
// anywhere. Rounding is always half away from zero, done once per figure.
package billing

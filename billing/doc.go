// Package billing is the pure core of pbxd's billing: money, billing periods,
// proration, tax, invoice drafts and their rendering, payment gateways and the
// dunning schedule. It performs no I/O of its own (rendering writes to a
// caller's io.Writer) and holds no database code: a thin transactional shell
// elsewhere feeds it values and stores what it returns, so everything here can
// be table-tested exhaustively.
//
// Amounts are int64 minor units of an ISO 4217 currency; no float is used
// anywhere. Rounding is always half away from zero, done once per figure.
package billing

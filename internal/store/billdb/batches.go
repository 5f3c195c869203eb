package billdb

// The SQL of the generated queries billing also sends in pgx batches (a
// driver-level round trip sqlc does not generate): the renewal pipeline
// (billing/renew.go: its claim, then every write and the COMMIT, in
// pipelined round trips), a confirmed change's read of its packages and
// payment (billing/quote.go), the check a change order makes with the
// account's state, and the sandbox ledger's one-round-trip write. The
// text is the generated query's own, so there is one copy of it; rows
// scan by position into the generated row types (pgx.RowToStructByPos).
// Arguments go in the order of the statement's $n.
const (
	// RenewalDueSQL: $1 now, $2 account id.
	RenewalDueSQL = renewalDue
	// RenewalSettingsSQL and SynchronousCommitSQL set the renewal
	// transaction's plan cache mode and commit mode.
	RenewalSettingsSQL   = renewalSettings
	SynchronousCommitSQL = synchronousCommit
	// ClaimRenewalsSQL: $1 now, $2 account ids; rows are ClaimRenewalsRow.
	ClaimRenewalsSQL = claimRenewals
	// The renewal batch's writes, one statement per table.
	InsertRenewalsSQL        = insertRenewals
	AdvanceSubscriptionsSQL  = advanceSubscriptions
	ReducePendingItemSQL     = reducePendingItem
	InsertPendingPartSQL     = insertPendingPart
	TakePendingItemsSQL      = takePendingItems
	InsertRenewalAttemptsSQL = insertRenewalAttempts
	StartRenewalDunningSQL   = startRenewalDunning
	// ChangePackagesSQL (rows ChangePackagesRow) and LinkChangePaymentSQL
	// (row LinkChangePaymentRow) are RecordChange's one round trip.
	ChangePackagesSQL    = changePackages
	LinkChangePaymentSQL = linkChangePayment
	// PutSandboxChargeSQL: row PutSandboxChargeRow.
	PutSandboxChargeSQL = putSandboxCharge
)

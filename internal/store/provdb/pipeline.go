package provdb

// The SQL of the generated queries provisioning also sends in its one
// pipelined read of an account's state (provisioning/state.go, a pgx batch:
// a driver-level round trip sqlc does not generate). The text is the
// generated query's own, so there is one copy of it; those rows scan by
// position into the generated row types (pgx.RowToStructByPos).
const (
	AllPackagesSQL      = allPackages
	PendingScheduledSQL = pendingScheduled
	GetAccountSQL       = getAccount
	LockAccountSQL      = lockAccount
)

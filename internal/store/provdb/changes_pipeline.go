package provdb

// The SQL of the generated queries provisioning also sends in the change
// order paths' pipelined batches (provisioning/changes.go, state.go: the
// state read with the BEGIN, the preview's insert, the confirm's status
// read under the lock and its last writes with the COMMIT). The text is
// the generated query's own; rows scan by position into the generated row
// types. Arguments go in the order of the statement's $n.
const (
	// InsertChangeOrderSQL: $1 id, $2 account, $3 request, $4 preview,
	// $5 basis, $6 created at.
	InsertChangeOrderSQL = insertChangeOrder
	// ChangeOrderStatusSQL: $1 id; row ChangeOrderStatusRow.
	ChangeOrderStatusSQL = changeOrderStatus
	// ConfirmChangeOrderSQL: $1 id, $2 result, $3 confirmed at.
	ConfirmChangeOrderSQL = confirmChangeOrder
	// StateSubscriptionsSQL: $1 account; rows StateSubscriptionsRow.
	StateSubscriptionsSQL = stateSubscriptions
	// StateLinesSQL: $1 account; rows StateLinesRow.
	StateLinesSQL = stateLines
	// NumberAddonsSQL: rows are package codes.
	NumberAddonsSQL = numberAddons
)

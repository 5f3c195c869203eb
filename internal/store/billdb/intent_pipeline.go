package billdb

// The SQL of the generated queries billing sends in pgx batches of its
// payment intents and invoices (billing/intent.go, issue.go): a change's
// intent, which the confirm's first transaction sends with its COMMIT;
// a change payment's answer, recorded in the transaction that applies the
// change or in a round trip of its own; the invoices' insert, which goes
// last in its transaction (it locks the issuer's counter). The text is the
// generated query's own. Arguments go in the order of the statement's $n.
const (
	// PrepareChangePaymentSQL: $1 change, $2 account, $3 new attempt id,
	// $4 at, $5 amount, $6 currency, $7 owner; one row, scanned into
	// pointers (see the query).
	PrepareChangePaymentSQL = prepareChangePayment
	// RecordChangeAnswerSQL: $1 attempt, $2 outcome, $3 reference,
	// $4 detail, $5 decided at, $6 recorded by.
	RecordChangeAnswerSQL = recordChangeAnswer
	// AnswerRecordedBySQL: $1 attempt, $2 token; one boolean.
	AnswerRecordedBySQL = answerRecordedBy
	// InsertInvoicesSQL: see InsertInvoices; rows InsertInvoicesRow.
	InsertInvoicesSQL = insertInvoices
)

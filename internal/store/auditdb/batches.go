package auditdb

// InsertAuditSQL is InsertAudit's text, which store.QueueAudit adds to
// a caller's batch (the confirm path's round trip): $1 at, $2 actor, $3
// account id, $4 action, $5 object, $6 details.
const InsertAuditSQL = insertAudit

// InsertRenewalAuditsSQL is InsertRenewalAudits' text, which billing's
// renewal pipeline sends in its batch (a round trip sqlc does not
// generate): $1 at, $2 account ids, $3 actions, $4 objects, $5 details.
const InsertRenewalAuditsSQL = insertRenewalAudits

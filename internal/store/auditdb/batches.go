package auditdb

// InsertRenewalAuditsSQL is InsertRenewalAudits' text, which billing's
// renewal pipeline sends in its batch (a round trip sqlc does not
// generate): $1 at, $2 account ids, $3 actions, $4 objects, $5 details.
const InsertRenewalAuditsSQL = insertRenewalAudits

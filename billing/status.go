package billing

// The states billing's rows move through, as stored (the CHECK constraints
// of the migrations list the same values), like provisioning's status.go.
// Invoice statuses are Status (invoice.go); gateway answers are Outcome
// (gateway.go).

// SubscriptionStatus is a subscription's status.
type SubscriptionStatus string

// Subscription statuses.
const (
	SubscriptionTrial    SubscriptionStatus = "trial"    // free until trial_end
	SubscriptionActive   SubscriptionStatus = "active"   // renewed each period
	SubscriptionInactive SubscriptionStatus = "inactive" // unpaid after dunning: lines suspended, not renewed
)

// SubscriptionStatuses lists them (the gauge's label values).
var SubscriptionStatuses = []SubscriptionStatus{SubscriptionTrial, SubscriptionActive, SubscriptionInactive}

// AttemptOutcome is a payment attempt's outcome as stored: a gateway's
// Outcome, or unknown (the intent, before the answer), error (no answer,
// nothing charged) or manual (marked paid by the operator).
type AttemptOutcome string

// Payment attempt outcomes.
const (
	AttemptUnknown  AttemptOutcome = "unknown"
	AttemptApproved AttemptOutcome = AttemptOutcome(OutcomeApproved)
	AttemptDeclined AttemptOutcome = AttemptOutcome(OutcomeDeclined)
	AttemptPending  AttemptOutcome = AttemptOutcome(OutcomePending)
	AttemptError    AttemptOutcome = "error"
	AttemptManual   AttemptOutcome = "manual"
)

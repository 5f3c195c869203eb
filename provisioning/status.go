package provisioning

// The states provisioning's rows move through, as stored (the CHECK
// constraints of the migrations list the same values). The exported
// structs keep plain string fields, so the API and its JSON are unchanged;
// domain code compares and assigns through these types instead of bare
// literals.

// LineState is a line's state.
type LineState string

// Line states.
const (
	LineActive    LineState = "active"    // on the PBX
	LineSuspended LineState = "suspended" // off the PBX, kept with its password
	LineDeleted   LineState = "deleted"   // removed; its extension is free again
)

// AccountStatus is an account's status.
type AccountStatus string

// Account statuses.
const (
	AccountActive    AccountStatus = "active"
	AccountSuspended AccountStatus = "suspended" // lines off the PBX, change orders refused
	AccountClosed    AccountStatus = "closed"    // no lines; cannot move
)

// RequestState is a service request's state: open → approved | rejected,
// then approved → done.
type RequestState string

// Request states.
const (
	RequestOpen     RequestState = "open"
	RequestApproved RequestState = "approved"
	RequestRejected RequestState = "rejected"
	RequestDone     RequestState = "done"
)

// NumberState is an inventory number's state. An aging number whose
// quarantine is over shows, and sells, as available.
type NumberState string

// Number states.
const (
	NumberAvailable        NumberState = "available"
	NumberReserved         NumberState = "reserved" // the account's, on no line
	NumberAssigned         NumberState = "assigned" // on one of the account's lines
	NumberRemovalRequested NumberState = "removal_requested"
	NumberAging            NumberState = "aging" // released, in quarantine
)

// NumberStates lists the number states in their lifecycle order.
var NumberStates = []NumberState{NumberAvailable, NumberReserved, NumberAssigned, NumberRemovalRequested, NumberAging}

// SeatPreference is what happens when a new line needs a seat and none is
// free.
type SeatPreference string

// Seat preferences.
const (
	SeatAutoPurchase SeatPreference = "auto_purchase" // buy one, prorated
	SeatBlock        SeatPreference = "block"         // refuse the line
)

// SubscriptionTrial is the status of a subscription still in its free
// trial (billing owns the other subscription statuses).
const SubscriptionTrial = "trial"

// HardwareUnitState is a sold phone's state: awaiting its MAC, then
// shipped (linked to its device).
type HardwareUnitState string

// Hardware unit states.
const (
	UnitAwaitingMAC HardwareUnitState = "awaiting_mac"
	UnitShipped     HardwareUnitState = "shipped"
)

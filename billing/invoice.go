package billing

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors for invoices.
var (
	// ErrInvalidInvoice means a draft is incomplete or inconsistent.
	ErrInvalidInvoice = errors.New("billing: invalid invoice")
	// ErrInvalidNumber means an invoice number is not of the form 2026-000123.
	ErrInvalidNumber = errors.New("billing: invalid invoice number")
	// ErrInvoiceState means a status change is not allowed: issued invoices
	// are immutable, so only open ones can be paid or voided.
	ErrInvoiceState = errors.New("billing: invalid invoice state transition")
)

// Issuer is the operator's legal identity printed on every invoice (from the
// config).
type Issuer struct {
	Name    string
	Address []string
	VATID   string
	// Bank, IBAN and BIC are where a bank transfer pays an invoice.
	Bank, IBAN, BIC string
}

// Customer is the account's billing identity as of the invoice date. It is
// copied into the invoice so later account edits cannot alter an issued one.
type Customer struct {
	Name    string
	Address []string
	VATID   string
}

// Line is one invoice item: one package or add-on × the quantity changed or
// renewed, for one period.
type Line struct {
	Description string
	// PackageCode is the catalog code ("fr-fixed-mobile"), kept for reporting.
	PackageCode string
	Quantity    int64
	// UnitMinor is the unit price for a full period.
	UnitMinor int64
	// PeriodStart and PeriodEnd bound the service billed, [start, end) — the
	// end is exclusive like every period in this package; renderers show the
	// inclusive last day.
	PeriodStart Date
	PeriodEnd   Date
	// ProrationNote explains a partial period ("15 of 30 days"); empty for a
	// full one.
	ProrationNote string
	// AmountMinor is the line's net amount, negative for a credit. It is the
	// source of truth (it may be prorated), not recomputed from UnitMinor.
	AmountMinor    int64
	VATBasisPoints BasisPoints
}

// Status is an invoice's payment state.
type Status string

// Invoice statuses. Only open invoices change status.
const (
	// StatusOpen is awaiting payment (or, for bank transfers, an operator).
	StatusOpen Status = "open"
	// StatusPaid has been paid; PaymentRef names the transaction.
	StatusPaid Status = "paid"
	// StatusVoid was cancelled before payment.
	StatusVoid Status = "void"
)

// Kind distinguishes invoices from the credit notes that correct them.
type Kind string

// Invoice kinds.
const (
	// KindInvoice is a regular bill.
	KindInvoice Kind = "invoice"
	// KindCreditNote corrects an issued invoice, which is never edited.
	KindCreditNote Kind = "credit_note"
)

// Invoice is a complete invoice or credit note as issued. Build it with
// BuildInvoice so that Totals always agree with Lines.
type Invoice struct {
	// Number is gapless per issuer and year (see FormatNumber); empty for an
	// unnumbered preview.
	Number   string
	Kind     Kind
	Status   Status
	Issuer   Issuer
	Customer Customer
	IssuedAt time.Time
	DueAt    time.Time
	Currency Currency
	Lines    []Line
	Totals   Totals
	// Corrects is, for a credit note, the number of the invoice it corrects.
	Corrects string
	// PaymentRef is the gateway transaction reference once paid.
	PaymentRef string
	// Payment is how the invoice was paid; filled when the invoice is read
	// (the document is frozen at issue, the payment comes after), nil while
	// it is open.
	Payment *Payment `json:"-"`
}

// Payment is how an invoice was paid, as printed on it.
type Payment struct {
	At          time.Time
	Method      string // "Sandbox card (approve)", "visa …4242", "Bank transfer", "Credit balance"
	Reference   string
	AmountMinor int64
}

// Draft is the input of BuildInvoice.
type Draft struct {
	Number   string
	Kind     Kind // empty means KindInvoice
	Issuer   Issuer
	Customer Customer
	IssuedAt time.Time
	DueAt    time.Time
	Currency Currency
	Lines    []Line
	Corrects string
}

// BuildInvoice validates a draft and returns the open invoice with its totals
// computed by ComputeTotals. A credit note must not total more than zero.
// The draft's slices are copied, so the invoice does not alias the caller's.
func BuildInvoice(d Draft) (Invoice, error) {
	bad := func(format string, args ...any) (Invoice, error) {
		return Invoice{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidInvoice}, args...)...)
	}
	if d.Kind == "" {
		d.Kind = KindInvoice
	}
	if d.Kind != KindInvoice && d.Kind != KindCreditNote {
		return bad("kind %q", d.Kind)
	}
	if d.Number != "" {
		if _, _, err := ParseNumber(d.Number); err != nil {
			return Invoice{}, err
		}
	}
	if !d.Currency.Valid() {
		return bad("currency %q", d.Currency)
	}
	if d.Issuer.Name == "" || d.Customer.Name == "" {
		return bad("issuer and customer names are required")
	}
	if d.IssuedAt.IsZero() || d.DueAt.Before(d.IssuedAt) {
		return bad("issue date %v, due date %v", d.IssuedAt, d.DueAt)
	}
	if len(d.Lines) == 0 {
		return bad("no lines")
	}
	tax := make([]TaxLine, len(d.Lines))
	for i, l := range d.Lines {
		if l.Description == "" {
			return bad("line %d: no description", i)
		}
		if l.PeriodStart.IsZero() != l.PeriodEnd.IsZero() || (!l.PeriodStart.IsZero() && !l.PeriodStart.Before(l.PeriodEnd)) {
			return bad("line %d: period [%v, %v)", i, l.PeriodStart, l.PeriodEnd)
		}
		tax[i] = TaxLine{NetMinor: l.AmountMinor, Rate: l.VATBasisPoints}
	}
	totals, err := ComputeTotals(tax)
	if err != nil {
		return Invoice{}, fmt.Errorf("%w: %w", ErrInvalidInvoice, err)
	}
	if d.Kind == KindCreditNote && totals.GrossMinor > 0 {
		return bad("credit note totals %d > 0", totals.GrossMinor)
	}
	inv := Invoice{
		Number: d.Number, Kind: d.Kind, Status: StatusOpen,
		Issuer: d.Issuer, Customer: d.Customer,
		IssuedAt: d.IssuedAt, DueAt: d.DueAt, Currency: d.Currency,
		Lines: slices.Clone(d.Lines), Totals: totals, Corrects: d.Corrects,
	}
	inv.Issuer.Address = slices.Clone(d.Issuer.Address)
	inv.Customer.Address = slices.Clone(d.Customer.Address)
	return inv, nil
}

// MarkPaid records payment of an open invoice with the gateway's reference.
func (inv *Invoice) MarkPaid(paymentRef string) error {
	if inv.Status != StatusOpen {
		return fmt.Errorf("%w: %s %s -> %s", ErrInvoiceState, inv.Number, inv.Status, StatusPaid)
	}
	inv.Status, inv.PaymentRef = StatusPaid, paymentRef
	return nil
}

// Void cancels an open invoice; paid ones need a credit note instead.
func (inv *Invoice) Void() error {
	if inv.Status != StatusOpen {
		return fmt.Errorf("%w: %s %s -> %s", ErrInvoiceState, inv.Number, inv.Status, StatusVoid)
	}
	inv.Status = StatusVoid
	return nil
}

// ProratedLine builds the line for quantity × unitMinor ordered on orderDay
// within [periodStart, periodEnd): the amount comes from Prorate and the note
// says how many days were billed. A negative quantity or price gives a credit.
func ProratedLine(description, packageCode string, quantity, unitMinor int64, periodStart, periodEnd, orderDay Date, vat BasisPoints, s ProrationSettings) (Line, error) {
	price, ok := mulInt64(quantity, unitMinor)
	if !ok {
		return Line{}, fmt.Errorf("%w: %d × %d", ErrOverflow, quantity, unitMinor)
	}
	amount, remaining, days := Prorate(price, periodStart, periodEnd, orderDay, s)
	l := Line{
		Description: description, PackageCode: packageCode,
		Quantity: quantity, UnitMinor: unitMinor,
		PeriodStart: periodStart, PeriodEnd: periodEnd,
		AmountMinor: amount, VATBasisPoints: vat,
	}
	if remaining != days {
		l.ProrationNote = ProrationNote(remaining, days)
		if orderDay.After(periodStart) && orderDay.Before(periodEnd) {
			l.PeriodStart = orderDay
		}
	}
	return l, nil
}

// ProrationNote is the human explanation of a prorated line: "15 of 30 days".
func ProrationNote(remaining, daysInPeriod int) string {
	return fmt.Sprintf("%d of %d days", remaining, daysInPeriod)
}

// FormatNumber formats an invoice number as "2026-000123": the year, then the
// issuer's gapless sequence for that year, zero-padded to six digits (longer
// sequences keep all their digits, so numbers stay unique and sortable by
// length then value).
func FormatNumber(year int, seq int64) string {
	return fmt.Sprintf("%04d-%06d", year, seq)
}

// ParseNumber is the inverse of FormatNumber for numbers from outside (API
// paths, operator input). It accepts only the canonical form, so every
// invoice has exactly one spelling.
func ParseNumber(s string) (year int, seq int64, err error) {
	y, n, ok := strings.Cut(s, "-")
	if !ok || len(y) != 4 || len(n) < 6 || (len(n) > 6 && n[0] == '0') || !allDigits(y) || !allDigits(n) {
		return 0, 0, fmt.Errorf("%w: %q", ErrInvalidNumber, s)
	}
	year, _ = strconv.Atoi(y)
	seq, err = strconv.ParseInt(n, 10, 64)
	if err != nil || seq < 1 || year < 1 {
		return 0, 0, fmt.Errorf("%w: %q", ErrInvalidNumber, s)
	}
	return year, seq, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// issue is an invoice about to be written: built by BuildInvoice without a
// number, which issueTx allocates.
type issue struct {
	id         string
	accountID  string
	inv        Invoice
	status     Status
	paymentRef string
	paidAt     *time.Time
}

// queueInvoices adds the inserts of invoices to a batch, one statement per
// year of issue (numbering restarts each year), and sets each invoice's
// number when the batch runs.
func queueInvoices(b *store.Batch, issues []*issue, issuerCode string) error {
	byYear := map[int][]*issue{}
	var years []int
	for _, is := range issues {
		y := is.inv.IssuedAt.Year()
		if byYear[y] == nil {
			years = append(years, y)
		}
		byYear[y] = append(byYear[y], is)
	}
	for _, y := range years {
		group := byYear[y]
		n := len(group)
		strs := func() []string { return make([]string, n) }
		ids, accounts, kinds, statuses, currencies, docs, refs := strs(), strs(), strs(), strs(), strs(), strs(), strs()
		issued, due := make([]time.Time, n), make([]time.Time, n)
		net, tax, gross := make([]int64, n), make([]int64, n), make([]int64, n)
		paid := make([]*time.Time, n) // NULL unless paid at issue
		for i, is := range group {
			is.inv.Status, is.inv.PaymentRef = is.status, is.paymentRef
			doc, err := json.Marshal(is.inv)
			if err != nil {
				return fmt.Errorf("encode invoice document: %w", err)
			}
			t := is.inv.Totals
			ids[i], accounts[i], kinds[i], statuses[i], currencies[i], docs[i], refs[i] = is.id, is.accountID, string(is.inv.Kind), string(is.status), string(is.inv.Currency), string(doc), is.paymentRef
			issued[i], due[i], net[i], tax[i], gross[i] = is.inv.IssuedAt, is.inv.DueAt, t.NetMinor, t.TaxMinor, t.GrossMinor
			paid[i] = is.paidAt
		}
		// The issuer's counter for the year allocates the numbers; the
		// counter row stays locked until the transaction ends (gapless
		// numbers): callers send this last in their transaction.
		q := b.Queue(billdb.InsertInvoicesSQL, issuerCode, y, int64(n), ids, accounts, kinds, statuses, currencies, issued, due, net, tax, gross, docs, refs, paid)
		store.QueryRows(q, func(inserted []billdb.InsertInvoicesRow) error {
			numbers := make(map[string]string, n)
			for _, r := range inserted {
				numbers[r.ID] = r.Number
			}
			for _, is := range group {
				if is.inv.Number = numbers[is.id]; is.inv.Number == "" {
					return fmt.Errorf("insert invoices: no number for invoice %s", is.id)
				}
			}
			return nil
		})
	}
	return nil
}

// issueTx writes one invoice in tx (number allocated last).
func (s *Service) issueTx(ctx context.Context, tx *store.Tx, is *issue) error {
	b := &store.Batch{}
	if err := queueInvoices(b, []*issue{is}, s.cfg().IssuerCode); err != nil {
		return err
	}
	return tx.SendBatch(ctx, b)
}

// countIssued records an issued invoice in the metrics, after commit.
func (s *Service) countIssued(inv Invoice) {
	s.m.invoices.WithLabelValues(string(inv.Currency), string(inv.Kind)).Inc()
	if inv.Kind == KindCreditNote {
		s.m.creditedMinor.WithLabelValues(string(inv.Currency)).Add(float64(-inv.Totals.GrossMinor))
		return
	}
	s.m.invoicedMinor.WithLabelValues(string(inv.Currency)).Add(float64(inv.Totals.GrossMinor))
}

// StoredInvoice is an issued invoice with its database identity.
type StoredInvoice struct {
	Invoice
	ID        string
	AccountID string
	PaidAt    *time.Time
}

// errNoInvoice is the not-found error of invoice lookups.
var errNoInvoice = fault.New(fault.NotFound, "", "invoice not found")

// Invoice returns an invoice; accountScope, when not empty, must own it
// (another account's invoice is not found, so its existence does not leak).
func (s *Service) Invoice(ctx context.Context, id, accountScope string) (StoredInvoice, error) {
	if uuid.Validate(id) != nil {
		return StoredInvoice{}, errNoInvoice
	}
	r, err := s.q.InvoiceByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && accountScope != "" && accountScope != r.AccountID) {
		return StoredInvoice{}, errNoInvoice
	}
	if err != nil {
		return StoredInvoice{}, fmt.Errorf("read invoice %s: %w", id, err)
	}
	si := StoredInvoice{ID: r.ID, AccountID: r.AccountID, PaidAt: r.PaidAt}
	number, ref, status := r.Number, r.PaymentRef, r.Status
	if err := json.Unmarshal(r.Document, &si.Invoice); err != nil {
		return StoredInvoice{}, fmt.Errorf("decode invoice %s: %w", id, err)
	}
	// The document is frozen at issue; only the payment state moves on.
	si.Number, si.Status, si.PaymentRef = number, Status(status), ref
	if si.Status == StatusPaid {
		p, err := s.paymentOf(ctx, si)
		if err != nil {
			return StoredInvoice{}, err
		}
		si.Payment = p
	}
	return si, nil
}

// paymentOf reads how a paid invoice was paid: its approved (or manually
// recorded) attempt, with the method's label; a zero invoice is paid by
// the account's credit.
func (s *Service) paymentOf(ctx context.Context, si StoredInvoice) (*Payment, error) {
	p := &Payment{Reference: si.PaymentRef}
	r, err := s.q.InvoicePayment(ctx, &si.ID)
	if err == nil {
		p.At, p.Method, p.Reference, p.AmountMinor = r.At, r.Method, r.Reference, r.AmountMinor
	}
	switch outcome := r.Outcome; {
	case errors.Is(err, store.ErrNotFound):
		p.Method, p.AmountMinor = "Credit balance", si.Totals.GrossMinor
		if si.PaidAt != nil {
			p.At = *si.PaidAt
		}
	case err != nil:
		return nil, fmt.Errorf("read payment of invoice %s: %w", si.ID, err)
	case outcome == "manual":
		p.Method = "Bank transfer"
	}
	p.At = p.At.In(si.IssuedAt.Location())
	return p, nil
}

// InvoiceSummary is one row of an account's billing history.
type InvoiceSummary struct {
	ID         string    `json:"id"`
	Number     string    `json:"number"`
	Kind       string    `json:"kind"`
	Status     string    `json:"status"`
	IssuedAt   time.Time `json:"issued_at"`
	DueAt      time.Time `json:"due_at"`
	Currency   string    `json:"currency"`
	NetMinor   int64     `json:"net_minor"`
	TaxMinor   int64     `json:"tax_minor"`
	GrossMinor int64     `json:"gross_minor"`
	PaymentRef string    `json:"payment_ref"`
}

// Invoices lists an account's invoices, oldest first.
func (s *Service) Invoices(ctx context.Context, accountID string) ([]InvoiceSummary, error) {
	if err := s.accountExists(ctx, accountID); err != nil {
		return nil, err
	}
	q := s.q
	rows, err := q.AccountInvoices(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list invoices: %w", err)
	}
	// In the account's time zone, as the invoices themselves show them.
	tz, err := q.AccountTimezone(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("read account time zone: %w", err)
	}
	loc := s.location(tz)
	out := make([]InvoiceSummary, 0, len(rows))
	for _, r := range rows {
		is := InvoiceSummary(r)
		is.IssuedAt, is.DueAt = is.IssuedAt.In(loc), is.DueAt.In(loc)
		out = append(out, is)
	}
	return out, nil
}

func (s *Service) accountExists(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return fault.New(fault.NotFound, "", "account not found")
	}
	ok, err := s.q.AccountExists(ctx, accountID)
	if err != nil {
		return fmt.Errorf("read account: %w", err)
	}
	if !ok {
		return fault.New(fault.NotFound, "", "account not found")
	}
	return nil
}

// InvoiceView is the JSON form of an invoice (GET /v1/invoices/{id}).
type InvoiceView struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"account_id"`
	Number     string     `json:"number"`
	Kind       Kind       `json:"kind"`
	Status     Status     `json:"status"`
	Issuer     PartyView  `json:"issuer"`
	Customer   PartyView  `json:"customer"`
	IssuedAt   time.Time  `json:"issued_at"`
	DueAt      time.Time  `json:"due_at"`
	Currency   Currency   `json:"currency"`
	Lines      []LineView `json:"lines"`
	NetMinor   int64      `json:"net_minor"`
	Taxes      []TaxView  `json:"taxes"`
	TaxMinor   int64      `json:"tax_minor"`
	GrossMinor int64      `json:"gross_minor"`
	PaymentRef string     `json:"payment_ref"`
	PaidAt     *time.Time `json:"paid_at"`
	// Payment is how it was paid (null while open).
	Payment  *PaymentView `json:"payment"`
	Corrects string       `json:"corrects,omitempty"`
	Links    InvoiceLinks `json:"links"`
}

// PaymentView is how an invoice was paid.
type PaymentView struct {
	At          time.Time `json:"at"`
	Method      string    `json:"method"`
	Reference   string    `json:"reference"`
	AmountMinor int64     `json:"amount_minor"`
}

// PartyView is an issuer or customer identity.
type PartyView struct {
	Name    string   `json:"name"`
	Address []string `json:"address"`
	VATID   string   `json:"vat_id,omitempty"`
}

// LineView is an invoice line; period_end is exclusive like every period.
type LineView struct {
	Description   string `json:"description"`
	Package       string `json:"package,omitempty"`
	Quantity      int64  `json:"quantity"`
	UnitMinor     int64  `json:"unit_minor"`
	PeriodStart   *Date  `json:"period_start,omitempty"`
	PeriodEnd     *Date  `json:"period_end,omitempty"`
	ProrationNote string `json:"proration_note,omitempty"`
	AmountMinor   int64  `json:"amount_minor"`
	VATPercent    string `json:"vat_percent"`
}

// TaxView is one VAT rate's base and tax.
type TaxView struct {
	VATPercent string `json:"vat_percent"`
	NetMinor   int64  `json:"net_minor"`
	TaxMinor   int64  `json:"tax_minor"`
}

// InvoiceLinks point at the rendered documents.
type InvoiceLinks struct {
	HTML string `json:"html"`
	PDF  string `json:"pdf"`
}

// View converts the invoice to its JSON form.
func (si StoredInvoice) View() InvoiceView {
	v := InvoiceView{
		ID: si.ID, AccountID: si.AccountID, Number: si.Number, Kind: si.Kind, Status: si.Status,
		Issuer:   PartyView{Name: si.Issuer.Name, Address: nonNil(si.Issuer.Address), VATID: si.Issuer.VATID},
		Customer: PartyView{Name: si.Customer.Name, Address: nonNil(si.Customer.Address), VATID: si.Customer.VATID},
		IssuedAt: si.IssuedAt, DueAt: si.DueAt, Currency: si.Currency, Lines: []LineView{}, Taxes: []TaxView{},
		NetMinor: si.Totals.NetMinor, TaxMinor: si.Totals.TaxMinor, GrossMinor: si.Totals.GrossMinor,
		PaymentRef: si.PaymentRef, PaidAt: si.PaidAt, Corrects: si.Corrects,
		Links: InvoiceLinks{HTML: "/v1/invoices/" + si.ID + ".html", PDF: "/v1/invoices/" + si.ID + ".pdf"},
	}
	if p := si.Payment; p != nil {
		v.Payment = &PaymentView{At: p.At, Method: p.Method, Reference: p.Reference, AmountMinor: p.AmountMinor}
	}
	for _, l := range si.Lines {
		lv := LineView{Description: l.Description, Package: l.PackageCode, Quantity: l.Quantity, UnitMinor: l.UnitMinor,
			ProrationNote: l.ProrationNote, AmountMinor: l.AmountMinor, VATPercent: percentString(l.VATBasisPoints)}
		if !l.PeriodStart.IsZero() {
			ps, pe := l.PeriodStart, l.PeriodEnd
			lv.PeriodStart, lv.PeriodEnd = &ps, &pe
		}
		v.Lines = append(v.Lines, lv)
	}
	for _, r := range si.Totals.ByRate {
		v.Taxes = append(v.Taxes, TaxView{VATPercent: percentString(r.Rate), NetMinor: r.NetMinor, TaxMinor: r.TaxMinor})
	}
	return v
}

// percentString is "20" or "5.5": BasisPoints.String without the sign.
func percentString(r BasisPoints) string {
	s := r.String()
	return s[:len(s)-1]
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

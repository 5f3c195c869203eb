package billing

import (
	"errors"
	"testing"
	"time"
)

// sampleDraft is a realistic mixed invoice: a prorated charge, a full renewal
// line, a prorated credit and an add-on at a reduced VAT rate.
func sampleDraft(t *testing.T) Draft {
	t.Helper()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	nov, dec, jan := d("2026-11-01"), d("2026-12-01"), d("2027-01-01")
	charge, err := ProratedLine("France fixed & mobile", "fr-fixed-mobile", 1, 4990, nov, dec, d("2026-11-16"), 2000, ProrationSettings{})
	if err != nil {
		t.Fatal(err)
	}
	credit, err := ProratedLine("World fixed & mobile, line removed", "world", -1, 6990, nov, dec, d("2026-11-16"), 2000, ProrationSettings{})
	if err != nil {
		t.Fatal(err)
	}
	return Draft{
		Number: FormatNumber(2026, 1),
		Issuer: Issuer{
			Name:    "Téléphonie Exemple SAS",
			Address: []string{"12 rue de la Paix", "75002 Paris", "France"},
			VATID:   "FR12345678901",
		},
		Customer: Customer{
			Name:    "Acme <Widgets> & Co",
			Address: []string{"1 Main Street", "69001 Lyon"},
			VATID:   "FR98765432109",
		},
		IssuedAt: time.Date(2026, 12, 1, 0, 5, 0, 0, paris),
		DueAt:    time.Date(2026, 12, 31, 0, 0, 0, 0, paris),
		Currency: "EUR",
		Lines: []Line{
			charge,
			{Description: "World fixed & mobile", PackageCode: "world", Quantity: 2, UnitMinor: 6990, PeriodStart: dec, PeriodEnd: jan, AmountMinor: 13980, VATBasisPoints: 2000},
			credit,
			{Description: "Local number +33 1 23 45 67 89", PackageCode: "addon-did", Quantity: 1, UnitMinor: 300, PeriodStart: dec, PeriodEnd: jan, AmountMinor: 300, VATBasisPoints: 550},
		},
	}
}

func TestBuildInvoice(t *testing.T) {
	t.Parallel()
	draft := sampleDraft(t)
	inv, err := BuildInvoice(draft)
	if err != nil {
		t.Fatal(err)
	}
	// 20 %: 2495 + 13980 − 3495 = 12980 → 2596; 5.5 %: 300 → 16.5 → 17.
	want := Totals{NetMinor: 13280, ByRate: []RateTotal{{550, 300, 17}, {2000, 12980, 2596}}, TaxMinor: 2613, GrossMinor: 15893}
	if inv.Totals.NetMinor != want.NetMinor || inv.Totals.TaxMinor != want.TaxMinor || inv.Totals.GrossMinor != want.GrossMinor ||
		len(inv.Totals.ByRate) != 2 || inv.Totals.ByRate[0] != want.ByRate[0] || inv.Totals.ByRate[1] != want.ByRate[1] {
		t.Errorf("totals = %+v, want %+v", inv.Totals, want)
	}
	if inv.Status != StatusOpen || inv.Kind != KindInvoice {
		t.Errorf("status %q kind %q", inv.Status, inv.Kind)
	}
	l := inv.Lines[0]
	if l.AmountMinor != 2495 || l.ProrationNote != "15 of 30 days" || l.PeriodStart != d("2026-11-16") || l.PeriodEnd != d("2026-12-01") {
		t.Errorf("prorated line = %+v", l)
	}
	if c := inv.Lines[2]; c.AmountMinor != -3495 || c.ProrationNote != "15 of 30 days" {
		t.Errorf("credit line = %+v", c)
	}
	// The invoice does not alias the draft.
	draft.Lines[0].AmountMinor = 1
	draft.Issuer.Address[0] = "changed"
	if inv.Lines[0].AmountMinor != 2495 || inv.Issuer.Address[0] == "changed" {
		t.Error("invoice aliases the draft's slices")
	}
}

func TestBuildInvoiceInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Draft)
		err    error
	}{
		{"bad number", func(d *Draft) { d.Number = "2026-1" }, ErrInvalidNumber},
		{"bad currency", func(d *Draft) { d.Currency = "euro" }, ErrInvalidInvoice},
		{"bad kind", func(d *Draft) { d.Kind = "receipt" }, ErrInvalidInvoice},
		{"no issuer", func(d *Draft) { d.Issuer.Name = "" }, ErrInvalidInvoice},
		{"no customer", func(d *Draft) { d.Customer.Name = "" }, ErrInvalidInvoice},
		{"no issue date", func(d *Draft) { d.IssuedAt = time.Time{} }, ErrInvalidInvoice},
		{"due before issue", func(d *Draft) { d.DueAt = d.IssuedAt.Add(-time.Second) }, ErrInvalidInvoice},
		{"no lines", func(d *Draft) { d.Lines = nil }, ErrInvalidInvoice},
		{"no description", func(d *Draft) { d.Lines[1].Description = "" }, ErrInvalidInvoice},
		{"half a period", func(d *Draft) { d.Lines[1].PeriodEnd = Date{} }, ErrInvalidInvoice},
		{"inverted period", func(d *Draft) { d.Lines[1].PeriodEnd = d.Lines[1].PeriodStart }, ErrInvalidInvoice},
		{"bad VAT", func(d *Draft) { d.Lines[1].VATBasisPoints = 20000 }, ErrInvalidRate},
		{"positive credit note", func(d *Draft) { d.Kind = KindCreditNote }, ErrInvalidInvoice},
	} {
		dr := sampleDraft(t)
		tc.mutate(&dr)
		if _, err := BuildInvoice(dr); !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestCreditNote(t *testing.T) {
	t.Parallel()
	dr := sampleDraft(t)
	dr.Kind, dr.Number, dr.Corrects = KindCreditNote, FormatNumber(2026, 2), FormatNumber(2026, 1)
	dr.Lines = []Line{{Description: "Correction", Quantity: 1, UnitMinor: -2495, AmountMinor: -2495, VATBasisPoints: 2000}}
	inv, err := BuildInvoice(dr)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Totals.GrossMinor != -2994 { // −2495 − 499
		t.Errorf("credit note gross = %d", inv.Totals.GrossMinor)
	}
}

func TestInvoiceStatus(t *testing.T) {
	t.Parallel()
	inv, err := BuildInvoice(sampleDraft(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.MarkPaid("sbx_0123456789abcdef"); err != nil || inv.Status != StatusPaid || inv.PaymentRef != "sbx_0123456789abcdef" {
		t.Fatalf("MarkPaid: %v, %+v", err, inv)
	}
	if err := inv.MarkPaid("again"); !errors.Is(err, ErrInvoiceState) {
		t.Errorf("second MarkPaid: %v", err)
	}
	if err := inv.Void(); !errors.Is(err, ErrInvoiceState) {
		t.Errorf("Void of a paid invoice: %v", err)
	}
	inv2, _ := BuildInvoice(sampleDraft(t))
	if err := inv2.Void(); err != nil || inv2.Status != StatusVoid {
		t.Errorf("Void: %v", err)
	}
}

func TestProratedLineOverflow(t *testing.T) {
	t.Parallel()
	if _, err := ProratedLine("x", "", 1<<40, 1<<40, d("2026-11-01"), d("2026-12-01"), d("2026-11-01"), 0, ProrationSettings{}); !errors.Is(err, ErrOverflow) {
		t.Errorf("err = %v", err)
	}
}

func TestInvoiceNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		year int
		seq  int64
		want string
	}{
		{2026, 1, "2026-000001"}, {2026, 123, "2026-000123"}, {2027, 999999, "2027-999999"}, {2027, 1000000, "2027-1000000"},
	} {
		got := FormatNumber(tc.year, tc.seq)
		if got != tc.want {
			t.Errorf("FormatNumber(%d, %d) = %q, want %q", tc.year, tc.seq, got, tc.want)
		}
		y, s, err := ParseNumber(got)
		if err != nil || y != tc.year || s != tc.seq {
			t.Errorf("ParseNumber(%q) = %d, %d, %v", got, y, s, err)
		}
	}
	for _, s := range []string{"", "2026", "2026-", "2026-1", "2026-00001", "2026-0000001", "2026-000000", "26-000001", "2026_000001", "2026-00000a", "+026-000001", "2026-+00001", "0000-000001"} {
		if _, _, err := ParseNumber(s); !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("ParseNumber(%q) err = %v", s, err)
		}
	}
}

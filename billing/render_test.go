package billing

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/billing/billingtest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestRenderHTMLGolden(t *testing.T) {
	t.Parallel()
	inv, err := BuildInvoice(sampleDraft(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.MarkPaid("sbx_6d2e3a3f5c0b9a71"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := RenderHTML(&buf, inv); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		"Invoice 2026-000001", "158.93 EUR", "132.80 EUR", "25.96 EUR", "0.17 EUR", "VAT 5.5%", "-34.95",
		"prorated: 15 of 30 days", "2026-11-16 – 2026-11-30", "Acme &lt;Widgets&gt; &amp; Co", "sbx_6d2e3a3f5c0b9a71",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	golden := filepath.Join("testdata", "invoice.golden.html")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("HTML differs from %s (run go test -update after checking the change):\n%s", golden, got)
	}
}

func TestRenderPDF(t *testing.T) {
	t.Parallel()
	dr := sampleDraft(t)
	// Enough lines to spill onto a second page.
	for range 40 {
		dr.Lines = append(dr.Lines, dr.Lines[1])
	}
	inv, err := BuildInvoice(dr)
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.MarkPaid("sbx_6d2e3a3f5c0b9a71"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := RenderPDF(&buf, inv); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatalf("not a PDF: %q", buf.Bytes()[:min(20, buf.Len())])
	}
	text := billingtest.PDFText(buf.Bytes())
	gross := inv.Currency.FormatMinor(inv.Totals.GrossMinor) + " EUR"
	for _, want := range []string{
		"Invoice 2026-000001", gross, "Total before tax", "VAT 5.5% on 3.00", "VAT 20% on", "paid", "sbx_6d2e3a3f5c0b9a71",
		"prorated: 15 of 30 days", "-34.95", "FR12345678901", "Acme <Widgets> & Co", "2026-11-16 – 2026-11-30",
		"Téléphonie Exemple SAS",
		"Issue date:", "2026-12-01", "2026-12-31",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	if n := strings.Count(text, "Description"); n != 2 {
		t.Errorf("table header drawn %d times, want 2 (one per page)", n)
	}

	// Same invoice, same bytes: the document dates come from the invoice.
	var again bytes.Buffer
	if err := RenderPDF(&again, inv); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("PDF rendering is not deterministic")
	}
}

// Any customer name renders: the PDF embeds Go's Unicode font; a rune it
// lacks becomes its compatibility form ("3ᵉ" → "3e"), never "3.".
func TestRenderPDFUnicode(t *testing.T) {
	t.Parallel()
	dr := sampleDraft(t)
	dr.Customer.Name = "Ωmega Связь Łódź"
	dr.Customer.Address = []string{"12 rue Pasteur, 3ᵉ étage"}
	inv, err := BuildInvoice(dr)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := renderPDF(&buf, inv, false); err != nil {
		t.Fatal(err)
	}
	text := billingtest.PDFText(buf.Bytes())
	for _, want := range []string{"Ωmega Связь Łódź", "12 rue Pasteur, 3e étage"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
	if !bytes.Contains(buf.Bytes(), []byte("/FontFile2")) || bytes.Contains(buf.Bytes(), []byte("/Helvetica")) {
		t.Error("the PDF does not embed its TrueType font")
	}
	if got := pdfString("中 ᵉ"); got != "? e" {
		t.Errorf("pdfString = %q", got)
	}
}

func TestCountryNamesAndNotes(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]string{"FR": "France", "de": "Germany", "US": "United States", "France": "France", "ZZ": "ZZ"} {
		if got := countryName(code); got != want {
			t.Errorf("countryName(%q) = %q, want %q", code, got, want)
		}
	}
	for note, want := range map[string]string{
		"15 of 30 days": "prorated: 15 of 30 days", "credit for 2026-000004": "credit for 2026-000004",
		"credit 202.71: 49.90 applied, 152.81 carried forward": "credit 202.71: 49.90 applied, 152.81 carried forward",
	} {
		if got := lineNote(note); got != want {
			t.Errorf("lineNote(%q) = %q, want %q", note, got, want)
		}
	}
}

package billing

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/text/unicode/norm"
)

//go:embed templates/invoice.html
var templateFS embed.FS

// invoiceHTML is parsed once; a broken embedded template fails every test.
var invoiceHTML = template.Must(template.New("invoice.html").Funcs(template.FuncMap{
	"title":   invoiceTitle,
	"money":   func(c Currency, minor int64) string { return c.FormatMinor(minor) },
	"day":     func(t time.Time) string { return t.Format(time.DateOnly) },
	"period":  periodText,
	"note":    lineNote,
	"payment": paymentLines,
}).ParseFS(templateFS, "templates/invoice.html"))

// RenderHTML writes inv as a standalone HTML page (the /v1/invoices/{id}.html
// view). Amounts are formatted from minor units by integer arithmetic.
func RenderHTML(w io.Writer, inv Invoice) error {
	if err := invoiceHTML.Execute(w, inv); err != nil {
		return fmt.Errorf("render invoice %s html: %w", inv.Number, err)
	}
	return nil
}

func invoiceTitle(inv Invoice) string {
	if inv.Kind == KindCreditNote {
		return "Credit note"
	}
	return "Invoice"
}

// lineNote labels a line's note: "prorated: 15 of 30 days" for a
// partial period, the note as it is otherwise ("credit for 2026-000004").
func lineNote(note string) string {
	var a, b int
	if n, err := fmt.Sscanf(note, "%d of %d days", &a, &b); err == nil && n == 2 && strings.HasSuffix(note, " days") {
		return "prorated: " + note
	}
	return note
}

// paymentLines is the invoice's payment block: how it was paid, or how to
// pay it (the bank details and the reference of a transfer).
func paymentLines(inv Invoice) []string {
	cur := inv.Currency
	if p := inv.Payment; p != nil {
		out := []string{"Paid " + cur.FormatMinor(p.AmountMinor) + " " + string(cur) + " on " + p.At.Format(time.DateOnly) + " by " + p.Method}
		if p.Reference != "" && p.Reference != "credit" {
			out = append(out, "Reference: "+p.Reference)
		}
		return out
	}
	if inv.Status != StatusOpen || inv.Kind != KindInvoice || inv.Totals.GrossMinor <= 0 {
		if inv.PaymentRef != "" {
			return []string{"Reference: " + inv.PaymentRef}
		}
		return nil
	}
	out := []string{"Amount due: " + cur.FormatMinor(inv.Totals.GrossMinor) + " " + string(cur) + " by " + inv.DueAt.Format(time.DateOnly)}
	is := inv.Issuer
	if is.IBAN != "" {
		out = append(out, "By bank transfer to "+is.Name+", IBAN "+is.IBAN)
		if is.BIC != "" || is.Bank != "" {
			out = append(out, strings.TrimPrefix(strings.TrimSuffix(is.Bank+", BIC "+is.BIC, ", BIC "), ", "))
		}
	}
	return append(out, "Transfer reference: "+inv.Number)
}

// periodText shows a [start, end) period with its inclusive last day, which
// is how customers read periods: "2026-11-16 – 2026-11-30".
func periodText(start, end Date) string {
	if start.IsZero() {
		return ""
	}
	return start.String() + " – " + end.AddDays(-1).String()
}

// The PDF font is Go's own (golang.org/x/image/font/gofont), embedded in
// the binary and in each document as a Unicode TrueType font, so that any
// customer name in Latin, Greek or Cyrillic script renders as written.
const pdfFont = "Go"

// goRegular answers which runes the font has glyphs for.
var goRegular = func() *sfnt.Font {
	f, err := sfnt.Parse(goregular.TTF)
	if err != nil {
		panic(err) // the font is compiled in
	}
	return f
}()

// pdfString keeps the runes the font has and replaces each other one by
// its compatibility form when the font has that ("3ᵉ étage" → "3e étage"),
// else by "?": never a silent blank or a wrong glyph.
func pdfString(s string) string {
	var buf sfnt.Buffer
	has := func(r rune) bool {
		i, err := goRegular.GlyphIndex(&buf, r)
		return err == nil && i != 0
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || has(r):
			b.WriteRune(r)
		default:
			alt := norm.NFKC.String(string(r))
			ok := alt != string(r)
			for _, a := range alt {
				ok = ok && (a == ' ' || has(a))
			}
			if ok {
				b.WriteString(alt)
			} else {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}

// PDF layout, in millimetres on A4 portrait.
const (
	pdfMargin = 15.0
	pdfWidth  = 210.0 - 2*pdfMargin
	pdfLineH  = 5.0
)

// pdfColumns are the line table's columns: description, period, qty, unit,
// VAT, amount; they add up to pdfWidth.
var pdfColumns = []struct {
	title string
	width float64
	align string
}{
	{"Description", 62, "L"}, {"Period", 44, "L"}, {"Qty", 12, "R"},
	{"Unit price", 22, "R"}, {"VAT", 16, "R"}, {"Amount", 24, "R"},
}

// RenderPDF writes inv as a PDF document (the /v1/invoices/{id}.pdf view)
// with the same content as RenderHTML. The document's dates are the issue
// date, so rendering the same invoice twice gives the same bytes.
func RenderPDF(w io.Writer, inv Invoice) error {
	return renderPDF(w, inv, true)
}

func renderPDF(w io.Writer, inv Invoice, compress bool) error {
	pdf := newInvoicePDF(inv, compress)
	pdf.AddPage()
	pdfHeading(pdf, inv)
	pdfParties(pdf, inv)
	pdfInfo(pdf, inv)
	pdfLines(pdf, inv)
	pdfTotals(pdf, inv)
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("render invoice %s pdf: %w", inv.Number, err)
	}
	return nil
}

// newInvoicePDF starts the document: A4 with the embedded fonts, and
// metadata dated by the invoice so that the bytes are reproducible.
func newInvoicePDF(inv Invoice, compress bool) *fpdf.Fpdf {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCompression(compress)
	pdf.SetCatalogSort(true)
	// The PDF date format carries no zone here: UTC, as readers assume.
	pdf.SetCreationDate(inv.IssuedAt.UTC())
	pdf.SetModificationDate(inv.IssuedAt.UTC())
	pdf.AddUTF8FontFromBytes(pdfFont, "", goregular.TTF)
	pdf.AddUTF8FontFromBytes(pdfFont, "B", gobold.TTF)
	pdf.SetProducer("pbxd", true)
	pdf.SetTitle(invoiceTitle(inv)+" "+inv.Number, true)
	pdf.SetMargins(pdfMargin, pdfMargin, pdfMargin)
	pdf.SetAutoPageBreak(false, pdfMargin)
	return pdf
}

// pdfHeading writes the title line: "Invoice 2026-000001", "(draft)" for
// an invoice without a number yet.
func pdfHeading(pdf *fpdf.Fpdf, inv Invoice) {
	number := inv.Number
	if number == "" {
		number = "(draft)"
	}
	pdf.SetFont(pdfFont, "B", 18)
	pdf.CellFormat(pdfWidth, 10, pdfString(invoiceTitle(inv)+" "+number), "", 1, "L", false, 0, "")
	pdf.Ln(3)
}

// pdfParties writes the parties side by side: issuer left, customer right.
func pdfParties(pdf *fpdf.Fpdf, inv Invoice) {
	top := pdf.GetY()
	y1 := pdfParty(pdf, pdfMargin, top, inv.Issuer.Name, inv.Issuer.Address, inv.Issuer.VATID)
	y2 := pdfParty(pdf, pdfMargin+pdfWidth/2, top, inv.Customer.Name, inv.Customer.Address, inv.Customer.VATID)
	pdf.SetXY(pdfMargin, max(y1, y2)+6)
}

// pdfParty writes one party's block at (x, top) and returns where it ends.
func pdfParty(pdf *fpdf.Fpdf, x, top float64, name string, address []string, vatID string) float64 {
	pdf.SetXY(x, top)
	pdf.SetFont(pdfFont, "B", 10)
	pdf.CellFormat(pdfWidth/2, pdfLineH, pdfString(name), "", 2, "L", false, 0, "")
	pdf.SetFont(pdfFont, "", 10)
	for _, a := range address {
		pdf.CellFormat(pdfWidth/2, pdfLineH, pdfString(a), "", 2, "L", false, 0, "")
	}
	if vatID != "" {
		pdf.CellFormat(pdfWidth/2, pdfLineH, pdfString("VAT ID: "+vatID), "", 2, "L", false, 0, "")
	}
	return pdf.GetY()
}

// pdfInfo writes the labelled facts: dates, the corrected invoice, the
// status and the payment block.
func pdfInfo(pdf *fpdf.Fpdf, inv Invoice) {
	info := [][2]string{
		{"Issue date", inv.IssuedAt.Format(time.DateOnly)},
		{"Due date", inv.DueAt.Format(time.DateOnly)},
	}
	if inv.Corrects != "" {
		info = append(info, [2]string{"Corrects invoice", inv.Corrects})
	}
	info = append(info, [2]string{"Status", string(inv.Status)})
	for i, l := range paymentLines(inv) {
		label := ""
		if i == 0 {
			label = "Payment"
		}
		info = append(info, [2]string{label, l})
	}
	for _, kv := range info {
		pdf.SetFont(pdfFont, "B", 10)
		label := kv[0]
		if label != "" {
			label += ":"
		}
		pdf.CellFormat(35, pdfLineH, pdfString(label), "", 0, "L", false, 0, "")
		pdf.SetFont(pdfFont, "", 10)
		pdf.CellFormat(pdfWidth-35, pdfLineH, pdfString(kv[1]), "", 1, "L", false, 0, "")
	}
	pdf.Ln(6)
}

// pdfLines writes the line table, starting a page (and repeating the
// table header) when a row would leave no room for the totals.
func pdfLines(pdf *fpdf.Fpdf, inv Invoice) {
	_, pageH := pdf.GetPageSize()
	pdfTableHeader(pdf, inv.Currency)
	for _, l := range inv.Lines {
		desc := l.Description
		if l.PackageCode != "" {
			desc += " (" + l.PackageCode + ")"
		}
		descLines := pdf.SplitText(pdfString(desc), pdfColumns[0].width-2)
		if l.ProrationNote != "" {
			descLines = append(descLines, pdf.SplitText(pdfString(lineNote(l.ProrationNote)), pdfColumns[0].width-2)...)
		}
		rowH := float64(len(descLines)) * pdfLineH
		if pdf.GetY()+rowH > pageH-pdfMargin-40 {
			pdf.AddPage()
			pdfTableHeader(pdf, inv.Currency)
		}
		pdfRow(pdf, inv.Currency, l, descLines, rowH)
	}
	pdf.Ln(4)
}

// pdfTableHeader writes the line table's column titles.
func pdfTableHeader(pdf *fpdf.Fpdf, cur Currency) {
	pdf.SetFont(pdfFont, "B", 9)
	pdf.SetFillColor(230, 230, 230)
	for i, c := range pdfColumns {
		title := c.title
		if i == len(pdfColumns)-1 {
			title += " (" + string(cur) + ")"
		}
		pdf.CellFormat(c.width, 7, pdfString(title), "B", 0, c.align, true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont(pdfFont, "", 9)
}

// pdfRow writes one line of the table, rowH high: its description lines
// and its other columns, then a rule under it.
func pdfRow(pdf *fpdf.Fpdf, cur Currency, l Line, descLines []string, rowH float64) {
	x, y := pdf.GetX(), pdf.GetY()
	for i, s := range descLines {
		pdf.SetXY(x, y+float64(i)*pdfLineH)
		pdf.CellFormat(pdfColumns[0].width, pdfLineH, s, "", 0, "L", false, 0, "")
	}
	pdf.SetXY(x+pdfColumns[0].width, y)
	cells := []string{periodText(l.PeriodStart, l.PeriodEnd), fmt.Sprint(l.Quantity), cur.FormatMinor(l.UnitMinor), l.VATBasisPoints.String(), cur.FormatMinor(l.AmountMinor)}
	for i, s := range cells {
		c := pdfColumns[i+1]
		pdf.CellFormat(c.width, pdfLineH, pdfString(s), "", 0, c.align, false, 0, "")
	}
	pdf.SetXY(x, y+rowH)
	pdf.Line(pdfMargin, pdf.GetY(), pdfMargin+pdfWidth, pdf.GetY())
}

// pdfTotals writes the totals, on a new page if they do not fit: net,
// the tax of each VAT rate, gross.
func pdfTotals(pdf *fpdf.Fpdf, inv Invoice) {
	_, pageH := pdf.GetPageSize()
	if pdf.GetY()+float64(len(inv.Totals.ByRate)+2)*6 > pageH-pdfMargin {
		pdf.AddPage()
	}
	cur := inv.Currency
	total := func(label string, minor int64, bold bool) {
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont(pdfFont, style, 10)
		pdf.SetX(pdfMargin + pdfWidth - 110)
		pdf.CellFormat(75, 6, pdfString(label), "", 0, "R", false, 0, "")
		pdf.CellFormat(35, 6, pdfString(cur.FormatMinor(minor)+" "+string(cur)), "", 1, "R", false, 0, "")
	}
	total("Total before tax", inv.Totals.NetMinor, false)
	for _, r := range inv.Totals.ByRate {
		total("VAT "+r.Rate.String()+" on "+cur.FormatMinor(r.NetMinor), r.TaxMinor, false)
	}
	total("Total after tax", inv.Totals.GrossMinor, true)
}

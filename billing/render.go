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
	tr := pdfString
	cur := inv.Currency
	money := func(minor int64) string { return cur.FormatMinor(minor) }
	pdf.AddPage()

	number := inv.Number
	if number == "" {
		number = "(draft)"
	}
	pdf.SetFont(pdfFont, "B", 18)
	pdf.CellFormat(pdfWidth, 10, tr(invoiceTitle(inv)+" "+number), "", 1, "L", false, 0, "")
	pdf.Ln(3)

	// Parties side by side: issuer left, customer right.
	top := pdf.GetY()
	party := func(x float64, name string, address []string, vatID string) float64 {
		pdf.SetXY(x, top)
		pdf.SetFont(pdfFont, "B", 10)
		pdf.CellFormat(pdfWidth/2, pdfLineH, tr(name), "", 2, "L", false, 0, "")
		pdf.SetFont(pdfFont, "", 10)
		for _, a := range address {
			pdf.CellFormat(pdfWidth/2, pdfLineH, tr(a), "", 2, "L", false, 0, "")
		}
		if vatID != "" {
			pdf.CellFormat(pdfWidth/2, pdfLineH, tr("VAT ID: "+vatID), "", 2, "L", false, 0, "")
		}
		return pdf.GetY()
	}
	y1 := party(pdfMargin, inv.Issuer.Name, inv.Issuer.Address, inv.Issuer.VATID)
	y2 := party(pdfMargin+pdfWidth/2, inv.Customer.Name, inv.Customer.Address, inv.Customer.VATID)
	pdf.SetXY(pdfMargin, max(y1, y2)+6)

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
		pdf.CellFormat(35, pdfLineH, tr(label), "", 0, "L", false, 0, "")
		pdf.SetFont(pdfFont, "", 10)
		pdf.CellFormat(pdfWidth-35, pdfLineH, tr(kv[1]), "", 1, "L", false, 0, "")
	}
	pdf.Ln(6)

	_, pageH := pdf.GetPageSize()
	header := func() {
		pdf.SetFont(pdfFont, "B", 9)
		pdf.SetFillColor(230, 230, 230)
		for i, c := range pdfColumns {
			title := c.title
			if i == len(pdfColumns)-1 {
				title += " (" + string(cur) + ")"
			}
			pdf.CellFormat(c.width, 7, tr(title), "B", 0, c.align, true, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetFont(pdfFont, "", 9)
	}
	header()
	for _, l := range inv.Lines {
		desc := l.Description
		if l.PackageCode != "" {
			desc += " (" + l.PackageCode + ")"
		}
		descLines := pdf.SplitText(tr(desc), pdfColumns[0].width-2)
		if l.ProrationNote != "" {
			descLines = append(descLines, pdf.SplitText(tr(lineNote(l.ProrationNote)), pdfColumns[0].width-2)...)
		}
		rowH := float64(len(descLines)) * pdfLineH
		if pdf.GetY()+rowH > pageH-pdfMargin-40 {
			pdf.AddPage()
			header()
		}
		x, y := pdf.GetX(), pdf.GetY()
		for i, s := range descLines {
			pdf.SetXY(x, y+float64(i)*pdfLineH)
			pdf.CellFormat(pdfColumns[0].width, pdfLineH, s, "", 0, "L", false, 0, "")
		}
		pdf.SetXY(x+pdfColumns[0].width, y)
		cells := []string{periodText(l.PeriodStart, l.PeriodEnd), fmt.Sprint(l.Quantity), money(l.UnitMinor), l.VATBasisPoints.String(), money(l.AmountMinor)}
		for i, s := range cells {
			c := pdfColumns[i+1]
			pdf.CellFormat(c.width, pdfLineH, tr(s), "", 0, c.align, false, 0, "")
		}
		pdf.SetXY(x, y+rowH)
		pdf.Line(pdfMargin, pdf.GetY(), pdfMargin+pdfWidth, pdf.GetY())
	}
	pdf.Ln(4)

	if pdf.GetY()+float64(len(inv.Totals.ByRate)+2)*6 > pageH-pdfMargin {
		pdf.AddPage()
	}
	total := func(label, amount string, bold bool) {
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont(pdfFont, style, 10)
		pdf.SetX(pdfMargin + pdfWidth - 110)
		pdf.CellFormat(75, 6, tr(label), "", 0, "R", false, 0, "")
		pdf.CellFormat(35, 6, tr(amount+" "+string(cur)), "", 1, "R", false, 0, "")
	}
	total("Total before tax", money(inv.Totals.NetMinor), false)
	for _, r := range inv.Totals.ByRate {
		total("VAT "+r.Rate.String()+" on "+money(r.NetMinor), money(r.TaxMinor), false)
	}
	total("Total after tax", money(inv.Totals.GrossMinor), true)

	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("render invoice %s pdf: %w", inv.Number, err)
	}
	return nil
}

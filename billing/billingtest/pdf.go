// Package billingtest holds helpers for tests of billing's output, shared
// by billing's own tests and the daemon's end-to-end tests.
package billingtest

import (
	"bytes"
	"compress/zlib"
	"io"
	"regexp"
	"strings"
	"unicode/utf16"
)

var (
	// fpdf ends a stream's data with "\nendstream": a final \r is data (a
	// compressed stream can end with that byte), not part of the marker.
	pdfStream = regexp.MustCompile(`(?s)stream\r?\n(.*?)\nendstream`)
	pdfTj     = regexp.MustCompile(`\(((?:\\.|[^\\)])*)\)\s*Tj`)
)

// PDFText extracts the strings shown by Tj operators from every content
// stream of a PDF, inflating FlateDecode streams, one string a line:
// enough to read back what fpdf wrote without a PDF library.
func PDFText(doc []byte) string {
	var out strings.Builder
	for _, m := range pdfStream.FindAllSubmatch(doc, -1) {
		content := m[1]
		if zr, err := zlib.NewReader(bytes.NewReader(content)); err == nil {
			if inflated, err := io.ReadAll(zr); err == nil {
				content = inflated
			}
		}
		for _, s := range pdfTj.FindAllSubmatch(content, -1) {
			out.WriteString(utf16BE(unescape(string(s[1]))))
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// utf16BE decodes the UTF-16BE strings a Unicode font's text is written in.
func utf16BE(s string) string {
	u := make([]uint16, 0, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		u = append(u, uint16(s[i])<<8|uint16(s[i+1]))
	}
	return string(utf16.Decode(u))
}

// unescape undoes a PDF literal string's escapes.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			if c >= '0' && c <= '7' {
				v := 0
				for j := 0; j < 3 && i < len(s) && s[i] >= '0' && s[i] <= '7'; j++ {
					v = v*8 + int(s[i]-'0')
					i++
				}
				i--
				b.WriteByte(byte(v))
				continue
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

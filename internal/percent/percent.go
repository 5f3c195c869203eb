// Package percent reads and writes percentages as integer basis points
// (1 % = 100 bp), so that 5.5 % VAT or a 12.5 % discount needs no float.
package percent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalid is returned for anything that is not a percentage in [0, 100]
// with at most two decimals.
var ErrInvalid = errors.New("must be a percentage between 0 and 100 with at most two decimals")

// Parse reads "20", "5.5" or "12.25" as basis points (2000, 550, 1225).
// It is strict: no sign, no spaces, no exponent.
func Parse(s string) (int64, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || len(frac) > 2 || (hasFrac && frac == "") {
		return 0, ErrInvalid
	}
	w, err := strconv.ParseUint(whole, 10, 8)
	if err != nil {
		return 0, ErrInvalid
	}
	var f uint64
	if frac != "" {
		for len(frac) < 2 {
			frac += "0"
		}
		if f, err = strconv.ParseUint(frac, 10, 8); err != nil {
			return 0, ErrInvalid
		}
	}
	bp := int64(w)*100 + int64(f)
	if bp > 10000 {
		return 0, ErrInvalid
	}
	return bp, nil
}

// Format writes basis points as the shortest percentage: 2000 → "20",
// 550 → "5.5".
func Format(bp int64) string {
	s := fmt.Sprintf("%d.%02d", bp/100, bp%100)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

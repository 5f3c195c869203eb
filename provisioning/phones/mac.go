package phones

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MAC is a device's Ethernet address, the key phones identify themselves by
// in every file name they request. It is a value type so that only parsed,
// valid addresses circulate; String gives the canonical 12 lowercase hex
// digits used in file names and in the daemon's store.
type MAC [6]byte

// ErrInvalidMAC is returned (wrapped) by ParseMAC for anything that is not a
// usable MAC address.
var ErrInvalidMAC = errors.New("invalid MAC address")

// ParseMAC accepts the notations operators paste from labels, switches and
// phone menus: aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff (Cisco)
// and bare aabbccddeeff, in any letter case, with surrounding blanks ignored.
// The all-zero address is refused: no phone has it, and Polycom firmware uses
// 000000000000 as the name of its generic fallback file.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	s = strings.TrimSpace(s)
	var digits string
	switch len(s) {
	case 12:
		digits = s
	case 14: // aabb.ccdd.eeff
		if s[4] != '.' || s[9] != '.' {
			return m, fmt.Errorf("%w: %q", ErrInvalidMAC, s)
		}
		digits = s[0:4] + s[5:9] + s[10:14]
	case 17: // aa:bb:cc:dd:ee:ff or aa-bb-...
		sep := s[2]
		if sep != ':' && sep != '-' {
			return m, fmt.Errorf("%w: %q", ErrInvalidMAC, s)
		}
		var b strings.Builder
		for i := 0; i < 6; i++ {
			if i > 0 && s[3*i-1] != sep {
				return m, fmt.Errorf("%w: %q", ErrInvalidMAC, s)
			}
			b.WriteString(s[3*i : 3*i+2])
		}
		digits = b.String()
	default:
		return m, fmt.Errorf("%w: %q", ErrInvalidMAC, s)
	}
	if _, err := hex.Decode(m[:], []byte(digits)); err != nil {
		return MAC{}, fmt.Errorf("%w: %q", ErrInvalidMAC, s)
	}
	if m.IsZero() {
		return MAC{}, fmt.Errorf("%w: all-zero address", ErrInvalidMAC)
	}
	return m, nil
}

// String returns the canonical form: 12 lowercase hex digits, as phones put
// it in file names.
func (m MAC) String() string { return hex.EncodeToString(m[:]) }

// Upper returns the 12 hex digits in upper case, as some firmwares (Snom)
// print the address.
func (m MAC) Upper() string { return strings.ToUpper(m.String()) }

// IsZero reports whether m is unset.
func (m MAC) IsZero() bool { return m == MAC{} }

// MarshalText writes the canonical form so a MAC reads naturally in JSON and
// YAML.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText accepts every notation ParseMAC does.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

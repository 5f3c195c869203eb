package phones

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the type of file a phone asked for. Each kind belongs to one vendor
// except KindMACCfg, shared by Yealink and Polycom.
type Kind int

// The files served. Anything else a phone asks for (firmware, Polycom's
// 000000000000.cfg, logs, directories) is not ours and gets a 404.
const (
	KindYealinkCommon Kind = iota + 1 // y000000000xxx.cfg: Yealink per-model common file
	KindMACCfg                        // {mac}.cfg: Yealink device file or Polycom master config
	KindPolycomPhone                  // {mac}-phone.xml: Polycom settings, named by the master config
	KindGrandstream                   // cfg{mac}.xml
	KindSnom                          // {mac}.xml: Snom XML settings
	KindCisco                         // spa{mac}.xml: Cisco SPA/MPP flat profile
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case KindYealinkCommon:
		return "yealink-common"
	case KindMACCfg:
		return "mac-cfg"
	case KindPolycomPhone:
		return "polycom-phone"
	case KindGrandstream:
		return "grandstream"
	case KindSnom:
		return "snom"
	case KindCisco:
		return "cisco"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Serves reports whether a device of vendor v may fetch a file of kind k.
// It is the check that stops, say, a Grandstream request from returning a
// Yealink device's credentials in another vendor's format.
func (k Kind) Serves(v Vendor) bool {
	switch k {
	case KindYealinkCommon:
		return v == Yealink
	case KindMACCfg:
		return v == Yealink || v == Polycom
	case KindPolycomPhone:
		return v == Polycom
	case KindGrandstream:
		return v == Grandstream
	case KindSnom:
		return v == Snom
	case KindCisco:
		return v == Cisco
	}
	return false
}

// File is a parsed provisioning file name.
type File struct {
	Kind Kind
	// MAC is the device the file is for; zero for KindYealinkCommon, whose
	// device is known only from the credentials.
	MAC MAC
	// Model is the Yealink model id of a common file, in decimal without
	// the padding zeros but at least two digits: "44", "108".
	Model string
}

// ErrUnknownFile is returned by ParseFile for a name that is not a
// provisioning file this package serves.
var ErrUnknownFile = errors.New("not a provisioning file")

// ParseFile recognises the file names phones request under /provision/. Only
// bare 12-digit MACs are accepted (phones never add separators); letter case
// of the MAC is free because Snom prints it in upper case.
func ParseFile(name string) (File, error) {
	bad := func() (File, error) { return File{}, fmt.Errorf("%w: %q", ErrUnknownFile, truncate(name, 64)) }
	mac := func(s string) (MAC, bool) {
		if len(s) != 12 {
			return MAC{}, false
		}
		m, err := ParseMAC(s)
		return m, err == nil
	}
	switch {
	case strings.HasPrefix(name, "y") && strings.HasSuffix(name, ".cfg") && len(name) == len("y000000000000.cfg"):
		// y + the model id zero-padded to 12 decimal digits: y000000000044.cfg,
		// y000000000108.cfg (T4xU), y000000000124.cfg (T3x).
		digits := name[1:13]
		if !isDigits(digits) {
			return bad()
		}
		model := strings.TrimLeft(digits, "0")
		if len(model) < 2 {
			model = digits[10:] // ids are written with two digits at least
		}
		return File{Kind: KindYealinkCommon, Model: model}, nil
	case strings.HasSuffix(name, "-phone.xml"):
		if m, ok := mac(strings.TrimSuffix(name, "-phone.xml")); ok {
			return File{Kind: KindPolycomPhone, MAC: m}, nil
		}
	case strings.HasPrefix(name, "cfg") && strings.HasSuffix(name, ".xml"):
		if m, ok := mac(name[3 : len(name)-4]); ok {
			return File{Kind: KindGrandstream, MAC: m}, nil
		}
	case strings.HasPrefix(name, "spa") && strings.HasSuffix(name, ".xml"):
		if m, ok := mac(name[3 : len(name)-4]); ok {
			return File{Kind: KindCisco, MAC: m}, nil
		}
	case strings.HasSuffix(name, ".xml"):
		if m, ok := mac(strings.TrimSuffix(name, ".xml")); ok {
			return File{Kind: KindSnom, MAC: m}, nil
		}
	case strings.HasSuffix(name, ".cfg"):
		if m, ok := mac(strings.TrimSuffix(name, ".cfg")); ok {
			return File{Kind: KindMACCfg, MAC: m}, nil
		}
	}
	return bad()
}

// Name is the canonical file name (lowercase MAC), the inverse of
// ParseFile; the Polycom master config uses it to name the phone file.
func (f File) Name() string {
	switch f.Kind {
	case KindYealinkCommon:
		return "y" + strings.Repeat("0", max(0, 12-len(f.Model))) + f.Model + ".cfg"
	case KindMACCfg:
		return f.MAC.String() + ".cfg"
	case KindPolycomPhone:
		return f.MAC.String() + "-phone.xml"
	case KindGrandstream:
		return "cfg" + f.MAC.String() + ".xml"
	case KindSnom:
		return f.MAC.String() + ".xml"
	case KindCisco:
		return "spa" + f.MAC.String() + ".xml"
	}
	return ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// truncate bounds attacker-chosen strings before they reach errors and logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

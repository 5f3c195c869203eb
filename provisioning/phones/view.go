package phones

import (
	"fmt"
	"strings"
	"time"
)

// view is the data every template receives. Values are raw: templates
// escape them with xml or cfg. Vendor-specific spellings (transport codes,
// booleans) stay in the templates, so an override can change them.
type view struct {
	MAC          string // 12 lowercase hex digits
	MACUpper     string
	Vendor       Vendor
	Model        string // device model, or the Yealink common file's model code
	DisplayName  string
	Language     string // ISO 639-1 code, defaulted to en
	LanguageName string // in English: French
	NativeName   string // in the language itself: Français
	TZ           zone
	NTPServer    string
	Registrar    string
	Port         int
	Transport    Transport
	Expiry       int // REGISTER expiry, seconds
	// PhoneFile is the Polycom settings file the master config points to.
	PhoneFile string
	// Accounts holds MaxLines slots, in slot order; unused ones have
	// Enabled false and empty credentials so the phone drops stale lines.
	Accounts []account
}

type account struct {
	Index       int
	Enabled     bool
	Extension   string
	Label       string
	DisplayName string
	Username    string
	Password    string
	Domain      string
	Registrar   string
	Port        int
	Transport   Transport
	// Proxy is where the phone sends requests when it is not the domain
	// itself; empty when no proxy is needed.
	Proxy         string
	ProxyPort     int
	Expiry        int // seconds
	ExpiryMinutes int // Grandstream counts in minutes
}

var languages = map[string][2]string{
	"en": {"English", "English"},
	"fr": {"French", "Français"},
	"de": {"German", "Deutsch"},
	"es": {"Spanish", "Español"},
	"it": {"Italian", "Italiano"},
	"nl": {"Dutch", "Nederlands"},
	"pt": {"Portuguese", "Português"},
	"pl": {"Polish", "Polski"},
}

func newView(f File, dev Device, s Settings, now time.Time, zones *zoneCache) (*view, error) {
	if dev.Registrar != "" {
		s.Registrar = dev.Registrar
	}
	tz, err := zones.loadZone(dev.TimeZone, now)
	if err != nil {
		return nil, err
	}
	lang := strings.ToLower(dev.Language)
	names, ok := languages[lang]
	if !ok {
		lang, names = "en", languages["en"]
	}
	model := dev.Model
	if f.Kind == KindYealinkCommon {
		model = f.Model
	}
	v := &view{
		MAC: dev.MAC.String(), MACUpper: dev.MAC.Upper(), Vendor: dev.Vendor, Model: model,
		DisplayName: dev.DisplayName, Language: lang, LanguageName: names[0], NativeName: names[1],
		TZ: tz, NTPServer: s.NTPServer, Registrar: s.Registrar, Port: s.Port,
		Transport: s.Transport, Expiry: s.RegisterExpiry,
		PhoneFile: File{Kind: KindPolycomPhone, MAC: dev.MAC}.Name(),
	}
	v.Accounts, err = accounts(dev, s)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// accounts lays the device's lines out on MaxLines slots.
func accounts(dev Device, s Settings) ([]account, error) {
	slots := make([]account, MaxLines)
	for i := range slots {
		slots[i] = account{Index: i + 1}
	}
	for i, l := range dev.Lines {
		key := l.Key
		if key == 0 {
			key = i + 1
		}
		if key < 1 || key > MaxLines {
			return nil, fmt.Errorf("line %s: key %d outside 1..%d", l.Extension, key, MaxLines)
		}
		a := &slots[key-1]
		if a.Enabled {
			return nil, fmt.Errorf("line %s: key %d already used by line %s", l.Extension, key, a.Extension)
		}
		if l.Extension == "" || l.Domain == "" {
			return nil, fmt.Errorf("line in key %d: extension and domain are required", key)
		}
		a.Enabled = true
		a.Extension = l.Extension
		a.Label = firstNonEmpty(l.Label, l.Extension)
		a.DisplayName = firstNonEmpty(dev.DisplayName, a.Label)
		a.Username = firstNonEmpty(l.Username, l.Extension)
		a.Password = l.Password
		a.Domain = l.Domain
		a.Registrar, a.Port, a.Transport = s.Registrar, s.Port, s.Transport
		a.Expiry, a.ExpiryMinutes = s.RegisterExpiry, max(1, s.RegisterExpiry/60)
		switch {
		case s.OutboundProxy != "":
			// Validated by Settings.withDefaults.
			a.Proxy, a.ProxyPort, _ = splitHostPort(s.OutboundProxy, s.Port)
		case !strings.EqualFold(s.Registrar, l.Domain):
			a.Proxy, a.ProxyPort = s.Registrar, s.Port
		}
	}
	return slots, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

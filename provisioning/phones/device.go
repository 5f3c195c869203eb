package phones

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Vendor names a phone family. It decides which files a device may fetch:
// Yealink and Polycom both ask for {mac}.cfg, so the registered vendor, not
// the file name, picks the format.
type Vendor string

// The vendors this package can provision.
const (
	Yealink     Vendor = "yealink"
	Polycom     Vendor = "polycom"
	Grandstream Vendor = "grandstream"
	Snom        Vendor = "snom"
	Cisco       Vendor = "cisco" // SPA and MPP (3PCC) firmware
)

// Vendors lists every supported vendor, for validation and documentation.
var Vendors = []Vendor{Yealink, Polycom, Grandstream, Snom, Cisco}

// Valid reports whether v is a vendor this package has templates for.
func (v Vendor) Valid() bool {
	for _, x := range Vendors {
		if v == x {
			return true
		}
	}
	return false
}

// Device is one phone as the daemon's store knows it at the moment of the
// request. The handler looks it up on every request and never caches it, so
// deactivating a device, moving it to another account or unbinding a line
// takes effect on the phone's next fetch.
type Device struct {
	// ID is the Directory's own key for the device, handed back to
	// DeviceLines; opaque here.
	ID          string
	MAC         MAC
	Vendor      Vendor
	Model       string // free text, e.g. "T54W"; informative only
	DisplayName string // caller name shown to callees; falls back to the line label
	TimeZone    string // IANA name (Europe/Paris); empty means UTC
	Language    string // ISO 639-1 code (en, fr, de…); empty means English
	Active      bool   // false: the device is refused (404) even with valid credentials
	AccountID   string // the owning account; informative, for logs
	Lines       []Line // the lines bound to the device, at most MaxLines
	// SecretHash is HashSecret of the device's provisioning secret; the
	// default verifier checks the HTTP Basic password against it. Empty means
	// the device cannot authenticate with the default verifier.
	SecretHash string
	// Registrar, when set, replaces Settings.Registrar for this device:
	// the SIP server of the PBX node its account lives on.
	Registrar string
}

// Line is one SIP account bound to a device.
type Line struct {
	// Key is the phone's account slot (1-based); 0 takes the line's position
	// in Lines. Slots not used by any line are explicitly disabled in the
	// generated file, so a phone forgets a line unbound since its last fetch.
	Key       int
	Extension string // internal number, e.g. "101"
	Label     string // text on the line key; empty uses Extension
	Domain    string // the account's SIP domain; the registrar routes tenants by it
	Username  string // SIP user and auth name; empty uses Extension
	Password  string
}

// MaxLines is the number of account slots written for every device. All of
// them are written (unused ones disabled) because Yealink and Grandstream keep
// any setting a file does not mention: a stale line would stay registered.
const MaxLines = 6

// Transport is the SIP transport phones use to reach the registrar.
type Transport string

// Supported transports.
const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
	TLS Transport = "tls"
)

// Settings are the server-side values common to every device: where phones
// register and how. They come from the daemon's config and may change on
// reload (see Renderer.Update).
type Settings struct {
	// Registrar is the host (name or IP) of the registrar phones send to.
	Registrar string
	// Port of the registrar; 0 means 5060, or 5061 for TLS.
	Port int
	// Transport is udp, tcp or tls; empty means udp.
	Transport Transport
	// OutboundProxy ("host" or "host:port") is where phones send requests.
	// Empty means the Registrar itself whenever it differs from the line's
	// SIP domain: the domain must stay in request URIs because the registrar
	// tells tenants apart by it, so the registrar is reached as a proxy.
	OutboundProxy string
	// RegisterExpiry is the REGISTER expiry asked for, in seconds; 0 means
	// 3600.
	RegisterExpiry int
	// NTPServer phones set their clock from; empty leaves the phone's own.
	NTPServer string
	// OverrideDir, if set, holds operator templates with the same relative
	// names as the embedded ones (yealink/mac.cfg …); each file present
	// replaces its embedded counterpart.
	OverrideDir string
}

// withDefaults fills the zero values documented on Settings and checks the
// rest, so a bad config is refused at start-up or reload, not at a phone's
// first fetch.
func (s Settings) withDefaults() (Settings, error) {
	var errs []error
	if s.Transport == "" {
		s.Transport = UDP
	}
	switch s.Transport {
	case UDP, TCP, TLS:
	default:
		errs = append(errs, fmt.Errorf("transport %q: want udp, tcp or tls", s.Transport))
	}
	if s.Port == 0 {
		s.Port = 5060
		if s.Transport == TLS {
			s.Port = 5061
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", s.Port))
	}
	if s.RegisterExpiry == 0 {
		s.RegisterExpiry = 3600
	}
	if s.RegisterExpiry < 60 || s.RegisterExpiry > 86400 {
		errs = append(errs, fmt.Errorf("register expiry %ds: want 60..86400", s.RegisterExpiry))
	}
	if !validHost(s.Registrar) {
		errs = append(errs, fmt.Errorf("registrar %q: want a host name or IP address", s.Registrar))
	}
	if s.OutboundProxy != "" {
		if _, _, err := splitHostPort(s.OutboundProxy, s.Port); err != nil {
			errs = append(errs, fmt.Errorf("outbound proxy: %w", err))
		}
	}
	if s.NTPServer != "" && !validHost(s.NTPServer) {
		errs = append(errs, fmt.Errorf("NTP server %q: want a host name or IP address", s.NTPServer))
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("phones settings: %w", err)
	}
	return s, nil
}

// validHost accepts an IP address or a DNS name; it keeps anything that could
// break a config file's syntax (blanks, quotes, angle brackets) out of it.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

// splitHostPort reads "host" or "host:port", defaulting the port.
func splitHostPort(s string, defPort int) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		host, portStr = s, ""
	}
	port := defPort
	if portStr != "" {
		port, err = strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("%q: bad port", s)
		}
	}
	host = strings.Trim(host, "[]")
	if !validHost(host) {
		return "", 0, fmt.Errorf("%q: want host or host:port", s)
	}
	return host, port, nil
}

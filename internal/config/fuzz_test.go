package config

import (
	"testing"
)

// FuzzDecode feeds arbitrary YAML to the strict decoder and the validator:
// a config file is outside input, and no file may crash the daemon.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(defaultsYAML))
	f.Add([]byte("http:\n  listen: 127.0.0.1:1\n"))
	f.Add([]byte("catalog:\n  - {code: a, name: A, price_minor: 1, currency: EUR, dial_context: c, cycles: [{cycle: annual, discount_percent: 12.5}]}\n"))
	f.Add([]byte("sip: [1, 2]\n"))
	f.Add([]byte("billing:\n  dunning: [1h, x]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := Defaults()
		if err := decodeInto(cfg, b, "fuzz"); err != nil {
			return
		}
		_ = cfg.Validate()
	})
}

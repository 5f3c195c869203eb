package sip

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkRegister measures one full digest registration through the
// handler, in process: REGISTER, 401, authenticated REGISTER, 200,
// including SIP parsing of both requests (no sockets, no transactions).
func BenchmarkRegister(b *testing.B) {
	for _, alg := range []string{algMD5, algSHA256} {
		b.Run(alg, func(b *testing.B) {
			bb := setup(b, func(c *Config) { c.NonceTrackerSize, c.DigestAlgorithms = 1<<16, []string{algMD5, algSHA256} })
			const lines = 10_000
			phones := make([]*phone, lines)
			for i := range lines {
				user := fmt.Sprint(100000 + i)
				_ = bb.r.Apply(context.Background(), lineCfg(fmt.Sprint("L", i), user, "bench.example", "pw"+user))
				phones[i] = newPhone(user, "pw"+user, "bench.example")
				phones[i].alg = alg
				phones[i].contact = fmt.Sprintf("<sip:%s@127.0.0.1:5072;transport=UDP>", user)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				p := phones[i%lines]
				res := p.register(b, bb.r, "Contact: "+p.contact, "Expires: 3600")
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
				if i%1024 == 0 {
					for { // keep the event queue from growing unboundedly
						if _, ok := bb.r.events.pop(); !ok {
							break
						}
					}
					bb.r.wb.take(1 << 20)
				}
			}
		})
	}
}

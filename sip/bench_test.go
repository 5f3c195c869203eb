package sip

import (
	"bytes"
	"context"
	"fmt"
	"net"
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
					drainQueues(bb.r)
				}
			}
		})
	}
}

// BenchmarkRegisterUDP is BenchmarkRegister through the UDP path, as the
// datagrams of a phone (sipp's shape) arrive: REGISTER bytes in, 401
// bytes out, authenticated REGISTER bytes in, 200 bytes out. Nonces are
// minted per challenge, so the phone's side (formatting the requests,
// its digest) runs in the loop too, as in BenchmarkRegister.
func BenchmarkRegisterUDP(b *testing.B) {
	for _, alg := range []string{algMD5, algSHA256} {
		b.Run(alg, func(b *testing.B) {
			bb := setup(b, func(c *Config) { c.NonceTrackerSize, c.DigestAlgorithms = 1<<16, []string{alg} })
			const lines = 10_000
			type benchPhone struct{ user, first, second, ha1 string }
			phones := make([]benchPhone, lines)
			for i := range lines {
				user := fmt.Sprint(100000 + i)
				_ = bb.r.Apply(context.Background(), lineCfg(fmt.Sprint("L", i), user, "bench.example", "pw"+user))
				head := "REGISTER sip:bench.example SIP/2.0\r\n" +
					"Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK-" + user + "-%d\r\n" +
					"Max-Forwards: 70\r\n" +
					"From: <sip:" + user + "@bench.example>;tag=1-" + user + "\r\n" +
					"To: <sip:" + user + "@bench.example>\r\n" +
					"Call-ID: 1-" + user + "@127.0.0.1\r\n" +
					"CSeq: %d REGISTER\r\n" +
					"Contact: <sip:" + user + "@127.0.0.1:5072;transport=UDP>\r\n"
				tail := "Expires: 3600\r\n" +
					"User-Agent: sipp-register-bench\r\n" +
					"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, REFER, UPDATE\r\n" +
					"Supported: path, gruu, outbound\r\n" +
					"Content-Length: 0\r\n\r\n"
				phones[i] = benchPhone{user: user, first: head + tail, second: head + "%s\r\n" + tail, ha1: ha1(alg, user, "bench.example", "pw"+user)}
			}
			src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5072}
			conn := &lastWrite{}
			var s udpScratch
			var buf []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				p := &phones[i%lines]
				cseq := 2 * i
				buf = fmt.Appendf(buf[:0], p.first, cseq, cseq+1)
				bb.r.handleDatagram(conn, buf, src, &s)
				nonce := benchNonce(b, conn.b, alg)
				resp := digestResponse(alg, p.ha1, "REGISTER", "sip:bench.example", nonce, "00000001", "abc123", "auth")
				auth := `Authorization: Digest username="` + p.user + `", realm="bench.example", nonce="` + nonce +
					`", uri="sip:bench.example", response="` + resp + `", algorithm=` + alg + `, cnonce="abc123", qop=auth, nc=00000001`
				buf = fmt.Appendf(buf[:0], p.second, cseq+1, cseq+2, auth)
				bb.r.handleDatagram(conn, buf, src, &s)
				if !bytes.HasPrefix(conn.b, []byte("SIP/2.0 200 ")) {
					b.Fatalf("answer %q", conn.b)
				}
				if i%1024 == 0 {
					drainQueues(bb.r)
				}
			}
		})
	}
}

// lastWrite keeps a copy of the last datagram written.
type lastWrite struct{ b []byte }

func (w *lastWrite) WriteTo(p []byte, _ net.Addr) (int, error) {
	w.b = append(w.b[:0], p...)
	return len(p), nil
}

// benchNonce returns the nonce of the challenge for alg in a 401.
func benchNonce(b *testing.B, res []byte, alg string) string {
	i := bytes.Index(res, []byte("algorithm="+alg+","))
	if i < 0 {
		b.Fatalf("no %s challenge in %q", alg, res)
	}
	j := bytes.LastIndex(res[:i], []byte(`nonce="`))
	return string(res[j+7 : j+7+nonceLen])
}

// drainQueues empties the event and write-behind queues, which nothing
// consumes in a benchmark, so they do not grow without bound.
func drainQueues(r *Registrar) {
	for {
		if _, ok := r.events.pop(); !ok {
			break
		}
	}
	r.wb.take(1 << 20)
}

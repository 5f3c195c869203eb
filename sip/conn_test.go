package sip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// selfSigned writes a throwaway certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pbxd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// closedByServer waits up to 10 s for the server to close c.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		return true // EOF or reset
	}
}

func dialFrom(t *testing.T, local, target string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Silent connections, partial headers and TLS clients that never say hello
// are closed (they were held for ever, one goroutine and fd each).
func TestConnTimeouts(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t)
	r := running(t, nil, func(c *Config) {
		c.TLSListen, c.TLSCertFile, c.TLSKeyFile = "127.0.0.1:0", cert, key
		c.ConnFirstReadTimeout = 300 * time.Millisecond
		c.ConnIdleTimeout = 500 * time.Millisecond
	})
	silent := dialFrom(t, "127.0.0.1", r.Addrs().TCP)
	partial := dialFrom(t, "127.0.0.1", r.Addrs().TCP)
	if _, err := io.WriteString(partial, "REGISTER sip:"+dom+" SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-p\r\n"); err != nil {
		t.Fatal(err)
	}
	noHello := dialFrom(t, "127.0.0.1", r.Addrs().TLS)
	for name, c := range map[string]net.Conn{"silent": silent, "partial header": partial, "TLS without ClientHello": noHello} {
		if !closedByServer(t, c) {
			t.Errorf("%s connection still open", name)
		}
	}
	waitFor(t, "the connection gauges to fall to 0", func() bool {
		return r.tcpGate.open.Load() == 0
	})
}

// A source may hold ConnsPerSource connections; more are closed on accept
// and counted, other sources are unaffected.
func TestConnsPerSource(t *testing.T) {
	t.Parallel()
	r := running(t, nil, func(c *Config) { c.ConnsPerSource = 3 })
	var kept []net.Conn
	for range 3 {
		kept = append(kept, dialFrom(t, "127.0.0.1", r.Addrs().TCP))
	}
	ll := r.tcpGate
	waitFor(t, "3 connections", func() bool { return ll.open.Load() == 3 })
	extra := dialFrom(t, "127.0.0.1", r.Addrs().TCP)
	if !closedByServer(t, extra) {
		t.Fatal("connection over the per-source cap kept")
	}
	if got := testutil.ToFloat64(r.m.connsRefused.WithLabelValues("tcp", "per_source")); got != 1 {
		t.Fatalf("refused %v", got)
	}
	other := dialFrom(t, "127.0.0.2", r.Addrs().TCP)
	waitFor(t, "the other source's connection", func() bool { return ll.open.Load() == 4 })
	_ = other.Close()
	for _, c := range kept {
		_ = c.Close()
	}
	waitFor(t, "all connections released", func() bool { return ll.open.Load() == 0 })
}

package sippg_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/sip"
	"github.com/pbxd/pbxd/sip/sippg"
)

const lineID = "6f1c1f0e-2d7a-4c39-9a59-0b6c2e0b9b11"

// A binding PostgreSQL cannot store (NUL, invalid UTF-8) is reported as
// rejected for good, so the registrar drops it instead of retrying.
func TestSaveRejectsBadText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := sippg.New(storetest.NewPool(t))
	now := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	for _, ua := range []string{"phone\x00", "phone\xff"} {
		b := sip.Binding{LineID: lineID, ContactURI: "sip:100@192.0.2.1:5060", Source: "udp:192.0.2.1:5060",
			UserAgent: ua, CallID: "abc", CSeq: 1, ExpiresAt: now.Add(time.Hour), UpdatedAt: now}
		if err := s.SaveBinding(ctx, b); !errors.Is(err, sip.ErrBindingRejected) {
			t.Errorf("User-Agent %q: %v", ua, err)
		}
	}
}

func TestStoreCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := sippg.New(storetest.NewPool(t))
	now := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	b := sip.Binding{LineID: lineID, ContactURI: "sip:100@192.0.2.1:5060", Source: "udp:192.0.2.1:5060",
		UserAgent: "Yealink", CallID: "abc", CSeq: 4294967295, ExpiresAt: now.Add(time.Hour), UpdatedAt: now}
	if err := s.SaveBinding(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.CSeq = 7
	if err := s.SaveBinding(ctx, b); err != nil { // upsert
		t.Fatal(err)
	}
	b2 := b
	b2.ContactURI = "sip:100@192.0.2.2:5060"
	_ = s.SaveBinding(ctx, b2)
	got, err := s.LoadBindings(ctx)
	if err != nil || len(got) != 2 || got[0].CSeq != 7 || !got[0].ExpiresAt.Equal(b.ExpiresAt) || got[0] != normalize(b) {
		t.Fatalf("load: %v %+v", err, got)
	}
	if err := s.DeleteBinding(ctx, lineID, b.ContactURI); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBinding(ctx, lineID, "sip:absent"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadBindings(ctx); len(got) != 1 {
		t.Fatalf("after delete %+v", got)
	}
	if err := s.DeleteLine(ctx, lineID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadBindings(ctx); len(got) != 0 {
		t.Fatalf("after delete line %+v", got)
	}
}

// normalize puts times in the zone pgx returns them in.
func normalize(b sip.Binding) sip.Binding {
	b.ExpiresAt = b.ExpiresAt.Local()
	b.UpdatedAt = b.UpdatedAt.Local()
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = u.Close() }() // a UDP socket: nothing buffered to lose
	return u.LocalAddr().(*net.UDPAddr).Port
}

func start(t *testing.T, store sip.BindingStore) (*sip.Registrar, func()) {
	t.Helper()
	in := startShared(t, store, nil, nil)
	return in.r, in.stop
}

// TestRestartReloadsFromPostgres registers a phone with sipp, stops the
// registrar (flushing the write-behind queue), starts a new one on the same
// database and finds the binding again.
func TestRestartReloadsFromPostgres(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp not installed (apt-get install sip-tester)")
	}
	ctx := context.Background()
	pool := storetest.NewPool(t)
	const domain, user, pw = "pg.example.net", "400", "pw-400"
	h := md5.Sum([]byte(user + ":" + domain + ":" + pw))
	lc := pbx.LineConfig{ID: lineID, Domain: domain, Username: user, HA1MD5: hex.EncodeToString(h[:])}

	r1, stop1 := start(t, sippg.New(pool))
	_ = r1.Apply(ctx, lc)
	dir := t.TempDir()
	csv := filepath.Join(dir, "u.csv")
	_ = os.WriteFile(csv, []byte("SEQUENTIAL\n"+user+";"+pw+"\n"), 0o600)
	sf, _ := filepath.Abs("../testdata/sipp/register.xml")
	out, err := exec.Command(bin, r1.Addrs().UDP, "-sf", sf, "-inf", csv, "-key", "sipdomain", domain,
		"-auth_uri", domain, "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-t", "u1", "-m", "1",
		"-timeout", "20s", "-recv_timeout", "6000", "-nostdin").CombinedOutput()
	if err != nil {
		t.Fatalf("sipp: %v\n%s", err, out)
	}
	want := r1.Contacts(lineID)
	stop1()
	if len(want) != 1 {
		t.Fatalf("registered %+v", want)
	}

	r2, stop2 := start(t, sippg.New(pool))
	defer stop2()
	_ = r2.Apply(ctx, lc)
	got := r2.Contacts(lineID)
	if len(got) != 1 || got[0].ContactURI != want[0].ContactURI || got[0].CallID != want[0].CallID ||
		!got[0].ExpiresAt.Equal(want[0].ExpiresAt.Truncate(time.Microsecond)) {
		t.Fatalf("after restart %+v, want %+v", got, want)
	}
}

// SaveBindings upserts many bindings in one statement; one unstorable row
// fails it as rejected (the queue then saves row by row).
func TestSaveBindings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := sippg.New(storetest.NewPool(t))
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	var bs []sip.Binding
	for i := range 300 {
		bs = append(bs, sip.Binding{LineID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ContactURI: "sip:100@192.0.2.1:5060",
			Source: "udp:192.0.2.1:5060", UserAgent: "Yealink", CallID: "abc", CSeq: 1, ExpiresAt: now.Add(time.Hour), UpdatedAt: now})
	}
	if err := s.SaveBindings(ctx, bs); err != nil {
		t.Fatal(err)
	}
	bs[7].CSeq, bs[7].UserAgent = 4294967295, "Snom"
	if err := s.SaveBindings(ctx, bs); err != nil { // upsert
		t.Fatal(err)
	}
	got, err := s.LoadBindings(ctx)
	if err != nil || len(got) != 300 || got[7] != normalize(bs[7]) || got[8] != normalize(bs[8]) {
		t.Fatalf("load: %v, %d rows, %+v", err, len(got), got[7])
	}
	bs[9].UserAgent = "phone\x00"
	if err := s.SaveBindings(ctx, bs); !errors.Is(err, sip.ErrBindingRejected) {
		t.Fatalf("batch with a NUL: %v", err)
	}
}

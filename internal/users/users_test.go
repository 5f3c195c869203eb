package users

import (
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h := Hash("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash = %q", h)
	}
	if h == Hash("correct horse battery") {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if !Verify(h, "correct horse battery") || Verify(h, "correct horse batterY") || Verify(h, "") {
		t.Fatal("verify accepts a wrong password or refuses the right one")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=0,t=2,p=1$c2FsdA$aGFzaA", h + "x$"} {
		if Verify(bad, "correct horse battery") {
			t.Errorf("verify accepts malformed %q", bad)
		}
	}
}

// Verify reads hashes back from the database: malformed ones are refused
// without panicking or allocating absurd memory, and a hash never accepts
// a password other than its own.
func FuzzVerify(f *testing.F) {
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "pw")
	f.Add("$argon2id$v=19$m=1048577,t=1,p=1$c2FsdA$aGFzaA", "pw")
	f.Fuzz(func(t *testing.T, hash, password string) {
		if strings.Contains(hash, "m=") && !strings.Contains(hash, "m=8,") {
			// Keep the fuzzer from spending its time in big argon2 runs.
			return
		}
		if Verify(hash, password) && Verify(hash, password+"x") {
			t.Fatalf("hash %q accepts two passwords", hash)
		}
	})
}

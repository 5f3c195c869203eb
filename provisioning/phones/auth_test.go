package phones

import (
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	t.Parallel()
	s := NewSecret()
	if len(s) < 26 || strings.ContainsAny(s, ":@/?#%") {
		t.Fatalf("NewSecret() = %q: too short or not URL user-info safe", s)
	}
	if NewSecret() == s {
		t.Fatal("NewSecret repeats")
	}
	h := HashSecret(s)
	if !VerifySecret(h, s) {
		t.Error("secret does not verify against its hash")
	}
	if strings.Contains(h, s) {
		t.Error("hash contains the secret")
	}
	for _, tc := range []struct{ hash, secret string }{
		{h, s + "x"}, {h, ""}, {"", ""}, {"", s}, {"sha256:", ""}, {strings.TrimPrefix(h, "sha256:"), s},
		{h[:len(h)-1], s},
	} {
		if VerifySecret(tc.hash, tc.secret) {
			t.Errorf("VerifySecret(%q, %q) = true", tc.hash, tc.secret)
		}
	}
	dev := Device{MAC: MAC{0, 0x15, 0x65, 1, 2, 3}, SecretHash: h}
	if !VerifyDevice(dev, "00:15:65:01:02:03", s) || !VerifyDevice(dev, "001565010203", s) {
		t.Error("VerifyDevice refuses the device's own credentials")
	}
	if VerifyDevice(dev, "001565010204", s) || VerifyDevice(dev, "", s) || VerifyDevice(Device{MAC: dev.MAC}, "001565010203", "") {
		t.Error("VerifyDevice accepts a wrong user or a device without secret")
	}
}

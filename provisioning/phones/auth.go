package phones

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// Phones authenticate with HTTP Basic credentials written into their
// provisioning URL (https://{mac}:{secret}@host/provision/): the user name is
// the MAC, the password a per-device provisioning secret. Basic rather than
// Digest because every vendor supports it and the daemon terminates TLS, so
// the secret never crosses the network in clear; Digest would also force the
// daemon to store something password-equivalent instead of a hash.

// secretPrefix tags the hash format so another one can be introduced later
// without ambiguity.
const secretPrefix = "sha256:"

// NewSecret returns a fresh provisioning secret for a device, to show the
// operator once and store only as HashSecret. It is 26 characters of base32
// (A–Z, 2–7: 130 bits), safe in a URL's user-info without escaping.
func NewSecret() string { return rand.Text() }

// HashSecret returns what the daemon stores for a provisioning secret. A
// plain SHA-256 suffices (no salt, no slow KDF) because the secret is a
// random 130-bit value, not a human password: there is nothing to guess.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return secretPrefix + hex.EncodeToString(sum[:])
}

// VerifySecret reports whether secret matches a HashSecret value, in
// constant time. An empty or malformed hash never matches, so a device
// without a secret cannot be fetched by anyone.
func VerifySecret(hash, secret string) bool {
	want, ok := strings.CutPrefix(hash, secretPrefix)
	if !ok || len(want) != sha256.Size*2 {
		return false
	}
	got := HashSecret(secret)[len(secretPrefix):]
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// VerifyDevice is the default credential check: the user name is the
// device's MAC (any notation ParseMAC accepts) and the password its
// provisioning secret.
func VerifyDevice(dev Device, user, pass string) bool {
	m, err := ParseMAC(user)
	if err != nil || m != dev.MAC {
		return false
	}
	return VerifySecret(dev.SecretHash, pass)
}

package provisioning

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5" //nolint:gosec // RFC 7616 MD5 digest is what SIP phones speak
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
)

// passwordAlphabet leaves out characters people confuse when they read a
// password off a portal and type it into a phone: 0/O/o, 1/l/I.
const passwordAlphabet = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

// PasswordLength is the length of generated SIP passwords (≥16).
const PasswordLength = 20

// GeneratePassword returns a random password from crypto/rand.
func GeneratePassword() (string, error) {
	b := make([]byte, PasswordLength)
	max := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		b[i] = passwordAlphabet[n.Int64()]
	}
	return string(b), nil
}

// HA1 returns the RFC 7616 digest HA1 values H(username:realm:password) for
// MD5 and SHA-256, in hex: the registrar checks these, never the password.
func HA1(username, realm, password string) (md5hex, sha256hex string) {
	in := []byte(username + ":" + realm + ":" + password)
	m := md5.Sum(in) //nolint:gosec
	s := sha256.Sum256(in)
	return hex.EncodeToString(m[:]), hex.EncodeToString(s[:])
}

// Cipher encrypts line passwords at rest with AES-256-GCM. The line id is the
// additional data, so a ciphertext copied onto another line does not open.
type Cipher struct{ aead cipher.AEAD }

// NewCipher takes a 32-byte key.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != 32 {
		return nil, errors.New("password key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts password for line id.
func (c *Cipher) Seal(id, password string) ([]byte, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return c.aead.Seal(nonce, nonce, []byte(password), []byte(id)), nil
}

// Open decrypts what Seal produced for line id.
func (c *Cipher) Open(id string, sealed []byte) (string, error) {
	n := c.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed password too short")
	}
	pt, err := c.aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		return "", errors.New("cannot decrypt password (wrong secret key?)")
	}
	return string(pt), nil
}

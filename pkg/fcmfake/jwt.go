package fcmfake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// assertion is the claim set of a service account's JWT bearer grant.
type assertion struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// verifyRS256 checks a compact JWS signed RS256 by the key of its iss.
func verifyRS256(token string, lookup func(iss string) (*rsa.PublicKey, bool)) (assertion, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return assertion{}, errors.New("not a compact JWS")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var c assertion
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return assertion{}, fmt.Errorf("header: %w", err)
	}
	if hdr.Alg != "RS256" {
		return assertion{}, fmt.Errorf("alg %q, want RS256", hdr.Alg)
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return assertion{}, fmt.Errorf("claims: %w", err)
	}
	pub, ok := lookup(c.Iss)
	if !ok {
		return assertion{}, fmt.Errorf("unknown service account %q", c.Iss)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return assertion{}, errors.New("signature is not base64url")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return assertion{}, errors.New("bad signature")
	}
	return c, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

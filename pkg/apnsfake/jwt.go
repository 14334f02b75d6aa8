package apnsfake

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// claims are the parts of a provider token APNs reads.
type claims struct {
	kid string
	iss string
	iat int64
}

// verifyES256 checks a compact JWS: header alg ES256 with a kid that
// lookup knows, a P-256 signature (r‖s, 64 bytes) by that key, and claims
// iss (the key's team) and iat.
func verifyES256(token string, lookup func(kid string) (*ecdsa.PublicKey, string, bool)) (claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}, errors.New("not a compact JWS")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return claims{}, fmt.Errorf("header: %w", err)
	}
	if hdr.Alg != "ES256" {
		return claims{}, fmt.Errorf("alg %q, want ES256", hdr.Alg)
	}
	pub, team, ok := lookup(hdr.Kid)
	if !ok {
		return claims{}, fmt.Errorf("unknown kid %q", hdr.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return claims{}, errors.New("signature is not 64 bytes of base64url")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, sum[:], r, s) {
		return claims{}, errors.New("bad signature")
	}
	var body struct {
		Iss string `json:"iss"`
		Iat *int64 `json:"iat"`
	}
	if err := decodeSegment(parts[1], &body); err != nil {
		return claims{}, fmt.Errorf("claims: %w", err)
	}
	if body.Iss != team {
		return claims{}, fmt.Errorf("iss %q is not the key's team %q", body.Iss, team)
	}
	if body.Iat == nil {
		return claims{}, errors.New("no iat")
	}
	return claims{kid: hdr.Kid, iss: body.Iss, iat: *body.Iat}, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

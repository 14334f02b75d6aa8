package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"time"
)

// Platforms and APNs environments.
const (
	IOS        = "ios"
	Android    = "android"
	Sandbox    = "sandbox"
	Production = "production"
)

// Device is one registered app installation of a user.
type Device struct {
	ID           string    `json:"id"` // derived from the token; names the device in events and logs
	Token        string    `json:"token"`
	Platform     string    `json:"platform"`
	Environment  string    `json:"environment"`
	Bundle       string    `json:"bundle,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
}

var (
	apnsTokenRE = regexp.MustCompile(`^[0-9a-fA-F]{64,200}$`)
	fcmTokenRE  = regexp.MustCompile(`^[A-Za-z0-9_:.-]{20,1000}$`)
	bundleRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$`)
)

// DeviceID is the short, stable name of a token (its token is long and
// best kept out of logs).
func DeviceID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// Validate checks a registration and fills defaults: environment
// production; Android has no sandbox.
func (d *Device) Validate() error {
	switch d.Platform {
	case IOS:
		if !apnsTokenRE.MatchString(d.Token) || len(d.Token)%2 != 0 {
			return fieldErr("token", "an APNs device token is 64-200 hex digits")
		}
		if d.Bundle == "" {
			return fieldErr("bundle", "an iOS device needs its app bundle id (the APNs topic, e.g. com.example.phone)")
		}
	case Android:
		if !fcmTokenRE.MatchString(d.Token) {
			return fieldErr("token", "an FCM registration token is 20-1000 letters, digits, '_', ':', '.' or '-'")
		}
	case "":
		return fieldErr("platform", "missing: ios or android")
	default:
		return fieldErr("platform", "%q is not a platform: ios or android", truncate(d.Platform))
	}
	if d.Bundle != "" && (len(d.Bundle) > 155 || !bundleRE.MatchString(d.Bundle)) {
		return fieldErr("bundle", "%q is not a bundle id / package name (reverse DNS, at most 155 bytes)", truncate(d.Bundle))
	}
	switch d.Environment {
	case "":
		d.Environment = Production
	case Production:
	case Sandbox:
		if d.Platform == Android {
			return fieldErr("environment", "FCM has no sandbox: production")
		}
	default:
		return fieldErr("environment", "%q is not an environment: sandbox or production", truncate(d.Environment))
	}
	d.ID = DeviceID(d.Token)
	return nil
}

// Topic is the apns-topic of a push of type typ to the device.
func (d Device) Topic(typ string) string {
	if typ == VoIP {
		return d.Bundle + ".voip"
	}
	return d.Bundle
}

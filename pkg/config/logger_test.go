package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestLogger(t *testing.T) {
	var out bytes.Buffer
	log, err := Logger(&out, "warn", "svc", "i-1")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("dropped")
	log.Warn("kept", "callid", "u-1")
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("want one JSON line, got %q (%v)", out.String(), err)
	}
	if line["service"] != "svc" || line["instance"] != "i-1" || line["callid"] != "u-1" || line["msg"] != "kept" {
		t.Fatalf("line %v", line)
	}
	if _, err := Logger(&out, "loud", "svc", "i"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("bad level: %v", err)
	}
}

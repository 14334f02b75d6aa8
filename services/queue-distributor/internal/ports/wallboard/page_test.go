package wallboard

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// pageFields are the per-queue numbers the page shows, each in an element with
// data-queue and data-field attributes and its raw number in data-value.
var pageFields = []string{
	"waiting", "longest_wait_seconds",
	"agents.available", "agents.idle", "agents.offered", "agents.in_call",
	"agents.wrap_up", "agents.on_break", "agents.logged_out",
	"service_level_pct", "average_speed_of_answer_seconds", "abandon_rate_pct",
	"answered", "abandoned",
}

func TestPage(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /wallboard", Page())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	resp, err := http.Get(ts.URL + "/wallboard")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}

	t.Run("a marker for every field", func(t *testing.T) {
		for _, f := range pageFields {
			if !strings.Contains(body, `data-field="`+f+`"`) {
				t.Errorf("no element with data-field=%q", f)
			}
		}
		for _, want := range []string{`data-updated=`, `id="window"`, `id="updated"`, `id="status"`,
			"wrong or missing token: open /wallboard#token=<admin token>", "disconnected — reconnecting"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})

	t.Run("self-contained and without data", func(t *testing.T) {
		for _, bad := range []string{"http://", "https://", "src=", "@import", "url("} {
			if strings.Contains(body, bad) {
				t.Errorf("page refers to something outside itself: %q", bad)
			}
		}
		// Queue names are user input: the script must never parse data as HTML.
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("page uses %s", bad)
			}
		}
	})

	t.Run("the CSP allows exactly the inline script and style", func(t *testing.T) {
		csp := resp.Header.Get("Content-Security-Policy")
		for _, tag := range []string{"script", "style"} {
			m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
			if len(m) != 1 {
				t.Fatalf("%d <%s> blocks, want 1", len(m), tag)
			}
			sum := sha256.Sum256([]byte(m[0][1]))
			want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP %q does not confine the page to its origin", csp)
		}
	})
}

// Package wallboard is the queue-distributor's live wallboard: a public,
// data-free HTML page (GET /wallboard) that reads the admin token from its
// URL fragment and renders the server-sent stats stream (GET
// /v1/stats/stream, behind the token) as one card per queue, for a wall TV.
package wallboard

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

//go:embed wallboard.html
var pageHTML []byte

// Page serves the wallboard page. It holds no data and needs no token; the
// script asks for the stream with the token from the URL fragment
// (/wallboard#token=...), which browsers never send to the server.
func Page() http.Handler {
	csp := contentSecurityPolicy(pageHTML)
	length := strconv.Itoa(len(pageHTML))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", length)
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		w.Write(pageHTML)
	})
}

var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

// contentSecurityPolicy allows exactly the page's own inline script and
// style (by hash), and network access to its own origin only: an injected
// script or a tampered copy of the page would not run, and nothing can be
// sent elsewhere.
func contentSecurityPolicy(page []byte) string {
	var scripts, styles []string
	for _, m := range inlineBlock.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[2])
		src := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if bytes.Equal(m[1], []byte("script")) {
			scripts = append(scripts, src)
		} else {
			styles = append(styles, src)
		}
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + strings.Join(scripts, " "),
		"style-src " + strings.Join(styles, " "),
		"connect-src 'self'",
		"img-src data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

const testPage = `<!doctype html><title>t</title><body>
<p id="n">1</p>
<script>
console.log("page says hello");
setTimeout(() => { document.getElementById("n").textContent = "2"; }, 200);
</script>`

func TestBrowser(t *testing.T) {
	b := New(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(testPage))
	}))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	p, err := b.Open(ctx, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.getElementById("n").textContent === "2"`); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title string `json:"title"`
		N     int    `json:"n"`
	}
	if err := p.Eval(ctx, `({title: document.title, n: Number(document.getElementById("n").textContent)})`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "t" || got.N != 2 {
		t.Errorf("Eval = %+v, want title t and n 2", got)
	}
	var sum int
	if err := p.Eval(ctx, `Promise.resolve(40 + 2)`, &sum); err != nil || sum != 42 {
		t.Errorf("Eval of a promise = %d, %v; want 42", sum, err)
	}
	if err := p.Eval(ctx, `undefined`, &sum); err == nil {
		t.Error("Eval of undefined into an int: no error")
	}

	// A condition that never holds ends with ctx, and the error carries
	// the last exception and what the page logged.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	err = p.WaitFor(short, `document.getElementById("nope").textContent === "x"`)
	if err == nil {
		t.Fatal("WaitFor of a condition that never holds returned nil")
	}
	for _, want := range []string{"context deadline exceeded", "TypeError", "page says hello"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("WaitFor error lacks %q:\n%v", want, err)
		}
	}
}

func TestCloseLeavesNoProcess(t *testing.T) {
	b := New(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if _, err := b.Open(ctx, "about:blank"); err != nil {
		t.Fatal(err)
	}
	if b.pgid == 0 {
		t.Fatal("the browser's process group is unknown")
	}
	if n := len(b.processes()); n < 3 {
		t.Fatalf("found %d chromium processes, want the browser and its helpers", n)
	}
	b.Close()
	if pids := b.processes(); len(pids) > 0 {
		t.Errorf("chromium processes %v outlived Close", pids)
	}
	if _, err := os.Stat(b.root); !os.IsNotExist(err) {
		t.Errorf("profile %s outlived Close: %v", b.root, err)
	}
	b.Close() // twice is fine
}

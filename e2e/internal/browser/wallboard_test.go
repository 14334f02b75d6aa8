package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// stats is the body of the queue-distributor's GET /v1/stats, which the
// wallboard's stream carries.
type stats struct {
	WindowSeconds int          `json:"window_seconds"`
	At            string       `json:"at"`
	Queues        []queueStats `json:"queues"`
}

type queueStats struct {
	Queue              string  `json:"queue"`
	Waiting            int     `json:"waiting"`
	LongestWaitSeconds float64 `json:"longest_wait_seconds"`
	Agents             struct {
		LoggedOut int `json:"logged_out"`
		Available int `json:"available"`
		OnBreak   int `json:"on_break"`
		Idle      int `json:"idle"`
		Offered   int `json:"offered"`
		InCall    int `json:"in_call"`
		WrapUp    int `json:"wrap_up"`
	} `json:"agents"`
	Offered                     int     `json:"offered"`
	Answered                    int     `json:"answered"`
	Abandoned                   int     `json:"abandoned"`
	ServiceLevelPct             float64 `json:"service_level_pct"`
	AverageSpeedOfAnswerSeconds float64 `json:"average_speed_of_answer_seconds"`
	AbandonRatePct              float64 `json:"abandon_rate_pct"`
}

// fields is what the page must show of a queue: data-field -> number.
func (q queueStats) fields() map[string]float64 {
	return map[string]float64{
		"waiting":                         float64(q.Waiting),
		"longest_wait_seconds":            q.LongestWaitSeconds,
		"agents.available":                float64(q.Agents.Available),
		"agents.idle":                     float64(q.Agents.Idle),
		"agents.offered":                  float64(q.Agents.Offered),
		"agents.in_call":                  float64(q.Agents.InCall),
		"agents.wrap_up":                  float64(q.Agents.WrapUp),
		"agents.on_break":                 float64(q.Agents.OnBreak),
		"agents.logged_out":               float64(q.Agents.LoggedOut),
		"service_level_pct":               q.ServiceLevelPct,
		"average_speed_of_answer_seconds": q.AverageSpeedOfAnswerSeconds,
		"abandon_rate_pct":                q.AbandonRatePct,
		"answered":                        float64(q.Answered),
		"abandoned":                       float64(q.Abandoned),
	}
}

func supportQueue(waiting int, longest float64, sl float64) queueStats {
	q := queueStats{Queue: "support", Waiting: waiting, LongestWaitSeconds: longest,
		Offered: 40, Answered: 30, Abandoned: 2, ServiceLevelPct: sl, AverageSpeedOfAnswerSeconds: 12.3, AbandonRatePct: 6.25}
	q.Agents.LoggedOut, q.Agents.Available, q.Agents.OnBreak = 1, 5, 2
	q.Agents.Idle, q.Agents.Offered, q.Agents.InCall, q.Agents.WrapUp = 3, 1, 1, 0
	return q
}

// pageValues reads every data-value on the page: queue -> field -> number.
const pageValues = `(() => {
	const out = {};
	for (const el of document.querySelectorAll("[data-queue][data-field][data-value]")) {
		(out[el.dataset.queue] ??= {})[el.dataset.field] = el.dataset.value === "" ? null : Number(el.dataset.value);
	}
	return out;
})()`

const tokenHelp = "wrong or missing token: open /wallboard#token=<admin token>"

func TestWallboard(t *testing.T) {
	b := New(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	wb := startWallboard(t, "wallboard-e2e-token")

	t.Run("live numbers", func(t *testing.T) {
		first := stats{WindowSeconds: 900, At: "2026-11-23T10:00:00.123456789Z", Queues: []queueStats{supportQueue(3, 42.1, 87.5)}}
		wb.publish(t, first)
		p, err := b.Open(ctx, wb.url+"/wallboard#token="+wb.token)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		waitShown(ctx, t, p, first)
		var text struct{ Longest, SL, Window string }
		if err := p.Eval(ctx, `({
			longest: document.querySelector('[data-queue="support"][data-field="longest_wait_seconds"]').textContent,
			sl: document.querySelector('[data-queue="support"][data-field="service_level_pct"]').textContent,
			window: document.getElementById("window").textContent,
		})`, &text); err != nil {
			t.Fatal(err)
		}
		if text.Longest != "0:42" || text.SL != "87.5%" || text.Window != "15 min" {
			t.Errorf("shown as %+v, want longest 0:42, SL 87.5%%, window 15 min", text)
		}

		// A new snapshot reaches the open page by itself, a hostile queue
		// name shows as text, and a queue that went away goes from the page.
		hostile := `<img src=x onerror="document.title='pwned'">&amp; "sales"`
		sales := supportQueue(0, 0, 100)
		sales.Queue = hostile
		second := stats{WindowSeconds: 900, At: "2026-11-23T10:00:05Z", Queues: []queueStats{supportQueue(7, 125, 61.25), sales}}
		wb.publish(t, second)
		waitShown(ctx, t, p, second)
		var got struct {
			Images  int
			Name    string
			Title   string
			Longest string
		}
		if err := p.Eval(ctx, `({
			images: document.querySelectorAll("img").length,
			name: [...document.querySelectorAll('h2[data-field="queue"]')].map(e => e.textContent).find(n => n !== "support"),
			title: document.title,
			longest: document.querySelector('[data-queue="support"][data-field="longest_wait_seconds"]').textContent,
		})`, &got); err != nil {
			t.Fatal(err)
		}
		if got.Images != 0 || got.Name != hostile || strings.Contains(got.Title, "pwned") {
			t.Errorf("a queue name was parsed as HTML: %+v", got)
		}
		if got.Longest != "2:05" {
			t.Errorf("longest wait of 125 s shown as %q, want 2:05", got.Longest)
		}

		third := stats{WindowSeconds: 900, At: "2026-11-23T10:00:10Z", Queues: []queueStats{sales}}
		wb.publish(t, third)
		waitShown(ctx, t, p, third)

		// The server goes away: the page says so and keeps trying, and
		// picks up the stream again when the server is back.
		wb.stop(t)
		if err := p.WaitFor(ctx, `document.getElementById("status").textContent.startsWith("disconnected — reconnecting")`); err != nil {
			t.Fatal(err)
		}
		fourth := stats{WindowSeconds: 900, At: "2026-11-23T10:00:15Z", Queues: []queueStats{supportQueue(1, 5, 90)}}
		wb.publish(t, fourth)
		wb.start(t)
		waitShown(ctx, t, p, fourth)
	})

	for name, fragment := range map[string]string{"wrong token": "#token=not-the-token", "no token": ""} {
		t.Run(name, func(t *testing.T) {
			p, err := b.Open(ctx, wb.url+"/wallboard"+fragment)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			cond := fmt.Sprintf(`document.getElementById("status").dataset.state === "unauthorized" && document.getElementById("status").textContent === %q`, tokenHelp)
			if err := p.WaitFor(ctx, cond); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitShown waits until the page renders snapshot s, then checks every
// number of every queue against it.
func waitShown(ctx context.Context, t *testing.T, p *Page, s stats) {
	t.Helper()
	if err := p.WaitFor(ctx, fmt.Sprintf(`document.body.dataset.updated === %q && document.getElementById("status").dataset.state === "live"`, s.At)); err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]*float64
	if err := p.Eval(ctx, pageValues, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]float64{}
	for _, q := range s.Queues {
		want[q.Queue] = q.fields()
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("page shows queues %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for queue, fields := range want {
		for field, w := range fields {
			if g := got[queue][field]; g == nil || *g != w {
				t.Errorf("queue %q %s: page data-value %v, want %v", queue, field, deref(g), w)
			}
		}
		if len(got[queue]) != len(fields) {
			t.Errorf("queue %q: page shows %d numbers, want %d", queue, len(got[queue]), len(fields))
		}
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// wallboard is the queue-distributor's wallboard-dev command: the real page
// and stream behind the real admin server, fed from a file. (The wallboard
// package is internal to the queue-distributor, so this module cannot
// import it and serve it from an httptest server.)
type wallboard struct {
	bin, snapshot, token string
	addr, url            string
	cmd                  *exec.Cmd
}

func startWallboard(t *testing.T, token string) *wallboard {
	t.Helper()
	dir := t.TempDir()
	wb := &wallboard{bin: filepath.Join(dir, "wallboard-dev"), snapshot: filepath.Join(dir, "stats.json"), token: token, addr: "127.0.0.1:0"}
	build := exec.Command("go", "build", "-o", wb.bin, "./services/queue-distributor/cmd/wallboard-dev")
	build.Dir = filepath.Join("..", "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build wallboard-dev: %v\n%s", err, out)
	}
	wb.start(t)
	t.Cleanup(func() { wb.stop(t) })
	return wb
}

// start runs the server; after a stop it comes back on the same address.
func (wb *wallboard) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(wb.bin, "--addr", wb.addr, "--token", wb.token, "--snapshot", wb.snapshot, "--every", "50ms")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wb.cmd = cmd
	line, err := bufio.NewReader(stdout).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		wb.stop(t)
		t.Fatalf("wallboard-dev did not start: %q, %v", line, err)
	}
	wb.url, wb.addr = url, strings.TrimPrefix(url, "http://")
}

// stop kills the server at once, as a crash or a redeploy would.
func (wb *wallboard) stop(t *testing.T) {
	t.Helper()
	if wb.cmd == nil {
		return
	}
	wb.cmd.Process.Kill()
	wb.cmd.Wait()
	wb.cmd = nil
}

// publish replaces the snapshot the server streams (atomically: the server
// reads the file at every poll).
func (wb *wallboard) publish(t *testing.T, s stats) {
	t.Helper()
	body, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	tmp := wb.snapshot + ".tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, wb.snapshot); err != nil {
		t.Fatal(err)
	}
}

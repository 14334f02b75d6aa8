// Package transcript loads the recorded FreeSWITCH ESL exchanges kept under
// pkg/esl/testdata/transcripts, so that the codec, the client, the server,
// the simulator and the benchmarks are all held to the same real bytes. It
// is test support: it finds the files next to its own source, so it works in
// a checkout of the repository (tests, `go run`), not in an installed binary.
package transcript

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Direction of a recorded chunk.
const (
	FromFS = "fs>app"
	ToFS   = "app>fs"
)

// Chunk is one TCP read or write as it was recorded. An FromFS chunk with no
// bytes records FreeSWITCH closing the socket.
type Chunk struct {
	Dir   string  `json:"dir"`
	TMS   float64 `json:"t_ms"`
	Bytes []byte  `json:"b64"`
}

// Transcript is one recorded exchange.
type Transcript struct {
	Name   string
	Chunks []Chunk
}

// Dir is the directory holding the transcripts (inbound/ and outbound/).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "transcripts")
}

// Load reads one transcript, e.g. Load("inbound/05-bgapi").
func Load(name string) (*Transcript, error) {
	f, err := os.Open(filepath.Join(Dir(), name+".jsonl"))
	if err != nil {
		return nil, fmt.Errorf("open transcript %s: %w", name, err)
	}
	defer f.Close()
	t := &Transcript{Name: name}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var raw struct {
			Dir string  `json:"dir"`
			TMS float64 `json:"t_ms"`
			B64 string  `json:"b64"`
		}
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			return nil, fmt.Errorf("transcript %s: %w", name, err)
		}
		b, err := base64.StdEncoding.DecodeString(raw.B64)
		if err != nil {
			return nil, fmt.Errorf("transcript %s: %w", name, err)
		}
		t.Chunks = append(t.Chunks, Chunk{Dir: raw.Dir, TMS: raw.TMS, Bytes: b})
	}
	return t, sc.Err()
}

// All lists every transcript name.
func All() ([]string, error) {
	var names []string
	for _, sub := range []string{"inbound", "outbound"} {
		m, err := filepath.Glob(filepath.Join(Dir(), sub, "*.jsonl"))
		if err != nil {
			return nil, err
		}
		for _, p := range m {
			names = append(names, sub+"/"+filepath.Base(p[:len(p)-len(".jsonl")]))
		}
	}
	return names, nil
}

// Stream concatenates every chunk sent in one direction.
func (t *Transcript) Stream(dir string) []byte {
	var b []byte
	for _, c := range t.Chunks {
		if c.Dir == dir {
			b = append(b, c.Bytes...)
		}
	}
	return b
}

// Closed reports whether FreeSWITCH closed the socket in this exchange.
func (t *Transcript) Closed() bool {
	for _, c := range t.Chunks {
		if c.Dir == FromFS && len(c.Bytes) == 0 {
			return true
		}
	}
	return false
}

package esl

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/switchyard-voice/switchyard/pkg/esl/transcript"
)

// benchStream is the recorded event-plain call (transcript 06): the same
// bytes `make bench-esl` feeds to modesl.
func benchStream(b *testing.B, name string) []byte {
	b.Helper()
	tr, err := transcript.Load(name)
	if err != nil {
		b.Fatal(err)
	}
	return tr.Stream(transcript.FromFS)
}

// decodeAll frames the stream and decodes every event in it, as a client
// reading a socket does; it returns the number of events.
func decodeAll(r *Reader) (int, error) {
	events := 0
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		if ev, err := m.Event(); err == nil && ev.Name() != "" {
			events++
		}
	}
}

func benchDecode(b *testing.B, name string) {
	stream := benchStream(b, name)
	src := bytes.NewReader(stream)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	events := 0
	b.ResetTimer()
	for b.Loop() {
		src.Reset(stream)
		n, err := decodeAll(NewReader(src, Limits{}))
		if err != nil {
			b.Fatal(err)
		}
		events += n
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)*float64(len(stream))/float64(events)/1, "bytes/event")
}

// BenchmarkDecode is the headline number: real plain events, framed and
// decoded (URL-decoded headers, nested bodies).
func BenchmarkDecode(b *testing.B)     { benchDecode(b, "inbound/06-events-plain-call") }
func BenchmarkDecodeJSON(b *testing.B) { benchDecode(b, "inbound/07-events-json-call") }
func BenchmarkDecodeXML(b *testing.B)  { benchDecode(b, "inbound/08-events-xml") }

// BenchmarkReadFrame isolates framing from event decoding.
func BenchmarkReadFrame(b *testing.B) {
	stream := benchStream(b, "inbound/06-events-plain-call")
	src := bytes.NewReader(stream)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(stream)
		r := NewReader(src, Limits{})
		for {
			if _, err := r.scanBlockAndSkip(); err != nil {
				break
			}
		}
	}
}

// scanBlockAndSkip frames one message without copying or decoding it.
func (r *Reader) scanBlockAndSkip() (int, error) {
	blk, err := r.scanBlock(false)
	if err != nil {
		return 0, err
	}
	n := blk.end + max(blk.contentLength, 0)
	for r.w-r.r < n {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	r.r += n
	return n, nil
}

func BenchmarkDecodePlainEvent(b *testing.B) {
	stream := benchStream(b, "inbound/06-events-plain-call")
	var body []byte
	r := NewReader(bytes.NewReader(stream), Limits{})
	for body == nil {
		m, err := r.readFrame()
		if err != nil {
			b.Fatal(err)
		}
		if m.Type == TypeEventPlain {
			body = m.Body
		}
	}
	dec := make([]byte, len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var ev Event
		copy(dec, body) // decoding is in place
		if err := decodePlainInPlace(&ev, dec, DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

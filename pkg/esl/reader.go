package esl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits bound what one peer can make us hold. The zero value means the
// defaults.
type Limits struct {
	// MaxFrameBytes caps one frame: its header block plus its body.
	// Default 1 MiB.
	MaxFrameBytes int
	// MaxHeaders caps the number of headers in one header block (the frame's
	// own, or an event's). Default 4096; a busy channel carries a few hundred.
	MaxHeaders int
}

// DefaultLimits are the limits used when a field of Limits is zero.
var DefaultLimits = Limits{MaxFrameBytes: 1 << 20, MaxHeaders: 4096}

func (l Limits) withDefaults() Limits {
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = DefaultLimits.MaxFrameBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultLimits.MaxHeaders
	}
	return l
}

// Reasons carried by FrameError; stable, so they can label metrics.
const (
	ReasonFrameTooLarge    = "frame_too_large"
	ReasonTooManyHeaders   = "too_many_headers"
	ReasonBadContentLength = "bad_content_length"
	ReasonMalformedHeader  = "malformed_header"
	ReasonTruncated        = "truncated"
)

// ErrFrame is matched by every *FrameError (errors.Is(err, esl.ErrFrame)).
var ErrFrame = errors.New("esl: bad frame")

// FrameError says why a byte stream could not be framed. After one, the
// stream is out of step and the connection must be closed.
type FrameError struct {
	Reason string // one of the Reason* constants
	Detail string
}

func (e *FrameError) Error() string { return "esl: " + e.Reason + ": " + e.Detail }

// Is makes errors.Is(err, ErrFrame) true for every FrameError.
func (e *FrameError) Is(target error) bool { return target == ErrFrame }

func frameErr(reason, format string, args ...any) *FrameError {
	return &FrameError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

const initialBufSize = 16 << 10

// Reader frames a byte stream into Messages (what FreeSWITCH sends) or
// Commands (what a client sends). It is not safe for concurrent use; one
// goroutine reads a connection.
type Reader struct {
	rd   io.Reader
	lim  Limits
	buf  []byte
	r, w int // unread bytes are buf[r:w]
	err  error
}

// NewReader returns a Reader over rd with the given limits.
func NewReader(rd io.Reader, lim Limits) *Reader {
	lim = lim.withDefaults()
	size := initialBufSize
	if size > lim.MaxFrameBytes {
		size = lim.MaxFrameBytes
	}
	return &Reader{rd: rd, lim: lim, buf: make([]byte, size)}
}

// Buffered reports how many bytes have been read from the stream but not yet
// framed.
func (r *Reader) Buffered() int { return r.w - r.r }

// fill reads at least one more byte into the buffer, compacting it or
// growing it (never past the frame limit) to make room.
func (r *Reader) fill() error {
	if r.r > 0 && (r.r == r.w || r.w == len(r.buf)) {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.r, r.w = 0, n
	}
	if r.w == len(r.buf) {
		size := 2 * len(r.buf)
		if limit := r.lim.MaxFrameBytes + 1; size > limit {
			size = limit
		}
		if size <= len(r.buf) {
			// Callers check limits before asking for more, so reaching
			// here means a limit check is missing; fail closed.
			return frameErr(ReasonFrameTooLarge, "frame exceeds %d bytes", r.lim.MaxFrameBytes)
		}
		nb := make([]byte, size)
		copy(nb, r.buf[r.r:r.w])
		r.r, r.w, r.buf = 0, r.w-r.r, nb
	}
	for i := 0; i < 100; i++ {
		n, err := r.rd.Read(r.buf[r.w:])
		r.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// block describes a header block found in the read buffer, in offsets
// relative to r.r.
type block struct {
	end           int // first byte after the terminating blank line
	lines         int // header lines (command line included)
	contentLength int // -1 if absent
}

// scanBlock finds the end of the header block starting at r.r, reading more
// as needed. Leading blank lines are skipped (consumed), which tolerates
// stray newlines and CRLF from hand-typed clients. When command is true the
// first line is a command and need not be "Name: value".
func (r *Reader) scanBlock(command bool) (block, error) {
	b := block{contentLength: -1}
	pos := 0 // offset, relative to r.r, of the next unexamined line
	for {
		data := r.buf[r.r:r.w]
		nl := bytes.IndexByte(data[pos:], '\n')
		if nl < 0 {
			if r.w-r.r >= r.lim.MaxFrameBytes {
				return b, frameErr(ReasonFrameTooLarge, "header block exceeds %d bytes", r.lim.MaxFrameBytes)
			}
			if err := r.fill(); err != nil {
				return b, r.eofErr(err, r.w-r.r > 0)
			}
			continue
		}
		line := data[pos : pos+nl]
		next := pos + nl + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			if b.lines == 0 {
				r.r += next // a blank line before any header: skip it
				pos = 0
				continue
			}
			b.end = next
			return b, nil
		}
		if b.lines >= r.lim.MaxHeaders {
			return b, frameErr(ReasonTooManyHeaders, "more than %d headers", r.lim.MaxHeaders)
		}
		if !(command && b.lines == 0) {
			if err := r.checkHeaderLine(line, &b); err != nil {
				return b, err
			}
		}
		b.lines++
		pos = next
	}
}

var contentLengthName = []byte("Content-Length")

func (r *Reader) checkHeaderLine(line []byte, b *block) error {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return frameErr(ReasonMalformedHeader, "header line without a name: %.64q", line)
	}
	name := line[:colon]
	if b.contentLength >= 0 || len(name) != len(contentLengthName) || !bytes.EqualFold(name, contentLengthName) {
		return nil
	}
	n, ok := parseLength(trimSpace(line[colon+1:]))
	if !ok {
		return frameErr(ReasonBadContentLength, "Content-Length %.32q is not a length", line[colon+1:])
	}
	if n > r.lim.MaxFrameBytes {
		return frameErr(ReasonFrameTooLarge, "Content-Length %d exceeds %d bytes", n, r.lim.MaxFrameBytes)
	}
	b.contentLength = n
	return nil
}

// parseLength parses a non-negative decimal without overflow.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// eofErr turns an EOF in the middle of a frame into a FrameError; an EOF
// between frames stays io.EOF so callers can tell a clean close.
func (r *Reader) eofErr(err error, midFrame bool) error {
	if errors.Is(err, io.EOF) && midFrame {
		return frameErr(ReasonTruncated, "connection closed inside a frame")
	}
	return err
}

// takeFrame makes sure the whole frame (header block plus body) is buffered
// and returns an owned copy of it, advancing past it.
func (r *Reader) takeFrame(b block) ([]byte, error) {
	bodyLen := max(b.contentLength, 0)
	total := b.end + bodyLen
	if total > r.lim.MaxFrameBytes {
		return nil, frameErr(ReasonFrameTooLarge, "frame of %d bytes exceeds %d", total, r.lim.MaxFrameBytes)
	}
	for r.w-r.r < total {
		if err := r.fill(); err != nil {
			return nil, r.eofErr(err, true)
		}
	}
	own := make([]byte, total)
	copy(own, r.buf[r.r:r.r+total])
	r.r += total
	return own, nil
}

// ReadMessage reads the next frame sent by FreeSWITCH. A *FrameError or an
// I/O error is sticky: the stream is lost and every later call returns it.
// io.EOF means the peer closed between frames.
func (r *Reader) ReadMessage() (*Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	m, err := r.readMessage()
	if err != nil {
		r.err = err
	}
	return m, err
}

func (r *Reader) readMessage() (*Message, error) {
	m, err := r.readFrame()
	if err != nil {
		return nil, err
	}
	m.decodeEvent(r.lim)
	return m, nil
}

// readFrame frames one message without decoding its event.
func (r *Reader) readFrame() (*Message, error) {
	b, err := r.scanBlock(false)
	if err != nil {
		return nil, err
	}
	own, err := r.takeFrame(b)
	if err != nil {
		return nil, err
	}
	m := &Message{}
	m.Headers = parseHeaderLines(own[:b.end], b.lines, m.hdrArr[:0])
	m.Body = own[b.end:]
	m.Type = m.Headers.Get("Content-Type")
	return m, nil
}

// ReadCommand reads the next command sent by a client (the simulator's side
// of the socket): a command line, optional headers, optional body.
func (r *Reader) ReadCommand() (*Command, error) {
	if r.err != nil {
		return nil, r.err
	}
	c, err := r.readCommand()
	if err != nil {
		r.err = err
	}
	return c, err
}

func (r *Reader) readCommand() (*Command, error) {
	b, err := r.scanBlock(true)
	if err != nil {
		return nil, err
	}
	own, err := r.takeFrame(b)
	if err != nil {
		return nil, err
	}
	nl := bytes.IndexByte(own, '\n')
	c := &Command{Line: bstr(trimSpace(own[:nl]))}
	c.Headers = parseHeaderLines(own[nl+1:b.end], b.lines-1, nil)
	c.Body = own[b.end:]
	return c, nil
}

// parseHeaderLines splits a header block already validated by scanBlock into
// headers whose strings alias block, which the caller owns and never writes.
func parseHeaderLines(block []byte, n int, dst Headers) Headers {
	if cap(dst) < n {
		dst = make(Headers, 0, n)
	}
	for len(block) > 0 {
		nl := bytes.IndexByte(block, '\n')
		if nl < 0 {
			nl = len(block)
		}
		line := block[:nl]
		if nl < len(block) {
			block = block[nl+1:]
		} else {
			block = nil
		}
		if k := len(line); k > 0 && line[k-1] == '\r' {
			line = line[:k-1]
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue // scanBlock has refused these; nothing to do for a command line
		}
		dst = append(dst, Header{Name: bstr(line[:colon]), Value: bstr(trimLeft(line[colon+1:]))})
	}
	return dst
}

func trimLeft(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

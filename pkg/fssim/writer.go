package fssim

import "github.com/switchyard-voice/switchyard/pkg/internal/fifo"

// writeQueued writes queued frames in order until stop closes, a write
// fails, or a nil frame (the end marker) comes up.
func writeQueued(q *fifo.Queue[[]byte], stop <-chan struct{}, write func([]byte) error) {
	for {
		select {
		case <-q.Ready():
		case <-stop:
			return
		}
		for {
			b, ok := q.TryPop()
			if !ok {
				break
			}
			if b == nil || write(b) != nil {
				return
			}
		}
	}
}

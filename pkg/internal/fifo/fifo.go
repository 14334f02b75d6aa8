// Package fifo is a bounded first-in first-out queue that grows as needed
// instead of reserving its bound up front: an ESL connection may be allowed
// thousands of queued events but usually holds a handful, and a thousand
// calls must not cost a thousand large buffers.
package fifo

import "sync"

// Queue holds at most Max items; the zero value is not usable, use New.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	head   int
	max    int
	closed bool
	ready  chan struct{} // one token while items may be waiting
}

// New makes a queue bounded to max items.
func New[T any](max int) *Queue[T] {
	return &Queue[T]{max: max, ready: make(chan struct{}, 1)}
}

// Push appends v; false if the queue is full or closed.
func (q *Queue[T]) Push(v T) bool {
	q.mu.Lock()
	if q.closed || len(q.items)-q.head >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *Queue[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// TryPop takes the oldest item without waiting.
func (q *Queue[T]) TryPop() (T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero T
	if q.head == len(q.items) {
		return zero, false
	}
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) { // empty: reuse the backing array from the start
		q.items, q.head = q.items[:0], 0
	}
	return v, true
}

// Pop waits for the oldest item; false once the queue is closed and empty.
func (q *Queue[T]) Pop() (T, bool) {
	for {
		if v, ok := q.TryPop(); ok {
			return v, true
		}
		q.mu.Lock()
		closed := q.closed
		q.mu.Unlock()
		if closed {
			var zero T
			return zero, false
		}
		<-q.ready
	}
}

// Ready is signalled when items may be waiting (for select loops that also
// wait on something else; call TryPop after it).
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Len is the number of queued items.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// Close stops Push; Pop drains what is left and then reports false.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

package fifo

import (
	"sync"
	"testing"
)

func TestOrderBoundAndClose(t *testing.T) {
	q := New[int](3)
	for i := 0; i < 3; i++ {
		if !q.Push(i) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.Push(3) {
		t.Fatal("pushed past the bound")
	}
	for i := 0; i < 3; i++ {
		if v, ok := q.Pop(); !ok || v != i {
			t.Fatalf("pop %d: %d %v", i, v, ok)
		}
	}
	q.Push(7)
	q.Close()
	if q.Push(8) {
		t.Fatal("pushed after close")
	}
	if v, ok := q.Pop(); !ok || v != 7 {
		t.Fatalf("close lost a queued item: %d %v", v, ok)
	}
	if _, ok := q.Pop(); ok {
		t.Fatal("pop after close and drain")
	}
}

func TestConcurrentProducersOneConsumer(t *testing.T) {
	q := New[int](1 << 20)
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				q.Push(i)
			}
		}()
	}
	go func() { wg.Wait(); q.Close() }()
	n := 0
	for {
		if _, ok := q.Pop(); !ok {
			break
		}
		n++
	}
	if n != 40000 {
		t.Fatalf("popped %d of 40000", n)
	}
}

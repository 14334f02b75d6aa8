package freeswitch

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A node that authenticates and then goes silent is dropped after three
// missed pings and dialled again.
func TestSilentNodeIsReconnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepts atomic.Int32
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				nc.Write([]byte("Content-Type: auth/request\n\n"))
				br.ReadString('\n')
				br.ReadString('\n')
				nc.Write([]byte("Content-Type: command/reply\nReply-Text: +OK accepted\n\n"))
				io.Copy(io.Discard, br) // and never answer again
			}()
		}
	}()
	n, err := New([]NodeConfig{{Name: "fs1", Addr: ln.Addr().String(), Password: "ClueCon"}},
		Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PingInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for accepts.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("a silent node was never reconnected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestAllowListAndEventNames(t *testing.T) {
	n, err := New(nil, Options{Allow: []string{"status", "originate"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]bool{"status": true, "originate user/1 &park()": true, "shutdown": false, "  status": true, "hupall": false} {
		if n.Allowed(cmd) != want {
			t.Errorf("Allowed(%q) = %v", cmd, !want)
		}
	}
	for name, ok := range map[string]bool{"CHANNEL_ANSWER": true, "ALL": true, "CUSTOM a::b": true, "channel_answer": false, "A B": false, "": false} {
		if (validEvent(name) == nil) != ok {
			t.Errorf("validEvent(%q)", name)
		}
	}
	if _, err := New([]NodeConfig{{Name: "a"}, {Name: "a"}}, Options{}); err == nil {
		t.Error("a node configured twice was accepted")
	}
}

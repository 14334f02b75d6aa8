package configstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

var servers *testinfra.Servers

func TestMain(m *testing.M) {
	os.Exit(testinfra.Main(m, &servers, testinfra.WithNATS))
}

var bucketN int

func open(t *testing.T, key []byte) (*Store, jetstream.JetStream, string) {
	t.Helper()
	nc, err := nats.Connect(servers.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	bucketN++
	bucket := "cp_test_" + string(rune('a'+bucketN))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, js, bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	return s, js, bucket
}

func sf(org, name, secret string) domain.Connector {
	return domain.Connector{Org: org, Name: name, Type: domain.TypeSalesforce, Salesforce: &domain.SalesforceSettings{
		LoginURL: "https://login.salesforce.com", Auth: domain.AuthClientCredentials, ClientID: "cid", ClientSecret: domain.Secret(secret)}}
}

func TestStore(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"clear", nil}, {"sealed", key}} {
		t.Run(tc.name, func(t *testing.T) {
			s, js, bucket := open(t, tc.key)
			ctx := context.Background()
			changes := make(chan Change, 10)
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			rev1, err := s.Put(ctx, sf("acme", "sf", "s3cret-one"), 0)
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := s.Watch(wctx, func(c Change) { changes <- c })
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-loaded:
			case <-time.After(5 * time.Second):
				t.Fatal("initial load never finished")
			}
			if c := <-changes; c.Org != "acme" || c.Name != "sf" || c.Revision != rev1 || c.Connector.Salesforce.ClientSecret.Reveal() != "s3cret-one" {
				t.Fatalf("initial: %+v", c)
			}
			if _, err := s.Put(ctx, sf("acme", "sf", "x"), 0); !errors.Is(err, ErrConflict) {
				t.Fatalf("create over an existing one: %v", err)
			}
			rev2, err := s.Put(ctx, sf("acme", "sf", "s3cret-two"), rev1)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(ctx, sf("acme", "sf", "x"), rev1); !errors.Is(err, ErrConflict) {
				t.Fatalf("update from a stale revision: %v", err)
			}
			if c := <-changes; c.Revision != rev2 || c.Connector.Salesforce.ClientSecret.Reveal() != "s3cret-two" {
				t.Fatalf("update: %+v", c)
			}
			got, rev, err := s.Get(ctx, "acme", "sf")
			if err != nil || rev != rev2 || got.Salesforce.ClientSecret.Reveal() != "s3cret-two" || got.Salesforce.ClientID != "cid" {
				t.Fatalf("get: %+v %d %v", got, rev, err)
			}
			// What is stored: secrets in clear only without a key.
			kv, _ := js.KeyValue(ctx, bucket)
			raw, _ := kv.Get(ctx, "acme.sf")
			if bytes.Contains(raw.Value(), []byte("s3cret-two")) != (tc.key == nil) {
				t.Fatalf("stored value: %s", raw.Value())
			}
			s.Put(ctx, sf("beta", "sf", "b"), Any)
			list, err := s.List(ctx)
			if err != nil || len(list) != 2 || list[0].Org != "acme" || list[1].Org != "beta" {
				t.Fatalf("list: %+v %v", list, err)
			}
			<-changes
			if err := s.Delete(ctx, "acme", "sf"); err != nil {
				t.Fatal(err)
			}
			if c := <-changes; !c.Deleted || c.Org != "acme" {
				t.Fatalf("delete: %+v", c)
			}
			if _, _, err := s.Get(ctx, "acme", "sf"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get deleted: %v", err)
			}
			if err := s.Delete(ctx, "acme", "sf"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("delete again: %v", err)
			}
			if _, err := s.Put(ctx, sf("acme", "sf", "s3cret-three"), 0); err != nil {
				t.Fatalf("create after delete: %v", err)
			}
			if c := <-changes; c.Deleted || c.Connector.Salesforce.ClientSecret.Reveal() != "s3cret-three" {
				t.Fatalf("re-created: %+v", c)
			}
		})
	}
}

func TestSealedSecretsNeedTheKey(t *testing.T) {
	k1, k2 := make([]byte, 32), make([]byte, 32)
	rand.Read(k1)
	rand.Read(k2)
	s, js, bucket := open(t, k1)
	ctx := context.Background()
	if _, err := s.Put(ctx, sf("acme", "sf", "s3cret"), 0); err != nil {
		t.Fatal(err)
	}
	for _, key := range [][]byte{nil, k2} {
		other, err := Open(ctx, js, bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := other.Get(ctx, "acme", "sf"); err == nil {
			t.Fatalf("key %x opened secrets sealed with another", key)
		}
	}
	if _, err := Open(ctx, js, bucket, []byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
	// A sealed value moved to another connector's key does not open.
	kv, _ := js.KeyValue(ctx, bucket)
	raw, _ := kv.Get(ctx, "acme.sf")
	kv.Put(ctx, "acme.other", bytes.ReplaceAll(raw.Value(), []byte(`"name":"sf"`), []byte(`"name":"other"`)))
	if _, _, err := s.Get(ctx, "acme", "other"); err == nil {
		t.Fatal("sealed secrets opened under another key")
	}
}

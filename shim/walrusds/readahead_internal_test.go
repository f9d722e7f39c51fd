package walrusds

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/boxo/ipld/merkledag"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// fakeDAG returns a dag-pb node's key and bytes, and its n raw children's keys, under /t.
func fakeDAG(t *testing.T, n, size int) (key, value []byte, kids [][]byte) {
	t.Helper()
	root := merkledag.NodeWithData([]byte{0x08, 0x02})
	for i := range n {
		leaf := merkledag.NewRawNode(append(make([]byte, size-1), byte(i)))
		if err := root.AddNodeLink("", leaf); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, []byte("/t"+dshelp.MultihashToDsKey(leaf.Cid().Hash()).String()))
	}
	return []byte("/t" + dshelp.MultihashToDsKey(root.Cid().Hash()).String()), root.RawData(), kids
}

// found answers every key with a value of size bytes once gate lets it (nil: at once).
func found(size int, gate chan struct{}, calls *atomic.Int32) lookupFunc {
	return func(ctx context.Context, _ pb.LookupMode, keys [][]byte) ([]*pb.LookupResult, error) {
		calls.Add(1)
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		out := make([]*pb.LookupResult, len(keys))
		for i := range keys {
			out[i] = &pb.LookupResult{Status: pb.LookupStatus_LOOKUP_STATUS_FOUND,
				Value: make([]byte, size)}
		}
		return out, nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReadAheadDiscardsInvalidatedFetch: a key written while its read-ahead is in flight is
// not served from what that read-ahead brings back.
func TestReadAheadDiscardsInvalidatedFetch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gate := make(chan struct{})
	var calls atomic.Int32
	r := newReadAhead(ctx, found(100, gate, &calls), 1<<20, time.Minute)
	defer r.close()
	key, value, kids := fakeDAG(t, 3, 100)
	r.schedule(key, value)
	waitFor(t, "the read-ahead Lookup", func() bool { return calls.Load() == 1 })
	r.invalidate(kids[0])
	close(gate)
	if _, ok, err := r.take(ctx, kids[0]); ok || err != nil {
		t.Fatalf("take of an invalidated key in flight = %v, %v; want a miss", ok, err)
	}
	if v, ok, err := r.take(ctx, kids[1]); !ok || err != nil || len(v) != 100 {
		t.Fatalf("take of a read-ahead key = %d bytes, %v, %v", len(v), ok, err)
	}
}

// TestReadAheadGivesUpWhenNobodyReads: with a full budget and no reader, the worker waits at
// most the TTL, expired values are released, and the worker ends.
func TestReadAheadGivesUpWhenNobodyReads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	r := newReadAhead(ctx, found(1000, nil, &calls), 2500, 50*time.Millisecond)
	defer r.close()
	key, value, _ := fakeDAG(t, 10, 1000)
	r.schedule(key, value)
	waitFor(t, "the workers to end", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.running == 0
	})
	r.mu.Lock()
	r.expireLocked(time.Now())
	used, entries := r.used, len(r.entries)
	r.mu.Unlock()
	if r.peak.Load() > 2500 || used != 0 || entries != 0 {
		t.Fatalf("peak %d bytes over a 2500-byte budget, or %d bytes and %d entries left",
			r.peak.Load(), used, entries)
	}
}

// TestReadAheadCloseStopsWorkers: close returns at once while a read-ahead Lookup waits.
func TestReadAheadCloseStopsWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	r := newReadAhead(ctx, found(10, make(chan struct{}), &calls), 1<<20, time.Minute)
	key, value, kids := fakeDAG(t, 20, 10)
	r.schedule(key, value)
	waitFor(t, "the read-ahead Lookups", func() bool { return calls.Load() == readAheadInflight })
	waiter := make(chan bool)
	go func() {
		_, ok, _ := r.take(context.Background(), kids[0])
		waiter <- ok
	}()
	start := time.Now()
	cancel()
	r.close()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("close took %v", took)
	}
	if ok := <-waiter; ok {
		t.Fatal("a Get waiting for a read-ahead cut by Close was served")
	}
	if r.running != 0 || r.used != 0 || len(r.entries) != 0 {
		t.Fatalf("after close: %d workers, %d bytes, %d entries", r.running, r.used, len(r.entries))
	}
}

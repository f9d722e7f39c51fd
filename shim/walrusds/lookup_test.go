package walrusds

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// echoLookup answers every key with its own length as the size, after a delay, and records
// how many keys each call carried.
type echoLookup struct {
	delay time.Duration
	mu    sync.Mutex
	sizes []int
}

func (e *echoLookup) send(_ context.Context, _ pb.LookupMode, keys [][]byte) ([]*pb.LookupResult, error) {
	e.mu.Lock()
	e.sizes = append(e.sizes, len(keys))
	e.mu.Unlock()
	time.Sleep(e.delay)
	out := make([]*pb.LookupResult, len(keys))
	for i, k := range keys {
		out[i] = &pb.LookupResult{Status: pb.LookupStatus_LOOKUP_STATUS_FOUND, Size: int64(len(k))}
	}
	return out, nil
}

func TestCoalescerBatchesConcurrentCallers(t *testing.T) {
	e := &echoLookup{delay: 2 * time.Millisecond}
	c := newCoalescer(context.Background(), pb.LookupMode_LOOKUP_MODE_SIZE, e.send, 64, time.Millisecond)
	const callers = 512
	var wrong atomic.Int32
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			key := []byte(fmt.Sprintf("/key/%d", i))
			r, err := c.lookup(context.Background(), key)
			if err != nil || r.GetSize() != int64(len(key)) {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d callers got another key's result or an error", wrong.Load())
	}
	total := 0
	for _, n := range e.sizes {
		if n > 64 {
			t.Fatalf("a Lookup carried %d keys, above maxKeys 64", n)
		}
		total += n
	}
	if total != callers {
		t.Fatalf("Lookups carried %d keys for %d callers", total, callers)
	}
	if len(e.sizes) > callers/4 {
		t.Fatalf("%d callers cost %d Lookups: not coalesced", callers, len(e.sizes))
	}
}

func TestCoalescerSendsALoneCallerAtOnce(t *testing.T) {
	e := &echoLookup{}
	c := newCoalescer(context.Background(), pb.LookupMode_LOOKUP_MODE_SIZE, e.send, 64, time.Hour)
	start := time.Now()
	if _, err := c.lookup(context.Background(), []byte("/a")); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("a lone lookup waited %v (maxWait is an hour): it must not wait for company", waited)
	}
}

func TestCoalescerCallerContextAndClose(t *testing.T) {
	release := make(chan struct{})
	blocking := func(ctx context.Context, _ pb.LookupMode, keys [][]byte) ([]*pb.LookupResult, error) {
		<-release
		return make([]*pb.LookupResult, len(keys)), nil
	}
	c := newCoalescer(context.Background(), pb.LookupMode_LOOKUP_MODE_GET, blocking, 8, time.Hour)
	go func() { _, _ = c.lookup(context.Background(), []byte("/in-flight")) }()
	time.Sleep(10 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.lookup(ctx, []byte("/queued")); err != context.DeadlineExceeded {
		t.Fatalf("a queued caller whose context expired got %v", err)
	}
	queued := make(chan error, 1)
	go func() { _, err := c.lookup(context.Background(), []byte("/queued-2")); queued <- err }()
	time.Sleep(10 * time.Millisecond)
	c.close()
	if err := <-queued; err != ErrClosed {
		t.Fatalf("a queued caller got %v after close, want ErrClosed", err)
	}
	if _, err := c.lookup(context.Background(), []byte("/late")); err != ErrClosed {
		t.Fatalf("a lookup after close got %v, want ErrClosed", err)
	}
	close(release)
}

func TestCoalescerBoundsTimerLookupsInFlight(t *testing.T) {
	var inflight, peak atomic.Int32
	send := func(_ context.Context, _ pb.LookupMode, keys [][]byte) ([]*pb.LookupResult, error) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		inflight.Add(-1)
		return make([]*pb.LookupResult, len(keys)), nil
	}
	c := newCoalescer(context.Background(), pb.LookupMode_LOOKUP_MODE_SIZE, send, 4096,
		100*time.Microsecond)
	c.maxInflight = 2
	var wg sync.WaitGroup
	for i := range 128 {
		wg.Go(func() {
			for j := range 20 {
				if _, err := c.lookup(context.Background(), []byte(fmt.Sprintf("/k/%d/%d", i, j))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d Lookups were in flight at once, above maxInflight 2", p)
	}
}

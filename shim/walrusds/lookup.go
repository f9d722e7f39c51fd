package walrusds

import (
	"context"
	"sync"
	"time"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// lookupFunc sends one Lookup for keys and returns one result per key, in order.
type lookupFunc func(ctx context.Context, mode pb.LookupMode, keys [][]byte) ([]*pb.LookupResult, error)

// sizeLookupsInflight bounds the Has/GetSize Lookups that maxWait's timer may have in flight at
// once. Without it, 128 callers behind a 1 ms timer kept dozens of small Lookups in flight, and
// the service, whose cost is per call rather than per key, answered ~8,000 Has/s; two in
// flight keep it busy (one computed while the other's answer travels) with full batches, which
// reached ~25,000 Has/s on the benchmark machine (bench/RESULTS.md). Get Lookups stay
// unbounded: each of their keys may wait for a Walrus read, so they gain from concurrency.
const sizeLookupsInflight = 2

// coalescer turns concurrent single-key lookups into batched Lookup calls. A call made while
// no Lookup of its mode is in flight is sent at once, so a lone caller waits for nothing.
// Calls that arrive while one is in flight queue up and go out together as soon as it returns,
// when maxKeys are queued, or after maxWait unless maxInflight Lookups are in flight,
// whichever comes first. Bitswap's 128 workers thus cost a few Lookups instead of 128
// calls.
type coalescer struct {
	mode    pb.LookupMode
	send    lookupFunc
	maxKeys int
	maxWait time.Duration
	// maxInflight > 0 stops the timer from sending while that many Lookups are in flight.
	maxInflight int
	ctx         context.Context // cancelled by Close; bounds the shared calls

	mu       sync.Mutex
	pending  []*lookupCall
	inflight int
	timer    *time.Timer
	closed   bool
}

type lookupCall struct {
	key  []byte
	done chan struct{}
	res  *pb.LookupResult
	err  error
}

func newCoalescer(ctx context.Context, mode pb.LookupMode, send lookupFunc, maxKeys int,
	maxWait time.Duration) *coalescer {
	return &coalescer{mode: mode, send: send, maxKeys: maxKeys, maxWait: maxWait, ctx: ctx}
}

// lookup returns key's result. The caller's ctx bounds only its own wait: the shared call goes
// on for the other keys.
func (c *coalescer) lookup(ctx context.Context, key []byte) (*pb.LookupResult, error) {
	call := &lookupCall{key: key, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending = append(c.pending, call)
	var batch []*lookupCall
	switch {
	case c.inflight == 0 || len(c.pending) >= c.maxKeys:
		batch = c.takeLocked()
	case c.timer == nil:
		c.timer = time.AfterFunc(c.maxWait, c.flush)
	}
	c.mu.Unlock()
	if batch != nil {
		go c.run(batch)
	}
	select {
	case <-call.done:
		return call.res, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// takeLocked removes the queued calls (at most maxKeys) and counts them as in flight.
func (c *coalescer) takeLocked() []*lookupCall {
	n := min(len(c.pending), c.maxKeys)
	batch := c.pending[:n:n]
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
		if c.timer != nil {
			c.timer.Stop()
			c.timer = nil
		}
	}
	c.inflight++
	return batch
}

// flush sends whatever is queued; the timer calls it after maxWait. With maxInflight Lookups
// already in flight it leaves the queue to the first of them that returns (run).
func (c *coalescer) flush() {
	c.mu.Lock()
	c.timer = nil
	var batch []*lookupCall
	if len(c.pending) > 0 && !c.closed &&
		(c.maxInflight <= 0 || c.inflight < c.maxInflight) {
		batch = c.takeLocked()
	}
	c.mu.Unlock()
	if batch != nil {
		c.run(batch)
	}
}

// run sends batch, then keeps sending what queued up meanwhile, until the queue is empty.
func (c *coalescer) run(batch []*lookupCall) {
	for batch != nil {
		keys := make([][]byte, len(batch))
		for i, call := range batch {
			keys[i] = call.key
		}
		results, err := c.send(c.ctx, c.mode, keys)
		for i, call := range batch {
			if err != nil {
				call.err = err
			} else {
				call.res = results[i]
			}
			close(call.done)
		}
		c.mu.Lock()
		c.inflight--
		batch = nil
		if len(c.pending) > 0 && !c.closed {
			batch = c.takeLocked()
		}
		c.mu.Unlock()
	}
}

// close fails queued calls with ErrClosed; calls in flight end when the shared context is
// cancelled.
func (c *coalescer) close() {
	c.mu.Lock()
	c.closed = true
	pending := c.pending
	c.pending = nil
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	for _, call := range pending {
		call.err = ErrClosed
		close(call.done)
	}
}

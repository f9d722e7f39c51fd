package walrusds

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/datastore/dshelp"
	mdpb "github.com/ipfs/boxo/ipld/merkledag/pb"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	mh "github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"
)

// DAG read-ahead. Kubo's `ipfs cat` walks a file's DAG and asks the blockstore for one block
// at a time, so each block would cost one Lookup round trip, while the service answers a
// Lookup of many keys far more cheaply per key. When a Get returns a dag-pb node with links
// under a Kubo block key, the children's keys are fetched in the background, in link order,
// with GET-mode Lookups of up to readAheadKeys keys (or readAheadBatchBytes expected bytes),
// at most readAheadInflight at once. Their values wait in a cache bounded by
// Options.ReadAheadBytes (fetches in flight count at their expected size) for up to
// Options.ReadAheadTTL; the Get that each one anticipated takes it out. A Get of a key whose
// fetch is in flight waits for it. Put, Delete and Batch commits drop the keys they touch,
// cached or in flight; Has and GetSize never use the cache.
const (
	readAheadKeys       = 16
	readAheadBatchBytes = 4 << 20
	readAheadInflight   = 2
	// maxBlockSize: a link whose Tsize is larger points to an intermediate node, whose own
	// size the parent does not tell; it is counted as intermediateGuess until it arrives.
	maxBlockSize      = 2 << 20
	intermediateGuess = 16 << 10
	// dagPBLinksTag starts every canonical dag-pb node that has links (field 2, bytes).
	dagPBLinksTag = 0x12
)

type raState int

const (
	raQueued   raState = iota // waiting for a worker
	raInflight                // in a Lookup; Gets wait for it
	raReady                   // cached
	raDropped                 // taken out of the map: whatever arrives is discarded
)

type raEntry struct {
	key      string
	state    raState
	want     int   // Gets still anticipated (a block linked twice is read twice)
	expected int64 // bytes counted in flight
	value    []byte
	expires  time.Time
	done     chan struct{} // closed when the fetch ends, whatever its outcome
}

type readAhead struct {
	send   lookupFunc
	ctx    context.Context // the datastore's: cancelled by Close
	budget int64
	ttl    time.Duration

	mu      sync.Mutex
	entries map[string]*raEntry // queued, in flight or ready
	groups  [][]*raEntry        // queued entries, one group per parent; the newest goes first
	expiry  []*raEntry          // ready entries in the order they expire
	used    int64               // ready bytes + expected bytes in flight
	space   chan struct{}       // closed (and replaced) when bytes are released
	running int
	closed  bool
	wg      sync.WaitGroup

	lookups atomic.Uint64 // read-ahead Lookups sent, for tests
	peak    atomic.Int64  // most bytes ever held, for tests
}

func newReadAhead(ctx context.Context, send lookupFunc, budget int64, ttl time.Duration) *readAhead {
	return &readAhead{send: send, ctx: ctx, budget: budget, ttl: ttl,
		entries: map[string]*raEntry{}, space: make(chan struct{})}
}

// take returns key's value when a read-ahead anticipated it, waiting for a fetch in flight.
// ok is false when the caller must ask the service itself; err is only ctx's.
func (r *readAhead) take(ctx context.Context, key []byte) (value []byte, ok bool, err error) {
	k := string(key)
	r.mu.Lock()
	if len(r.entries) == 0 {
		r.mu.Unlock()
		return nil, false, nil
	}
	r.expireLocked(time.Now())
	e := r.entries[k]
	if e == nil {
		r.mu.Unlock()
		return nil, false, nil
	}
	switch e.state {
	case raQueued: // not sent yet: the caller's own Lookup is as fast, and saves the budget
		r.dropLocked(e)
		r.mu.Unlock()
		return nil, false, nil
	case raInflight:
		r.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		r.mu.Lock()
		if r.entries[k] != e || e.state != raReady {
			r.mu.Unlock()
			return nil, false, nil // not found, failed, over budget or invalidated
		}
	}
	value = e.value
	e.want--
	if e.want <= 0 {
		r.dropLocked(e)
	} else {
		value = append([]byte(nil), value...) // later readers share the cached slice
	}
	r.mu.Unlock()
	return value, true, nil
}

// invalidate drops keys written or deleted through this datastore: a cached value is
// forgotten, a fetch in flight is discarded when it returns, a queued one is not sent.
func (r *readAhead) invalidate(keys ...[]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if e := r.entries[string(k)]; e != nil {
			r.dropLocked(e)
		}
	}
}

// invalidateStrings is invalidate for a batch's keys.
func (r *readAhead) invalidateStrings(keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.entries) == 0 {
		return
	}
	for _, k := range keys {
		if e := r.entries[k]; e != nil {
			r.dropLocked(e)
		}
	}
}

// dropLocked removes e from the map and releases its bytes. A queued entry stays in its group
// (workers skip dropped entries); one in flight releases its bytes when its Lookup returns.
func (r *readAhead) dropLocked(e *raEntry) {
	if r.entries[e.key] == e {
		delete(r.entries, e.key)
	}
	if e.state == raReady {
		r.releaseLocked(int64(len(e.value)))
		e.value = nil
	}
	if e.state != raInflight {
		e.state = raDropped
		return
	}
	e.state = raDropped
	// in flight: fetch sees raDropped, releases e.expected and closes done
}

func (r *readAhead) releaseLocked(n int64) {
	if n <= 0 {
		return
	}
	r.used -= n
	close(r.space)
	r.space = make(chan struct{})
}

// schedule queues the children of value when key is a Kubo block key and value a dag-pb node
// with links. It costs one byte comparison for anything else.
func (r *readAhead) schedule(key, value []byte) {
	if len(value) == 0 || value[0] != dagPBLinksTag {
		return
	}
	k := string(key)
	cut := strings.LastIndexByte(k, '/')
	if cut < 0 || !isBlockKey(k[cut:]) {
		return
	}
	var node mdpb.PBNode
	if err := proto.Unmarshal(value, &node); err != nil || len(node.Links) == 0 {
		return
	}
	prefix := k[:cut]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	var group []*raEntry
	for _, l := range node.Links {
		c, err := cid.Cast(l.Hash)
		if err != nil || c.Prefix().MhType == mh.IDENTITY { // inlined: never stored
			continue
		}
		ck := prefix + dshelp.MultihashToDsKey(c.Hash()).String()
		if e := r.entries[ck]; e != nil {
			e.want++
			continue
		}
		e := &raEntry{key: ck, want: 1, expected: expectedSize(l.GetTsize())}
		r.entries[ck] = e
		group = append(group, e)
	}
	if len(group) == 0 {
		return
	}
	r.groups = append(r.groups, group)
	// A new worker's first batch is taken here, so the Get that the caller makes next (of
	// the first child, most likely) finds it in flight and waits for it.
	for r.running < readAheadInflight {
		var first []*raEntry
		if e := r.peekLocked(); e == nil {
			break
		} else if r.used+e.expected <= r.budget {
			first = r.takeBatchLocked()
		}
		r.running++
		r.wg.Add(1)
		go r.worker(first)
	}
}

// isBlockKey reports whether component ("/CIQ...") is a multihash in dshelp's key form.
func isBlockKey(component string) bool {
	if len(component) < 8 {
		return false
	}
	b, err := dshelp.BinaryFromDsKey(ds.RawKey(component))
	if err != nil {
		return false
	}
	_, err = mh.Cast(b)
	return err == nil
}

func expectedSize(tsize uint64) int64 {
	if tsize == 0 || tsize > maxBlockSize {
		return intermediateGuess
	}
	return int64(tsize)
}

// close stops the workers (the datastore's context is already cancelled) and waits for them.
func (r *readAhead) close() {
	r.mu.Lock()
	r.closed = true
	close(r.space)
	r.space = make(chan struct{})
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	for _, e := range r.entries {
		r.dropLocked(e)
	}
	r.groups, r.expiry = nil, nil
	r.mu.Unlock()
}

package walrusds_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"

	"github.com/walrusds/walrusds/shim/internal/testservice"
	"github.com/walrusds/walrusds/shim/walrusds"
)

// block is one stored DAG node: its key in Kubo's form under the test's prefix, and its bytes.
type block struct {
	key   ds.Key
	value []byte
}

func blockKey(prefix string, c cid.Cid) ds.Key {
	return ds.NewKey(prefix + dshelp.MultihashToDsKey(c.Hash()).String())
}

// putDAG builds a two-level dag-pb DAG (root → inner intermediate nodes → leaves raw leaves of
// leafSize bytes each), stores every block through d under prefix and returns them in the
// order `ipfs cat` reads them (depth first, root first). They are deleted when the test ends.
func putDAG(t *testing.T, d *walrusds.Datastore, prefix string, inner, leaves, leafSize int) []block {
	t.Helper()
	root := merkledag.NodeWithData([]byte{0x08, 0x02})
	var walk []block
	for range inner {
		mid := merkledag.NodeWithData([]byte{0x08, 0x02})
		var kids []block
		for range leaves {
			data := make([]byte, leafSize)
			_, _ = rand.Read(data)
			leaf := merkledag.NewRawNode(data)
			if err := mid.AddNodeLink("", leaf); err != nil {
				t.Fatal(err)
			}
			kids = append(kids, block{blockKey(prefix, leaf.Cid()), leaf.RawData()})
		}
		if err := root.AddNodeLink("", mid); err != nil {
			t.Fatal(err)
		}
		walk = append(walk, block{blockKey(prefix, mid.Cid()), mid.RawData()})
		walk = append(walk, kids...)
	}
	walk = append([]block{{blockKey(prefix, root.Cid()), root.RawData()}}, walk...)
	ctx := context.Background()
	b, err := d.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range walk {
		if err := b.Put(ctx, blk.key, blk.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := d.Batch(ctx)
		for _, blk := range walk {
			_ = b.Delete(ctx, blk.key)
		}
		_ = b.Commit(ctx)
	})
	return walk
}

func lookupsSent(d *walrusds.Datastore) uint64 {
	stream, unary, _ := walrusds.LookupTransports(d)
	return stream + unary
}

// catDAG Gets every block in walk's order and checks its bytes; it returns the Lookups sent.
func catDAG(t *testing.T, d *walrusds.Datastore, walk []block) uint64 {
	t.Helper()
	before := lookupsSent(d)
	for i, blk := range walk {
		v, err := d.Get(context.Background(), blk.key)
		if err != nil || !bytes.Equal(v, blk.value) {
			t.Fatalf("Get #%d (%s): %d bytes, %v; want the %d bytes put", i, blk.key, len(v),
				err, len(blk.value))
		}
	}
	return lookupsSent(d) - before
}

// TestReadAheadWalksADag: reading a DAG block by block, as `ipfs cat` does, costs a few
// Lookups of several keys instead of one Lookup per block, with the same bytes.
func TestReadAheadWalksADag(t *testing.T) {
	d := open(t, walrusds.Options{})
	walk := putDAG(t, d, "/ra-walk", 4, 20, 20<<10)
	sent := catDAG(t, d, walk)
	ahead, peak, _, _ := walrusds.ReadAheadStats(d)
	if sent*4 > uint64(len(walk)) || ahead == 0 {
		t.Fatalf("%d Gets sent %d Lookups (%d of them read-ahead); want far fewer Lookups "+
			"than Gets", len(walk), sent, ahead)
	}
	if peak <= 0 || peak > walrusds.DefaultReadAheadBytes {
		t.Fatalf("read-ahead held at most %d bytes", peak)
	}
	t.Logf("%d Gets, %d Lookups (%d read-ahead), at most %d bytes held", len(walk), sent, ahead, peak)
}

// TestReadAheadDisabled: a negative ReadAheadBytes sends one Lookup per Get.
func TestReadAheadDisabled(t *testing.T) {
	d := open(t, walrusds.Options{ReadAheadBytes: -1})
	walk := putDAG(t, d, "/ra-off", 2, 5, 1<<10)
	if sent := catDAG(t, d, walk); sent != uint64(len(walk)) {
		t.Fatalf("%d Gets sent %d Lookups; want one each", len(walk), sent)
	}
	if ahead, _, _, _ := walrusds.ReadAheadStats(d); ahead != 0 {
		t.Fatalf("%d read-ahead Lookups with read-ahead disabled", ahead)
	}
}

// TestReadAheadSmallBudget: with a budget of a few leaves the cache never holds more, and
// every byte is still right.
func TestReadAheadSmallBudget(t *testing.T) {
	const budget = 50 << 10
	d := open(t, walrusds.Options{ReadAheadBytes: budget})
	walk := putDAG(t, d, "/ra-small", 3, 12, 20<<10)
	sent := catDAG(t, d, walk)
	ahead, peak, _, _ := walrusds.ReadAheadStats(d)
	if peak > budget || ahead == 0 {
		t.Fatalf("held up to %d bytes over a budget of %d (%d read-ahead Lookups)", peak,
			budget, ahead)
	}
	if sent >= uint64(len(walk)) {
		t.Fatalf("%d Gets sent %d Lookups; the read-ahead should still save some", len(walk), sent)
	}
}

// TestReadAheadIgnoresOtherValues: a leaf, a value that only looks like dag-pb and a dag-pb
// node under a key that is not a block key start no read-ahead.
func TestReadAheadIgnoresOtherValues(t *testing.T) {
	d := open(t, walrusds.Options{})
	walk := putDAG(t, d, "/ra-other", 1, 3, 100)
	leaf := walk[len(walk)-1]
	junk := []byte{0x12, 0xff, 0xff, 0xff} // tag of Links, then a truncated length
	keys := putAll(t, d, "/ra-other-junk", [][]byte{junk, walk[0].value})
	ctx := context.Background()
	for _, k := range []ds.Key{leaf.key, keys[0], keys[1]} {
		if _, err := d.Get(ctx, k); err != nil {
			t.Fatalf("Get(%s): %v", k, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if ahead, _, held, workers := walrusds.ReadAheadStats(d); ahead != 0 || held != 0 || workers != 0 {
		t.Fatalf("%d read-ahead Lookups, %d bytes held, %d workers after a leaf and non-block "+
			"values", ahead, held, workers)
	}
}

// TestReadAheadCoherence: a Delete or Put of an anticipated key drops it from the cache; the
// next Get sees the service's state.
func TestReadAheadCoherence(t *testing.T) {
	d := open(t, walrusds.Options{})
	walk := putDAG(t, d, "/ra-coherent", 1, 6, 1<<10)
	ctx := context.Background()
	for _, blk := range walk[:2] { // root, then the intermediate node: its leaves are read ahead
		if _, err := d.Get(ctx, blk.key); err != nil {
			t.Fatal(err)
		}
	}
	waitHeld(t, d, 6<<10)
	deleted, rewritten := walk[2], walk[3]
	if err := d.Delete(ctx, deleted.key); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, deleted.key); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("Get after Delete of a read-ahead key = %v, want ErrNotFound", err)
	}
	if err := d.Put(ctx, deleted.key, deleted.value); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, rewritten.key, rewritten.value); err != nil {
		t.Fatal(err)
	}
	b, _ := d.Batch(ctx)
	_ = b.Delete(ctx, walk[4].key)
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	before := lookupsSent(d)
	for _, blk := range []block{deleted, rewritten} {
		if v, err := d.Get(ctx, blk.key); err != nil || !bytes.Equal(v, blk.value) {
			t.Fatalf("Get after Put: %d bytes, %v", len(v), err)
		}
	}
	if _, err := d.Get(ctx, walk[4].key); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("Get after a batch deleted a read-ahead key = %v, want ErrNotFound", err)
	}
	if sent := lookupsSent(d) - before; sent != 3 {
		t.Fatalf("Gets of 3 rewritten keys sent %d Lookups; want each to ask the service", sent)
	}
	for _, blk := range walk[5:] { // untouched: still served from the cache
		if v, err := d.Get(ctx, blk.key); err != nil || !bytes.Equal(v, blk.value) {
			t.Fatalf("Get of an untouched key: %d bytes, %v", len(v), err)
		}
	}
	if _, _, held, _ := walrusds.ReadAheadStats(d); held != 0 {
		t.Fatalf("%d bytes still held after every anticipated Get", held)
	}
}

// waitHeld waits until the read-ahead caches at least n bytes.
func waitHeld(t *testing.T, d *walrusds.Datastore, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, held, _ := walrusds.ReadAheadStats(d)
		if held >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("read-ahead holds %d bytes, want at least %d", held, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadAheadCloseInFlight: Close returns at once while read-ahead Lookups wait for answers
// the service holds back, and every worker is gone after it.
func TestReadAheadCloseInFlight(t *testing.T) {
	const inner, leaves = 3, 8
	walk := putDAG(t, open(t, walrusds.Options{}), "/ra-close", inner, leaves, 1<<10)
	p, addr := newProxy(t, testservice.Addr(t))
	d := open(t, walrusds.Options{Addresses: []string{addr}})
	if _, err := d.Get(context.Background(), walk[0].key); err != nil {
		t.Fatal(err)
	}
	var mids int64
	for i := range inner {
		mids += int64(len(walk[1+i*(leaves+1)].value))
	}
	waitHeld(t, d, mids) // every intermediate node is cached
	p.pause(true)
	// Served from the cache; the read-ahead of its leaves is held back by the proxy.
	if v, err := d.Get(context.Background(), walk[1].key); err != nil || !bytes.Equal(v, walk[1].value) {
		t.Fatalf("Get of a cached intermediate node: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if ahead, _, _, workers := walrusds.ReadAheadStats(d); ahead < 2 || workers == 0 {
		t.Fatalf("%d read-ahead Lookups, %d workers; want the leaves' in flight", ahead, workers)
	}
	done := make(chan struct{})
	start := time.Now()
	go func() { _ = d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close with read-ahead in flight did not return")
	}
	if _, _, held, workers := walrusds.ReadAheadStats(d); workers != 0 || held != 0 {
		t.Fatalf("after Close: %d workers, %d bytes held", workers, held)
	}
	t.Logf("Close took %v", time.Since(start))
	p.pause(false)
	_, err := d.Get(context.Background(), walk[2].key)
	if !errors.Is(err, walrusds.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
}

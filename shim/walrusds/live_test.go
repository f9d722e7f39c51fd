package walrusds_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/walrusds/walrusds/shim/internal/testservice"
	"github.com/walrusds/walrusds/shim/walrusds"
)

// putAll stores values under prefix with one batch and deletes them when the test ends.
func putAll(t *testing.T, d *walrusds.Datastore, prefix string, values [][]byte) []ds.Key {
	t.Helper()
	ctx := context.Background()
	b, err := d.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]ds.Key, len(values))
	for i, v := range values {
		keys[i] = ds.NewKey(fmt.Sprintf("%s/%06d", prefix, i))
		if err := b.Put(ctx, keys[i], v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := d.Batch(ctx)
		for _, k := range keys {
			_ = b.Delete(ctx, k)
		}
		_ = b.Commit(ctx)
	})
	return keys
}

func randomValues(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size+i%7)
		_, _ = rand.Read(out[i])
	}
	return out
}

// TestConcurrentLookups is bitswap's pattern: hundreds of goroutines asking Has, GetSize and
// Get for present and absent keys at once. Every answer must be the one for its own key.
func TestConcurrentLookups(t *testing.T) {
	d := open(t, walrusds.Options{})
	values := randomValues(300, 100)
	keys := putAll(t, d, "/concurrent", values)
	ctx := context.Background()
	errs := make(chan error, 1024)
	var wg sync.WaitGroup
	for w := range 256 {
		wg.Go(func() {
			for i := w % 7; i < len(keys); i += 37 {
				missing := ds.NewKey(fmt.Sprintf("/concurrent-missing/%d/%d", w, i))
				if has, err := d.Has(ctx, keys[i]); err != nil || !has {
					errs <- fmt.Errorf("Has(%s) = %v, %v", keys[i], has, err)
				}
				if size, err := d.GetSize(ctx, keys[i]); err != nil || size != len(values[i]) {
					errs <- fmt.Errorf("GetSize(%s) = %d, %v; want %d", keys[i], size, err, len(values[i]))
				}
				if v, err := d.Get(ctx, keys[i]); err != nil || !bytes.Equal(v, values[i]) {
					errs <- fmt.Errorf("Get(%s) returned other bytes or %v", keys[i], err)
				}
				if has, err := d.Has(ctx, missing); err != nil || has {
					errs <- fmt.Errorf("Has(missing) = %v, %v", has, err)
				}
				if size, err := d.GetSize(ctx, missing); err != ds.ErrNotFound || size != -1 {
					errs <- fmt.Errorf("GetSize(missing) = %d, %v; want -1 and the bare ErrNotFound", size, err)
				}
				if v, err := d.Get(ctx, missing); err != ds.ErrNotFound || v != nil {
					errs <- fmt.Errorf("Get(missing) = %v, %v; want nil and the bare ErrNotFound", v, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLargeValues crosses gRPC's 4 MiB default message limit both ways, alone and in a batch.
func TestLargeValues(t *testing.T) {
	d := open(t, walrusds.Options{})
	ctx := context.Background()
	big := randomValues(1, 6<<20)[0]
	key := ds.NewKey("/large/one")
	if err := d.Put(ctx, key, big); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Delete(ctx, key) })
	got, err := d.Get(ctx, key)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 6 MiB value did not come back intact: %v", err)
	}
	keys := putAll(t, d, "/large/batch", randomValues(3, 3<<20))
	if size, err := d.GetSize(ctx, keys[2]); err != nil || size < 3<<20 {
		t.Fatalf("GetSize after a 9 MiB batch: %d, %v", size, err)
	}
	usage, err := d.DiskUsage(ctx)
	if err != nil || usage < 15<<20 {
		t.Fatalf("DiskUsage = %d, %v; want at least the 15 MiB just stored", usage, err)
	}
}

// TestQueryStopsOnCancelAndClose: a long scan ends promptly with context.Canceled when the
// caller cancels, and Close mid-stream returns at once.
func TestQueryStopsOnCancelAndClose(t *testing.T) {
	d := open(t, walrusds.Options{})
	putAll(t, d, "/scan", randomValues(5000, 8))
	q := dsq.Query{Prefix: "/scan", KeysOnly: true}

	ctx, cancel := context.WithCancel(context.Background())
	res, err := d.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if first, ok := res.NextSync(); !ok || first.Error != nil {
		t.Fatalf("first result: %v %v", first, ok)
	}
	cancel()
	var last error
	n := 1
	for r := range res.Next() {
		if r.Error != nil {
			last = r.Error
			break
		}
		n++
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("after cancel the results ended with %v after %d entries, want context.Canceled", last, n)
	}
	_ = res.Close()

	res, err = d.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.NextSync(); !ok {
		t.Fatal("no first result")
	}
	done := make(chan struct{})
	go func() { _ = res.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close in the middle of a stream did not return")
	}

	all, err := d.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := all.Rest()
	if err != nil || len(entries) != 5000 {
		t.Fatalf("a full scan returned %d entries, %v; want 5000", len(entries), err)
	}
	if !reflect.DeepEqual(all.Query(), q) {
		t.Fatalf("Results.Query() = %v, want the caller's query", all.Query())
	}
}

func TestOpenRefusesAnotherDataset(t *testing.T) {
	_, err := walrusds.Open(context.Background(), walrusds.Options{
		Addresses: []string{testservice.Addr(t)}, Dataset: "not-this-one",
	})
	if err == nil || !strings.Contains(err.Error(), `"not-this-one"`) {
		t.Fatalf("opening with the wrong dataset name gave %v", err)
	}
}

func TestOpenFailsClearlyWhenNothingAnswers(t *testing.T) {
	addr := "unix:" + t.TempDir() + "/nobody.sock"
	start := time.Now()
	_, err := walrusds.Open(context.Background(), walrusds.Options{
		Addresses: []string{addr}, ConnectTimeout: 3 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("want an error naming %s, got %v", addr, err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Open took %v to give up", time.Since(start))
	}
}

// TestSeveralAddresses: calls are spread over the addresses, and one that does not answer
// neither stops Open nor fails calls while another does.
func TestSeveralAddresses(t *testing.T) {
	live := testservice.Addr(t)
	dead := "unix:" + t.TempDir() + "/down.sock"
	d := open(t, walrusds.Options{Addresses: []string{dead, live, dead}})
	ctx := context.Background()
	key := ds.NewKey("/several/addresses")
	for i := range 20 {
		if err := d.Put(ctx, key, []byte{byte(i)}); err != nil {
			t.Fatalf("put %d with one address down: %v", i, err)
		}
		if v, err := d.Get(ctx, key); err != nil || !bytes.Equal(v, []byte{byte(i)}) {
			t.Fatalf("get %d with one address down: %v %v", i, v, err)
		}
	}
	if err := d.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
}

func TestClosedDatastore(t *testing.T) {
	d := open(t, walrusds.Options{})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(context.Background(), ds.NewKey("/x")); !errors.Is(err, walrusds.ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

// TestBatchGroupsPuts: a commit mixing thousands of small puts, a value above the message
// bound and deletes lands whole, with the puts grouped into messages ("batch-puts") and,
// against a service that does not report that feature, one put per message.
func TestBatchGroupsPuts(t *testing.T) {
	for _, grouped := range []bool{true, false} {
		t.Run(fmt.Sprintf("grouped=%v", grouped), func(t *testing.T) {
			d := open(t, walrusds.Options{})
			if !grouped {
				walrusds.WithoutFeature(d, "batch-puts")
			}
			ctx := context.Background()
			prefix := fmt.Sprintf("/grouped-%v", grouped)
			values := randomValues(3000, 4096)
			values[1500] = make([]byte, 3<<20) // travels alone
			keys := putAll(t, d, prefix, values)
			b, err := d.Batch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(keys); i += 10 {
				if err := b.Delete(ctx, keys[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			for i, k := range keys {
				v, err := d.Get(ctx, k)
				if i%10 == 0 {
					if !errors.Is(err, ds.ErrNotFound) {
						t.Fatalf("Get(%s) after delete: %v", k, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(v, values[i]) {
					t.Fatalf("Get(%s): other bytes or %v", k, err)
				}
			}
		})
	}
}

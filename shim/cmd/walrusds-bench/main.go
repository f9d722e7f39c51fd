// Command walrusds-bench measures the walrusds service through the Go shim package, the way
// Kubo reaches it: Batch ingest, coalesced Has/GetSize under concurrency, Get throughput and
// keys-only Query. bench/ (the Python harness) runs it once per figure and reads the one JSON
// object it prints; it is a measuring tool, not part of the plugin.
//
//	walrusds-bench -addr unix:/tmp/x.sock -mode lookup -op has -gen /g/a/ -lo 0 -hi 100000 -c 128
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/walrusds/walrusds/shim/walrusds"
)

type config struct {
	addr, mode, op, prefix, gen string
	size, count, writers, batch int
	lo, hi, conc                int
	duration, lookupWait        time.Duration
	noStream                    bool
	readAhead                   int64
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "", "service address (unix:/path or host:port)")
	flag.StringVar(&c.mode, "mode", "", "ingest | lookup | get | query")
	flag.StringVar(&c.op, "op", "has", "lookup: has | getsize")
	flag.StringVar(&c.prefix, "prefix", "/bench", "ingest/get: key prefix (keys are PREFIX/%08d); query: prefix")
	flag.StringVar(&c.gen, "gen", "", "lookup: prefix of generated keys (PREFIX + hex(sha256(be64(i))))")
	flag.IntVar(&c.size, "size", 4096, "ingest: value size in bytes")
	flag.IntVar(&c.count, "count", 1000, "ingest/get: number of keys")
	flag.IntVar(&c.writers, "writers", 4, "ingest: concurrent batches")
	flag.IntVar(&c.batch, "batch", 64, "ingest: puts per batch commit")
	flag.IntVar(&c.lo, "lo", 0, "lookup: first generated index")
	flag.IntVar(&c.hi, "hi", 1000, "lookup: one past the last generated index")
	flag.IntVar(&c.conc, "c", 1, "lookup/get: concurrent callers")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "lookup: how long to measure")
	flag.DurationVar(&c.lookupWait, "lookup-wait", 0, "Options.LookupMaxWait (0: the shim's default)")
	flag.BoolVar(&c.noStream, "no-stream", false, "Options.NoLookupStream: unary Lookups even when the service offers LookupStream")
	flag.Int64Var(&c.readAhead, "read-ahead", 0, "Options.ReadAheadBytes: DAG read-ahead budget (0: the shim's default; negative: off)")
	flag.Parse()
	out, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "walrusds-bench:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func run(c config) (map[string]any, error) {
	ctx := context.Background()
	d, err := walrusds.Open(ctx, walrusds.Options{Addresses: []string{c.addr},
		LookupMaxWait: c.lookupWait, NoLookupStream: c.noStream, ReadAheadBytes: c.readAhead})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	switch c.mode {
	case "ingest":
		return ingest(ctx, d, c)
	case "lookup":
		return lookup(ctx, d, c)
	case "get":
		return get(ctx, d, c)
	case "query":
		return query(ctx, d, c)
	}
	return nil, fmt.Errorf("unknown -mode %q", c.mode)
}

// GenKey is the key of generated row i, the same expression bench/dataset.py gives Postgres.
func GenKey(prefix string, i int) ds.Key {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	sum := sha256.Sum256(b[:])
	return ds.RawKey(prefix + hex.EncodeToString(sum[:]))
}

func seqKey(prefix string, i int) ds.Key { return ds.RawKey(fmt.Sprintf("%s/%08d", prefix, i)) }

func ingest(ctx context.Context, d *walrusds.Datastore, c config) (map[string]any, error) {
	var next atomic.Int64
	errs := make(chan error, c.writers)
	start := time.Now()
	var wg sync.WaitGroup
	for range c.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(int64(c.batch))) - c.batch
				if first >= c.count {
					return
				}
				b, err := d.Batch(ctx)
				if err != nil {
					errs <- err
					return
				}
				for i := first; i < min(first+c.batch, c.count); i++ {
					v := make([]byte, c.size)
					_, _ = rand.Read(v)
					if err := b.Put(ctx, seqKey(c.prefix, i), v); err != nil {
						errs <- err
						return
					}
				}
				if err := b.Commit(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return map[string]any{"blocks": c.count, "bytes": c.count * c.size, "seconds": secs,
		"blocks_per_s": float64(c.count) / secs,
		"mb_per_s":     float64(c.count*c.size) / secs / 1e6}, nil
}

func lookup(ctx context.Context, d *walrusds.Datastore, c config) (map[string]any, error) {
	lat := make([][]time.Duration, c.conc)
	var failed atomic.Value
	deadline := time.Now().Add(c.duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(w), 7))
			for time.Now().Before(deadline) {
				k := GenKey(c.gen, c.lo+r.IntN(c.hi-c.lo))
				t := time.Now()
				var ok bool
				var err error
				if c.op == "getsize" {
					var n int
					n, err = d.GetSize(ctx, k)
					ok = n >= 0
				} else {
					ok, err = d.Has(ctx, k)
				}
				if err == nil && !ok {
					err = fmt.Errorf("generated key %s is missing", k)
				}
				if err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err, _ := failed.Load().(error); err != nil {
		return nil, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	ms := func(q float64) float64 { return all[int(q*float64(len(all)-1))].Seconds() * 1e3 }
	return map[string]any{"calls": len(all), "seconds": secs,
		"calls_per_s": float64(len(all)) / secs, "p50_ms": ms(0.50), "p99_ms": ms(0.99)}, nil
}

func get(ctx context.Context, d *walrusds.Datastore, c config) (map[string]any, error) {
	var next atomic.Int64
	var total atomic.Int64
	var failed atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range c.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= c.count {
					return
				}
				v, err := d.Get(ctx, seqKey(c.prefix, i))
				if err != nil {
					failed.Store(err)
					return
				}
				total.Add(int64(len(v)))
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err, _ := failed.Load().(error); err != nil {
		return nil, err
	}
	return map[string]any{"blocks": c.count, "bytes": total.Load(), "seconds": secs,
		"blocks_per_s": float64(c.count) / secs,
		"mb_per_s":     float64(total.Load()) / secs / 1e6}, nil
}

func query(ctx context.Context, d *walrusds.Datastore, c config) (map[string]any, error) {
	start := time.Now()
	res, err := d.Query(ctx, dsq.Query{Prefix: c.prefix, KeysOnly: true})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	n := 0
	for r := range res.Next() {
		if r.Error != nil {
			return nil, r.Error
		}
		n++
	}
	secs := time.Since(start).Seconds()
	return map[string]any{"keys": n, "seconds": secs, "keys_per_s": float64(n) / secs}, nil
}

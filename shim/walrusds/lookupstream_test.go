package walrusds_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"google.golang.org/grpc"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
	"github.com/walrusds/walrusds/shim/internal/testservice"
	"github.com/walrusds/walrusds/shim/walrusds"
)

// TestLookupStreamUsedWhenAdvertised: against the live service (which reports "lookup-stream")
// every Has/GetSize/Get goes over one stream, with the same answers as unary Lookups; with
// NoLookupStream they go as unary calls.
func TestLookupStreamUsedWhenAdvertised(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoLookupStream=%v", off), func(t *testing.T) {
			d := open(t, walrusds.Options{NoLookupStream: off})
			values := randomValues(20, 50)
			keys := putAll(t, d, fmt.Sprintf("/lookup-stream-%v", off), values)
			ctx := context.Background()
			for i, k := range keys {
				if has, err := d.Has(ctx, k); err != nil || !has {
					t.Fatalf("Has(%s) = %v, %v", k, has, err)
				}
				if size, err := d.GetSize(ctx, k); err != nil || size != len(values[i]) {
					t.Fatalf("GetSize(%s) = %d, %v", k, size, err)
				}
				if v, err := d.Get(ctx, k); err != nil || string(v) != string(values[i]) {
					t.Fatalf("Get(%s): other bytes or %v", k, err)
				}
			}
			missing := ds.NewKey("/lookup-stream/missing")
			if has, err := d.Has(ctx, missing); err != nil || has {
				t.Fatalf("Has(missing) = %v, %v", has, err)
			}
			if _, err := d.Get(ctx, missing); err != ds.ErrNotFound {
				t.Fatalf("Get(missing) = %v, want the bare ErrNotFound", err)
			}
			stream, unary, opened := walrusds.LookupTransports(d)
			if off {
				if stream != 0 || unary == 0 || opened != 0 {
					t.Fatalf("NoLookupStream: %d stream and %d unary Lookups, %d streams opened",
						stream, unary, opened)
				}
				return
			}
			if stream < 60 || unary != 0 || opened != 1 {
				t.Fatalf("%d stream and %d unary Lookups, %d streams opened; want every Lookup "+
					"on one stream", stream, unary, opened)
			}
		})
	}
}

// proxy forwards a unix socket to the live service and can hold the service's answers back
// (pause) or reset every connection (cut), as a service restart would.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	cond     *sync.Cond
	paused   bool
	conns    []net.Conn
}

func newProxy(t *testing.T, upstream string) (*proxy, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wls-") // short: unix socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() { _ = ln.Close(); p.cut(); _ = os.RemoveAll(dir) })
	go p.accept()
	return p, "unix:" + sock
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		var u net.Conn
		if path, ok := strings.CutPrefix(p.upstream, "unix:"); ok {
			u, err = net.Dial("unix", path)
		} else {
			u, err = net.Dial("tcp", p.upstream)
		}
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(u, c, false)
		go p.pipe(c, u, true)
	}
}

// pipe copies src to dst; answers (gated) wait while the proxy is paused.
func (p *proxy) pipe(dst, src net.Conn, gated bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if gated {
				p.mu.Lock()
				for p.paused {
					p.cond.Wait()
				}
				p.mu.Unlock()
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

func (p *proxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.cond.Broadcast()
	p.mu.Unlock()
}

// cut closes every connection (the client sees them reset) and stops holding answers back.
func (p *proxy) cut() {
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// TestLookupStreamBreakMidFlight: lookups waiting on a stream that breaks are sent again as
// unary calls (they only read) and get their answers; the next lookup opens a new stream.
func TestLookupStreamBreakMidFlight(t *testing.T) {
	p, addr := newProxy(t, testservice.Addr(t))
	d := open(t, walrusds.Options{Addresses: []string{addr}})
	ctx := context.Background()
	key := putAll(t, d, "/lookup-stream-break", randomValues(1, 10))[0]
	if has, err := d.Has(ctx, key); err != nil || !has {
		t.Fatalf("Has before the break = %v, %v", has, err)
	}
	p.pause(true)
	const callers = 5
	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			_, err := d.GetSize(ctx, ds.NewKey(fmt.Sprintf("/lookup-stream-break/%d", i)))
			errs <- err
		}()
	}
	select {
	case err := <-errs:
		t.Fatalf("a lookup returned %v while the service's answers were held back", err)
	case <-time.After(200 * time.Millisecond):
	}
	p.cut()
	for range callers {
		select {
		case err := <-errs:
			if !errors.Is(err, ds.ErrNotFound) {
				t.Fatalf("a caller waiting on a broken stream got %v, want its answer "+
					"(not found) through the unary resend", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a caller waiting on a broken stream did not return")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		has, err := d.Has(ctx, key)
		if err == nil && has {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Has after the break = %v, %v", has, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, unary, opened := walrusds.LookupTransports(d); opened != 2 || unary < 1 || unary > callers {
		// The coalescer may have put several callers' keys into one Lookup.
		t.Fatalf("%d streams opened, %d unary Lookups; want 1-%d unary resends and a "+
			"second stream after the break", opened, unary, callers)
	}
}

// TestLookupStreamCallerContext: a caller whose context expires returns at once; its answer,
// when it comes, is dropped and the stream goes on serving.
func TestLookupStreamCallerContext(t *testing.T) {
	p, addr := newProxy(t, testservice.Addr(t))
	d := open(t, walrusds.Options{Addresses: []string{addr}})
	key := putAll(t, d, "/lookup-stream-ctx", randomValues(1, 10))[0]
	if _, err := d.Has(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	p.pause(true)
	for _, cancelled := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if cancelled {
			go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		}
		start := time.Now()
		_, err := d.Has(ctx, key)
		waited := time.Since(start)
		cancel()
		want := context.DeadlineExceeded
		if cancelled {
			want = context.Canceled
		}
		if !errors.Is(err, want) || waited > time.Second {
			t.Fatalf("Has with a context that ends: %v after %v, want %v at once", err, waited, want)
		}
	}
	p.pause(false)
	for range 3 {
		if has, err := d.Has(context.Background(), key); err != nil || !has {
			t.Fatalf("Has after dropped answers = %v, %v", has, err)
		}
	}
	if _, _, opened := walrusds.LookupTransports(d); opened != 1 {
		t.Fatalf("%d streams opened; dropped answers must not break the stream", opened)
	}
}

// fakeService implements only Info and Lookup: an older service, with or without the
// "lookup-stream" feature in Info. It is used for the fallback only; everything else runs
// against the real service.
type fakeService struct {
	pb.UnimplementedDatastoreServer
	features []string
	lookups  atomic.Int32
}

func (f *fakeService) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Version: "fake", Features: f.features, Dataset: "fake"}, nil
}

func (f *fakeService) Lookup(_ context.Context, r *pb.LookupRequest) (*pb.LookupResponse, error) {
	f.lookups.Add(1)
	out := &pb.LookupResponse{}
	for range r.GetKeys() {
		out.Results = append(out.Results, &pb.LookupResult{
			Status: pb.LookupStatus_LOOKUP_STATUS_NOT_FOUND, Size: -1})
	}
	return out, nil
}

func TestLookupStreamFallsBackToUnary(t *testing.T) {
	for _, advertised := range []bool{true, false} {
		t.Run(fmt.Sprintf("advertised=%v", advertised), func(t *testing.T) {
			f := &fakeService{features: []string{"lookup"}}
			if advertised { // but answers UNIMPLEMENTED
				f.features = append(f.features, "lookup-stream")
			}
			dir, err := os.MkdirTemp("", "wls-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			ln, err := net.Listen("unix", filepath.Join(dir, "f.sock"))
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			pb.RegisterDatastoreServer(srv, f)
			go func() { _ = srv.Serve(ln) }()
			defer srv.Stop()
			d := open(t, walrusds.Options{Addresses: []string{"unix:" + ln.Addr().String()}})
			for i := range 5 {
				if has, err := d.Has(context.Background(), ds.NewKey(fmt.Sprintf("/f/%d", i))); err != nil || has {
					t.Fatalf("Has = %v, %v", has, err)
				}
			}
			stream, unary, opened := walrusds.LookupTransports(d)
			if stream != 0 || unary != 5 || f.lookups.Load() != 5 {
				t.Fatalf("%d stream and %d unary Lookups (%d served); want 5 unary", stream,
					unary, f.lookups.Load())
			}
			if want := map[bool]uint64{true: 1, false: 0}[advertised]; opened != want {
				t.Fatalf("%d streams opened, want %d (one try, then unary for good)", opened, want)
			}
		})
	}
}

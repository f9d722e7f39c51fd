package walrusds

import (
	"context"
	"errors"
	"io"
	"sync"

	dsq "github.com/ipfs/go-datastore/query"
	"google.golang.org/grpc"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// Query runs q on the service (see queryPlan for what is pushed down) and streams the
// results. Results.Query returns q itself. The stream stops when ctx is cancelled (the
// results then end with ctx's error) or when the results are closed.
func (d *Datastore) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	p := planQuery(q)
	sctx, cancel := context.WithCancel(ctx)
	stream, err := d.pool.pick().client.Query(sctx, p.req, d.callOpts...)
	if err != nil {
		cancel()
		return nil, d.rpcError(ctx, "query", []byte(q.Prefix), err)
	}
	s := &queryStream{d: d, ctx: ctx, stream: stream, cancel: cancel,
		keysOnly: q.KeysOnly, prefix: q.Prefix}
	r := dsq.ResultsFromIterator(q, dsq.Iterator{Next: s.next, Close: s.close})
	if !p.local() {
		return r, nil
	}
	return dsq.ResultsReplaceQuery(applyLocal(p, r), q), nil
}

// queryStream turns the service's pages of entries into go-datastore results, one Recv per
// page. next is called from one goroutine at a time (go-datastore's iterator contract).
type queryStream struct {
	d        *Datastore
	ctx      context.Context
	stream   grpc.ServerStreamingClient[pb.QueryResponse]
	cancel   context.CancelFunc
	keysOnly bool
	prefix   string

	page []*pb.QueryEntry
	done bool
	once sync.Once
}

func (s *queryStream) next() (dsq.Result, bool) {
	for len(s.page) == 0 {
		if s.done {
			return dsq.Result{}, false
		}
		resp, err := s.stream.Recv()
		if err != nil {
			s.done = true
			_ = s.close()
			if errors.Is(err, io.EOF) {
				return dsq.Result{}, false
			}
			return dsq.Result{Error: s.d.rpcError(s.ctx, "query", []byte(s.prefix), err)}, true
		}
		s.page = resp.GetEntries()
	}
	e := s.page[0]
	s.page[0] = nil
	s.page = s.page[1:]
	entry := dsq.Entry{Key: string(e.GetKey()), Size: int(e.GetSize())}
	if !s.keysOnly {
		entry.Value = e.GetValue()
		if entry.Value == nil {
			entry.Value = []byte{}
		}
	}
	return dsq.Result{Entry: entry}, true
}

// close ends the stream; go-datastore may call it more than once.
func (s *queryStream) close() error {
	s.once.Do(s.cancel)
	return nil
}

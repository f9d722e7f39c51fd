package walrusds

import (
	"context"
	"errors"
	"io"
	"slices"
	"sort"
	"sync"

	ds "github.com/ipfs/go-datastore"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// batch buffers puts and deletes here (the last operation on a key wins) and streams them to
// the service on Commit, one operation per message, so no message limit caps a batch. The
// service applies them in one transaction when the stream ends: nothing is visible before
// Commit, and an abandoned batch leaves no trace.
type batch struct {
	d   *Datastore
	mu  sync.Mutex
	ops map[string]batchOp
}

type batchOp struct {
	value  []byte
	delete bool
}

// Batch starts a batch. It is not transactional across Commit calls; reuse after Commit is
// allowed and starts empty.
func (d *Datastore) Batch(context.Context) (ds.Batch, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	return &batch{d: d, ops: map[string]batchOp{}}, nil
}

func (b *batch) Put(_ context.Context, key ds.Key, value []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops[key.String()] = batchOp{value: value}
	return nil
}

func (b *batch) Delete(_ context.Context, key ds.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops[key.String()] = batchOp{delete: true}
	return nil
}

// Commit streams the buffered operations, in key order, and waits until the service applied
// them.
func (b *batch) Commit(ctx context.Context) error {
	b.mu.Lock()
	ops := b.ops
	b.ops = map[string]batchOp{}
	b.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d := b.d
	if d.ahead != nil {
		defer d.ahead.invalidateStrings(keys)
	}
	if d.ReadOnly() {
		return d.readOnlyBatch(ctx, keys, ops)
	}
	err := d.unary(ctx, func(ctx context.Context, c pb.DatastoreClient) error {
		return sendBatch(ctx, d, c, keys, ops)
	})
	if err != nil {
		return d.rpcError(ctx, "batch-commit", nil, err)
	}
	return nil
}

func sendBatch(ctx context.Context, d *Datastore, c pb.DatastoreClient, keys []string,
	ops map[string]batchOp) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a stream that does not finish must not be applied: cancel it
	stream, err := c.Batch(ctx, d.callOpts...)
	if err != nil {
		return err
	}
	send := func(req *pb.BatchRequest) error {
		err := stream.Send(req)
		if errors.Is(err, io.EOF) {
			// the service ended the call early; its status says why
			_, err = stream.CloseAndRecv()
		}
		return err
	}
	grouped := d.groupsPuts()
	var puts []*pb.BatchPut
	pending := 0
	flush := func() error {
		if len(puts) == 0 {
			return nil
		}
		req := &pb.BatchRequest{Puts: puts}
		puts, pending = nil, 0
		return send(req)
	}
	for _, k := range keys {
		op := ops[k]
		switch {
		case op.delete:
			if err := flush(); err != nil {
				return err
			}
			del := &pb.BatchRequest_Delete{Delete: &pb.BatchDelete{Key: []byte(k)}}
			if err := send(&pb.BatchRequest{Op: del}); err != nil {
				return err
			}
		case grouped:
			size := len(k) + len(op.value)
			if len(puts) > 0 && (pending+size > batchMessageBytes || len(puts) >= batchMessagePuts) {
				if err := flush(); err != nil {
					return err
				}
			}
			puts = append(puts, &pb.BatchPut{Key: []byte(k), Value: op.value})
			pending += size
		default:
			put := &pb.BatchRequest_Put{Put: &pb.BatchPut{Key: []byte(k), Value: op.value}}
			if err := send(&pb.BatchRequest{Op: put}); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

// Puts are grouped into stream messages of up to batchMessageBytes (or batchMessagePuts
// puts) when the service reports the "batch-puts" feature: the service's cost is per message,
// so 4 KiB blocks sent one per message ran at a fraction of what PostgreSQL could stage. A
// value larger than the bound travels alone.
const (
	batchMessageBytes = 1 << 20
	batchMessagePuts  = 1024
)

// groupsPuts reports whether the service takes several puts per Batch message.
func (d *Datastore) groupsPuts() bool {
	return slices.Contains(d.info.GetFeatures(), "batch-puts")
}

package walrusds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	ds "github.com/ipfs/go-datastore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// Datastore forwards go-datastore calls to a walrusds service. It is safe for concurrent use.
type Datastore struct {
	opts     Options
	pool     *pool
	info     *pb.InfoResponse
	callOpts []grpc.CallOption // message limits from Info

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	sizes  *coalescer // Has and GetSize
	values *coalescer // Get
	ahead  *readAhead // nil when disabled or without the "lookup" feature

	closeOnce sync.Once

	streamLookups, unaryLookups atomic.Uint64 // Lookups sent each way, for tests
}

var (
	_ ds.Batching            = (*Datastore)(nil)
	_ ds.PersistentDatastore = (*Datastore)(nil)
)

// Open connects to the service and checks, with Info, that it serves opts.Dataset. At least
// one address must answer within opts.ConnectTimeout; every address that answers must serve
// the same dataset.
func Open(ctx context.Context, opts Options) (*Datastore, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("walrusds: %w", err)
	}
	opts = opts.withDefaults()
	p, err := dial(opts)
	if err != nil {
		return nil, fmt.Errorf("walrusds: %w", err)
	}
	info, err := checkIdentity(ctx, p, opts)
	if err != nil {
		p.close()
		return nil, err
	}
	dctx, cancel := context.WithCancel(context.Background())
	d := &Datastore{opts: opts, pool: p, info: info, callOpts: messageLimits(info),
		ctx: dctx, cancel: cancel}
	if slices.Contains(info.GetFeatures(), "lookup") {
		d.sizes = newCoalescer(dctx, pb.LookupMode_LOOKUP_MODE_SIZE, d.sendLookup,
			opts.LookupMaxKeys, opts.LookupMaxWait)
		d.sizes.maxInflight = sizeLookupsInflight
		d.values = newCoalescer(dctx, pb.LookupMode_LOOKUP_MODE_GET, d.sendLookup,
			opts.LookupMaxKeys, opts.LookupMaxWait)
		if slices.Contains(info.GetFeatures(), "lookup-stream") && !opts.NoLookupStream {
			for _, e := range p.endpoints {
				e.lookups = newLookupStream(dctx, e.client, d.callOpts)
			}
		}
		if opts.ReadAheadBytes > 0 {
			d.ahead = newReadAhead(dctx, d.sendLookup, opts.ReadAheadBytes, opts.ReadAheadTTL)
		}
	}
	return d, nil
}

// Info is what the service reported when the datastore was opened.
func (d *Datastore) Info() *pb.InfoResponse { return d.info }

// ReadOnly reports whether the service refuses writes (a retrieval node).
func (d *Datastore) ReadOnly() bool { return d.info.GetReadOnly() }

// messageLimits sizes messages to the service's limit; before Info answers, the dial
// options' default applies.
func messageLimits(info *pb.InfoResponse) []grpc.CallOption {
	limit := int(info.GetMaxMessageSize())
	if limit <= 0 {
		return nil
	}
	return []grpc.CallOption{grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit)}
}

// unary runs one call with the call timeout. When the endpoint answers UNAVAILABLE (after
// gRPC's own retries) the call moves to the next endpoint, once per endpoint.
func (d *Datastore) unary(ctx context.Context, call func(context.Context, pb.DatastoreClient) error) error {
	return d.onEndpoint(ctx, func(ctx context.Context, e *endpoint) error {
		return call(ctx, e.client)
	})
}

// onEndpoint is unary for calls that need the endpoint itself (its lookup stream).
func (d *Datastore) onEndpoint(ctx context.Context, call func(context.Context, *endpoint) error) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if d.opts.CallTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.opts.CallTimeout)
		defer cancel()
	}
	var err error
	for range d.pool.endpoints {
		err = call(ctx, d.pool.pick())
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (d *Datastore) checkOpen() error {
	if d.isClosed() {
		return ErrClosed
	}
	return nil
}

func (d *Datastore) isClosed() bool { return d.ctx.Err() != nil }

// Get returns key's value; the bare ds.ErrNotFound when it is absent. A value the read-ahead
// anticipated comes from its cache; a dag-pb node's children are read ahead in turn.
func (d *Datastore) Get(ctx context.Context, key ds.Key) ([]byte, error) {
	k := key.Bytes()
	if d.ahead == nil {
		return d.get(ctx, k)
	}
	v, ok, err := d.ahead.take(ctx, k)
	if err != nil {
		return nil, d.rpcError(ctx, "get", k, err)
	}
	if !ok {
		if v, err = d.get(ctx, k); err != nil {
			return nil, err
		}
	}
	d.ahead.schedule(k, v)
	return v, nil
}

// forget drops keys from the read-ahead once a write touched them (whether it succeeded).
func (d *Datastore) forget(keys ...[]byte) {
	if d.ahead != nil {
		d.ahead.invalidate(keys...)
	}
}

func (d *Datastore) get(ctx context.Context, k []byte) ([]byte, error) {
	if d.values == nil {
		return d.getUnary(ctx, k)
	}
	r, err := d.values.lookup(ctx, k)
	if err != nil {
		return nil, d.rpcError(ctx, "get", k, err)
	}
	switch r.GetStatus() {
	case pb.LookupStatus_LOOKUP_STATUS_FOUND:
		if v := r.GetValue(); v != nil {
			return v, nil
		}
		return []byte{}, nil
	case pb.LookupStatus_LOOKUP_STATUS_NOT_FOUND:
		return nil, ds.ErrNotFound
	case pb.LookupStatus_LOOKUP_STATUS_DEFERRED:
		return d.getUnary(ctx, k)
	}
	return nil, lookupResultError("get", k, r)
}

func (d *Datastore) getUnary(ctx context.Context, k []byte) ([]byte, error) {
	var resp *pb.GetResponse
	err := d.unary(ctx, func(ctx context.Context, c pb.DatastoreClient) (err error) {
		resp, err = c.Get(ctx, &pb.GetRequest{Key: k}, d.callOpts...)
		return err
	})
	if err != nil {
		return nil, d.rpcError(ctx, "get", k, err)
	}
	if v := resp.GetValue(); v != nil {
		return v, nil
	}
	return []byte{}, nil
}

// Has reports whether key exists; a missing key is (false, nil).
func (d *Datastore) Has(ctx context.Context, key ds.Key) (bool, error) {
	_, err := d.GetSize(ctx, key)
	if err == nil {
		return true, nil
	}
	if err == ds.ErrNotFound { //nolint:errorlint // go-datastore's sentinel is compared by identity
		return false, nil
	}
	var e *Error
	if errors.As(err, &e) {
		e.Op = "has"
	}
	return false, err
}

// GetSize returns the size of key's value; -1 and the bare ds.ErrNotFound when it is absent.
func (d *Datastore) GetSize(ctx context.Context, key ds.Key) (int, error) {
	k := key.Bytes()
	if d.sizes == nil {
		var resp *pb.GetSizeResponse
		err := d.unary(ctx, func(ctx context.Context, c pb.DatastoreClient) (err error) {
			resp, err = c.GetSize(ctx, &pb.GetSizeRequest{Key: k}, d.callOpts...)
			return err
		})
		if err != nil {
			return -1, d.rpcError(ctx, "get-size", k, err)
		}
		return int(resp.GetSize()), nil
	}
	r, err := d.sizes.lookup(ctx, k)
	if err != nil {
		return -1, d.rpcError(ctx, "get-size", k, err)
	}
	switch r.GetStatus() {
	case pb.LookupStatus_LOOKUP_STATUS_FOUND, pb.LookupStatus_LOOKUP_STATUS_DEFERRED:
		return int(r.GetSize()), nil
	case pb.LookupStatus_LOOKUP_STATUS_NOT_FOUND:
		return -1, ds.ErrNotFound
	}
	return -1, lookupResultError("get-size", k, r)
}

// sendLookup is the coalescers' transport: one Lookup, checked to answer every key. It goes
// on the endpoint's LookupStream when the service has the feature, else as a unary call.
func (d *Datastore) sendLookup(ctx context.Context, mode pb.LookupMode, keys [][]byte) ([]*pb.LookupResult, error) {
	req := &pb.LookupRequest{Mode: mode, Keys: keys}
	var resp *pb.LookupResponse
	err := d.onEndpoint(ctx, func(ctx context.Context, e *endpoint) (err error) {
		if e.lookups != nil {
			resp, err = e.lookups.lookup(ctx, req)
			// UNIMPLEMENTED: unary from now on. UNAVAILABLE (the stream broke under this
			// lookup, or the service could not answer it): a Lookup only reads, so it is sent
			// once more as a unary call, which has gRPC's retries as every unary call has.
			retry := errors.Is(err, errStreamUnimplemented) ||
				(status.Code(err) == codes.Unavailable && ctx.Err() == nil)
			if !retry {
				d.streamLookups.Add(1)
				return err
			}
		}
		d.unaryLookups.Add(1)
		resp, err = e.client.Lookup(ctx, req, d.callOpts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if got := len(resp.GetResults()); got != len(keys) {
		return nil, status.Errorf(codes.Internal,
			"lookup of %d keys answered %d results", len(keys), got)
	}
	return resp.GetResults(), nil
}

func lookupResultError(op string, key []byte, r *pb.LookupResult) error {
	if r.GetStatus() == pb.LookupStatus_LOOKUP_STATUS_ERROR {
		return lookupError(op, key, r.GetErrorCode(), r.GetErrorMessage())
	}
	return lookupError(op, key, int32(codes.Internal),
		fmt.Sprintf("lookup answered unknown status %d", r.GetStatus()))
}

// Put stores value under key. It returns once the value is durable in Postgres.
func (d *Datastore) Put(ctx context.Context, key ds.Key, value []byte) error {
	k := key.Bytes()
	defer d.forget(k)
	if d.ReadOnly() {
		return d.readOnlyPut(ctx, k, value)
	}
	err := d.unary(ctx, func(ctx context.Context, c pb.DatastoreClient) error {
		_, err := c.Put(ctx, &pb.PutRequest{Key: k, Value: value}, d.callOpts...)
		return err
	})
	if err != nil {
		return d.rpcError(ctx, "put", k, err)
	}
	return nil
}

// Delete removes key; deleting a missing key succeeds.
func (d *Datastore) Delete(ctx context.Context, key ds.Key) error {
	k := key.Bytes()
	defer d.forget(k)
	if d.ReadOnly() {
		return d.readOnlyDelete(ctx, k)
	}
	err := d.unary(ctx, func(ctx context.Context, c pb.DatastoreClient) error {
		_, err := c.Delete(ctx, &pb.DeleteRequest{Key: k}, d.callOpts...)
		return err
	})
	if err != nil {
		return d.rpcError(ctx, "delete", k, err)
	}
	return nil
}

// Sync is go-datastore's durability barrier. Every acknowledged write is already durable, so
// the service only checks that its index answers.
func (d *Datastore) Sync(ctx context.Context, prefix ds.Key) error {
	k := prefix.Bytes()
	err := d.unary(ctx, func(ctx context.Context, c pb.DatastoreClient) error {
		_, err := c.Sync(ctx, &pb.SyncRequest{Prefix: k}, d.callOpts...)
		return err
	})
	if err != nil {
		return d.rpcError(ctx, "sync", k, err)
	}
	return nil
}

// DiskUsage reports the live bytes the service stores for this dataset.
func (d *Datastore) DiskUsage(ctx context.Context) (uint64, error) {
	var resp *pb.DiskUsageResponse
	err := d.unary(ctx, func(ctx context.Context, c pb.DatastoreClient) (err error) {
		resp, err = c.DiskUsage(ctx, &pb.DiskUsageRequest{}, d.callOpts...)
		return err
	})
	if err != nil {
		return 0, d.rpcError(ctx, "disk-usage", nil, err)
	}
	return resp.GetBytes(), nil
}

// Close ends every call in flight and closes the connections. It is safe to call twice.
func (d *Datastore) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		if d.sizes != nil {
			d.sizes.close()
			d.values.close()
		}
		if d.ahead != nil {
			d.ahead.close()
		}
		d.pool.close()
	})
	return nil
}

package walrusds

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// errStreamUnimplemented reports that the endpoint does not implement LookupStream: the
// caller sends its Lookup as a unary call instead, as every later one on that endpoint.
var errStreamUnimplemented = errors.New("walrusds: the service does not implement LookupStream")

// lookupStream sends Lookups to one endpoint over one long-lived LookupStream, which costs a
// message each instead of a unary call each (a lone caller's Has waits for one round trip on
// an open stream rather than for a whole call). Requests carry an id; the receiver goroutine
// hands each answer to the caller waiting for that id, in whatever order they come. grpc-go
// forbids concurrent Sends, so they take sendMu.
//
// When the stream breaks (the service restarted, the connection was reset), the callers
// waiting on it get the stream's status, as a unary call would have failed, and the next
// lookup opens a new stream. When the service answers UNIMPLEMENTED (an older service behind
// an address that advertised the feature), every lookup on this endpoint goes unary from then
// on.
type lookupStream struct {
	client   pb.DatastoreClient
	ctx      context.Context // the datastore's: cancelled by Close
	callOpts []grpc.CallOption

	mu            sync.Mutex
	cur           *openStream // nil until the next lookup opens one
	unimplemented atomic.Bool
	nextID        uint64
	opened        atomic.Uint64 // streams opened, for tests
}

// openStream is one LookupStream call and the callers waiting for its answers.
type openStream struct {
	stream pb.Datastore_LookupStreamClient
	cancel context.CancelFunc
	sendMu sync.Mutex

	mu      sync.Mutex
	pending map[uint64]chan streamAnswer
	err     error // set when the stream broke; no caller is registered after that
}

type streamAnswer struct {
	resp *pb.LookupResponse
	err  error
}

func newLookupStream(ctx context.Context, client pb.DatastoreClient, callOpts []grpc.CallOption) *lookupStream {
	return &lookupStream{client: client, ctx: ctx, callOpts: callOpts}
}

// lookup sends one Lookup on the stream and waits for its answer or for ctx. A caller that
// stops waiting leaves its id registered no longer: its answer is dropped when it arrives.
func (l *lookupStream) lookup(ctx context.Context, req *pb.LookupRequest) (*pb.LookupResponse, error) {
	s, id, ch, err := l.register()
	if err != nil {
		return nil, err
	}
	s.sendMu.Lock()
	err = s.stream.Send(&pb.LookupStreamRequest{Id: id, Request: req})
	s.sendMu.Unlock()
	if err != nil && !errors.Is(err, io.EOF) {
		// The message was refused locally (too large, ...): the stream itself goes on.
		s.forget(id)
		return nil, err
	}
	// io.EOF: the stream ended; the receiver hands every waiting caller its status.
	select {
	case a := <-ch:
		return a.resp, a.err
	case <-ctx.Done():
		s.forget(id)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// register returns the open stream (opening one if none is), a fresh id and the channel its
// answer will arrive on.
func (l *lookupStream) register() (*openStream, uint64, chan streamAnswer, error) {
	if l.unimplemented.Load() {
		return nil, 0, nil, errStreamUnimplemented
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		if err := l.ctx.Err(); err != nil {
			return nil, 0, nil, ErrClosed
		}
		sctx, cancel := context.WithCancel(l.ctx)
		stream, err := l.client.LookupStream(sctx, l.callOpts...)
		if err != nil {
			cancel()
			if status.Code(err) == codes.Unimplemented {
				l.unimplemented.Store(true)
				return nil, 0, nil, errStreamUnimplemented
			}
			return nil, 0, nil, err
		}
		l.opened.Add(1)
		l.cur = &openStream{stream: stream, cancel: cancel, pending: map[uint64]chan streamAnswer{}}
		go l.receive(l.cur)
	}
	s := l.cur
	l.nextID++
	id := l.nextID
	ch := make(chan streamAnswer, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil { // broke between the receiver's check and now: report as it did
		return nil, 0, nil, s.err
	}
	s.pending[id] = ch
	return s, id, ch, nil
}

// receive hands each answer to its caller until the stream ends, then fails every caller
// still waiting with the stream's status and lets the next lookup open a new stream.
func (l *lookupStream) receive(s *openStream) {
	var err error
	for {
		var a *pb.LookupStreamResponse
		a, err = s.stream.Recv()
		if err != nil {
			break
		}
		s.mu.Lock()
		ch, ok := s.pending[a.GetId()]
		delete(s.pending, a.GetId())
		s.mu.Unlock()
		if !ok {
			continue // its caller stopped waiting
		}
		if c := codes.Code(a.GetCode()); c != codes.OK {
			ch <- streamAnswer{err: status.Error(c, a.GetMessage())}
		} else {
			ch <- streamAnswer{resp: a.GetResponse()}
		}
	}
	switch {
	case errors.Is(err, io.EOF): // the service ended the stream with OK: it is shutting down
		err = status.Error(codes.Unavailable, "walrusds: the service ended the lookup stream")
	case status.Code(err) == codes.Unimplemented:
		l.unimplemented.Store(true)
		err = errStreamUnimplemented
	}
	l.mu.Lock()
	if l.cur == s {
		l.cur = nil
	}
	l.mu.Unlock()
	s.cancel()
	s.mu.Lock()
	s.err = err
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, ch := range pending {
		ch <- streamAnswer{err: err}
	}
}

func (s *openStream) forget(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

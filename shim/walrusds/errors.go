package walrusds

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	ds "github.com/ipfs/go-datastore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("walrusds: datastore is closed")

// Error is a failed call: the operation, the key it was about and the service's status. It
// keeps the gRPC status (status.FromError and status.Code see it) so callers can tell
// DATA_LOSS from UNAVAILABLE.
type Error struct {
	Op     string
	Key    string
	Status *status.Status
}

func (e *Error) Error() string {
	msg := "walrusds " + e.Op
	if e.Key != "" {
		msg += " " + e.Key
	}
	return fmt.Sprintf("%s: %s: %s", msg, codeName(e.Status.Code()), e.Status.Message())
}

// GRPCStatus lets status.FromError and status.Code read the service's status.
func (e *Error) GRPCStatus() *status.Status { return e.Status }

// rpcError maps a failed call to what go-datastore callers expect: the bare ds.ErrNotFound for
// a missing key (boxo compares it by identity), the context's own error when the caller
// cancelled, and an *Error otherwise.
func (d *Datastore) rpcError(ctx context.Context, op string, key []byte, err error) error {
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	st, ok := status.FromError(err)
	if !ok {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("walrusds %s %s: %w", op, showKey(key), err)
	}
	switch st.Code() {
	case codes.NotFound:
		if op == "get" || op == "get-size" {
			return ds.ErrNotFound
		}
	case codes.Canceled, codes.DeadlineExceeded:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.isClosed() {
			return ErrClosed
		}
	}
	return &Error{Op: op, Key: showKey(key), Status: st}
}

// lookupError is the error of one key that failed inside a Lookup.
func lookupError(op string, key []byte, code int32, msg string) error {
	return &Error{Op: op, Key: showKey(key), Status: status.New(codes.Code(code), msg)}
}

// codeName spells a status code the way the service's docs do (DATA_LOSS, UNAVAILABLE).
func codeName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
		codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
		codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
		codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
		codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
		codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
		codes.Unauthenticated: "UNAUTHENTICATED",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return "CODE_" + strconv.Itoa(int(c))
}

// showKey quotes a key for an error message, shortened: block keys are 56 characters, and a
// 2 KiB key would drown the message.
func showKey(key []byte) string {
	const maxShown = 96
	if len(key) > maxShown {
		return strconv.Quote(string(key[:maxShown])) + "..."
	}
	return strconv.Quote(string(key))
}

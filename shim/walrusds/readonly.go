package walrusds

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	ds "github.com/ipfs/go-datastore"
)

// A read-only service (a retrieval node) refuses every write. Kubo still issues writes that
// change nothing: `ipfs init` stores and pins the empty directory, which the upload node
// stored long ago, and block keys are content addresses, so a block Put is usually a Put of
// the bytes already there. A write that would change nothing succeeds here without reaching
// the service's write path; any other write fails with ErrReadOnly.

func (d *Datastore) readOnlyPut(ctx context.Context, key, value []byte) error {
	old, err := d.Get(ctx, ds.RawKey(string(key)))
	switch {
	case err == nil && bytes.Equal(old, value):
		return nil
	case err == nil || err == ds.ErrNotFound: //nolint:errorlint // identity is the contract
		return errReadOnly("put", key)
	}
	return err
}

func (d *Datastore) readOnlyDelete(ctx context.Context, key []byte) error {
	exists, err := d.Has(ctx, ds.RawKey(string(key)))
	if err != nil {
		return err
	}
	if exists {
		return errReadOnly("delete", key)
	}
	return nil
}

func (d *Datastore) readOnlyBatch(ctx context.Context, keys []string, ops map[string]batchOp) error {
	for _, k := range keys {
		var err error
		if op := ops[k]; op.delete {
			err = d.readOnlyDelete(ctx, []byte(k))
		} else {
			err = d.readOnlyPut(ctx, []byte(k), op.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrReadOnly is wrapped by writes refused because the service is read-only.
var ErrReadOnly = errors.New("the walrusds service is read-only (a retrieval node); " +
	"send writes to an upload node")

func errReadOnly(op string, key []byte) error {
	return fmt.Errorf("walrusds %s %s: %w", op, showKey(key), ErrReadOnly)
}

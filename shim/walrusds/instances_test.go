package walrusds_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	ds "github.com/ipfs/go-datastore"

	"github.com/walrusds/walrusds/shim/internal/testservice"
	"github.com/walrusds/walrusds/shim/walrusds"
)

// EnvAddrs names several instances of one service (same Postgres, same dataset), comma
// separated; pytest's tests/scale/test_instances.py starts two and sets it.
const EnvAddrs = "WALRUSDS_TEST_ADDRS"

// TestSeveralInstances: the shim spreads calls round robin over the instances, so a value is
// often written through one and read back through the other. Every read sees the latest write,
// overwrites and deletes included, because every instance reads the same Postgres. Without
// EnvAddrs it runs against the one live service given twice.
func TestSeveralInstances(t *testing.T) {
	addrs := strings.Split(os.Getenv(EnvAddrs), ",")
	if os.Getenv(EnvAddrs) == "" {
		live := testservice.Addr(t)
		addrs = []string{live, live}
	}
	d := open(t, walrusds.Options{Addresses: addrs})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := readYourWrites(ctx, d, w, 20); err != nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func readYourWrites(ctx context.Context, d *walrusds.Datastore, w, n int) error {
	for i := range n {
		key := ds.NewKey(fmt.Sprintf("/several-instances/%d/%03d", w, i))
		for round, value := range [][]byte{[]byte(fmt.Sprintf("first %d %d", w, i)),
			[]byte(fmt.Sprintf("overwritten %d %d", w, i))} {
			if err := d.Put(ctx, key, value); err != nil {
				return err
			}
			got, err := d.Get(ctx, key)
			if err != nil || !bytes.Equal(got, value) {
				return fmt.Errorf("get %s after put %d: %q, %v", key, round, got, err)
			}
			size, err := d.GetSize(ctx, key)
			if err != nil || size != len(value) {
				return fmt.Errorf("getsize %s after put %d: %d, %v", key, round, size, err)
			}
		}
		if err := d.Delete(ctx, key); err != nil {
			return err
		}
		if has, err := d.Has(ctx, key); err != nil || has {
			return fmt.Errorf("has %s after delete: %v, %v", key, has, err)
		}
		if _, err := d.Get(ctx, key); !errors.Is(err, ds.ErrNotFound) {
			return fmt.Errorf("get %s after delete: %v, want ErrNotFound", key, err)
		}
	}
	return nil
}

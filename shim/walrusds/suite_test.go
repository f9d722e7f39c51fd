package walrusds_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	dstest "github.com/ipfs/go-datastore/test"

	"github.com/walrusds/walrusds/shim/internal/testservice"
	"github.com/walrusds/walrusds/shim/walrusds"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testservice.Stop()
	os.Exit(code)
}

// open connects to the live service and closes the datastore when the test ends.
func open(t *testing.T, opts walrusds.Options) *walrusds.Datastore {
	t.Helper()
	if opts.Addresses == nil {
		opts.Addresses = []string{testservice.Addr(t)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := walrusds.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestSuite runs go-datastore's own test suite against the live service: every basic subtest
// (Combinations included) and, since the datastore is Batching, the RunBatch* tests.
//
// dstest.ElemCount sizes the query tests; go-datastore allows 20 to 100 (20 is what it uses
// under the race detector). Each unit costs ~4,600 sequential calls in Combinations, so the
// default here is 20; WALRUSDS_DSTEST_ELEMS=100 runs the full-size suite.
func TestSuite(t *testing.T) {
	dstest.ElemCount = 20
	if v := os.Getenv("WALRUSDS_DSTEST_ELEMS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 20 {
			t.Fatalf("WALRUSDS_DSTEST_ELEMS=%q: want a number >= 20", v)
		}
		dstest.ElemCount = n
	}
	d := open(t, walrusds.Options{})
	dstest.SubtestAll(t, d)
}

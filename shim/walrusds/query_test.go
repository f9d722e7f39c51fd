package walrusds

import (
	"bytes"
	"testing"

	dsq "github.com/ipfs/go-datastore/query"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

type evenKeys struct{}

func (evenKeys) Filter(e dsq.Entry) bool { return len(e.Key)%2 == 0 }

func TestPlanPushesKnownFiltersAndOrdersInBothForms(t *testing.T) {
	q := dsq.Query{
		Prefix: "/p",
		Filters: []dsq.Filter{
			dsq.FilterKeyCompare{Op: dsq.LessThan, Key: "/p/5"},
			&dsq.FilterKeyPrefix{Prefix: "/p/1"},
			&dsq.FilterValueCompare{Op: dsq.GreaterThanOrEqual, Value: []byte{7}},
		},
		Orders:   []dsq.Order{&dsq.OrderByValue{}, dsq.OrderByKeyDescending{}},
		Offset:   3,
		Limit:    9,
		KeysOnly: true, ReturnsSizes: true,
	}
	p := planQuery(q)
	if p.local() {
		t.Fatalf("nothing should run locally: %+v", p)
	}
	r := p.req
	if string(r.Prefix) != "/p" || r.Offset != 3 || r.Limit != 9 || !r.KeysOnly || !r.ReturnsSizes {
		t.Fatalf("request lost fields: %v", r)
	}
	if len(r.Filters) != 3 ||
		r.Filters[0].GetKeyCompare().GetOp() != pb.CompareOp_COMPARE_OP_LESS ||
		string(r.Filters[1].GetKeyPrefix().GetPrefix()) != "/p/1" ||
		r.Filters[2].GetValueCompare().GetOp() != pb.CompareOp_COMPARE_OP_GREATER_OR_EQUAL ||
		!bytes.Equal(r.Filters[2].GetValueCompare().GetValue(), []byte{7}) {
		t.Fatalf("filters not translated: %v", r.Filters)
	}
	if len(r.Orders) != 2 || r.Orders[0] != pb.Order_ORDER_BY_VALUE ||
		r.Orders[1] != pb.Order_ORDER_BY_KEY_DESCENDING {
		t.Fatalf("orders not translated: %v", r.Orders)
	}
}

func TestPlanRunsUnknownFilterAndLaterOnesLocallyWithOffsetAndLimit(t *testing.T) {
	q := dsq.Query{
		Filters: []dsq.Filter{
			dsq.FilterKeyCompare{Op: dsq.NotEqual, Key: "/x"},
			evenKeys{},
			dsq.FilterKeyPrefix{Prefix: "/a"},
		},
		Orders: []dsq.Order{dsq.OrderByKey{}},
		Offset: 2, Limit: 5,
	}
	p := planQuery(q)
	if len(p.req.Filters) != 1 || len(p.filters) != 2 {
		t.Fatalf("want 1 filter pushed and 2 local, got %d and %d", len(p.req.Filters), len(p.filters))
	}
	if len(p.req.Orders) != 1 || p.orders != nil {
		t.Fatalf("orders commute with filters and should still be pushed: %+v", p)
	}
	if p.req.Offset != 0 || p.req.Limit != 0 || p.offset != 2 || p.limit != 5 {
		t.Fatalf("offset/limit must run locally after a local filter: %+v", p)
	}
}

func TestPlanRunsAllOrdersLocallyWhenOneIsAFunction(t *testing.T) {
	byLen := dsq.OrderByFunction(func(a, b dsq.Entry) int { return len(a.Key) - len(b.Key) })
	q := dsq.Query{Orders: []dsq.Order{dsq.OrderByKey{}, byLen}, Limit: 1}
	p := planQuery(q)
	if len(p.req.Orders) != 0 || len(p.orders) != 2 || p.req.Limit != 0 || p.limit != 1 {
		t.Fatalf("a function order must send no orders and no limit: %+v", p)
	}
}

func TestPlanKeepsUnknownCompareOpLocal(t *testing.T) {
	p := planQuery(dsq.Query{Filters: []dsq.Filter{dsq.FilterKeyCompare{Op: "~=", Key: "/a"}}})
	if len(p.req.Filters) != 0 || len(p.filters) != 1 {
		t.Fatalf("an unknown operator must not be pushed: %+v", p)
	}
}

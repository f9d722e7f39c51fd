package walrusds

import (
	dsq "github.com/ipfs/go-datastore/query"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// queryPlan splits a go-datastore query into what the service runs and what is applied here
// with go-datastore's naive helpers. Filters are pushed up to the first one the service cannot
// express (an arbitrary Filter is Go code); orders are pushed only when all of them can be
// (they are hierarchical). Offset and limit are pushed only when nothing runs here, because
// they apply after filters and orders.
type queryPlan struct {
	req     *pb.QueryRequest
	filters []dsq.Filter // applied here, in order, after the pushed ones
	orders  []dsq.Order  // applied here (all of the query's orders) when not pushed
	offset  int          // applied here when something else is
	limit   int
}

// local reports whether anything runs on this side.
func (p queryPlan) local() bool {
	return len(p.filters) > 0 || len(p.orders) > 0
}

func planQuery(q dsq.Query) queryPlan {
	req := &pb.QueryRequest{
		Prefix:       []byte(q.Prefix),
		KeysOnly:     q.KeysOnly,
		ReturnsSizes: q.ReturnsSizes,
	}
	p := queryPlan{req: req}
	for i, f := range q.Filters {
		pf, ok := pushFilter(f)
		if !ok {
			p.filters = q.Filters[i:]
			break
		}
		req.Filters = append(req.Filters, pf)
	}
	orders := make([]pb.Order, 0, len(q.Orders))
	for _, o := range q.Orders {
		po, ok := pushOrder(o)
		if !ok {
			orders = nil
			p.orders = q.Orders
			break
		}
		orders = append(orders, po)
	}
	req.Orders = orders
	if p.local() {
		p.offset, p.limit = q.Offset, q.Limit
	} else {
		req.Offset, req.Limit = int64(q.Offset), int64(q.Limit)
	}
	return p
}

var compareOps = map[dsq.Op]pb.CompareOp{
	dsq.Equal:              pb.CompareOp_COMPARE_OP_EQUAL,
	dsq.NotEqual:           pb.CompareOp_COMPARE_OP_NOT_EQUAL,
	dsq.GreaterThan:        pb.CompareOp_COMPARE_OP_GREATER,
	dsq.GreaterThanOrEqual: pb.CompareOp_COMPARE_OP_GREATER_OR_EQUAL,
	dsq.LessThan:           pb.CompareOp_COMPARE_OP_LESS,
	dsq.LessThanOrEqual:    pb.CompareOp_COMPARE_OP_LESS_OR_EQUAL,
}

// pushFilter translates the filters go-datastore defines, in value and pointer form.
func pushFilter(f dsq.Filter) (*pb.Filter, bool) {
	switch f := f.(type) {
	case dsq.FilterKeyCompare:
		return keyCompare(f)
	case *dsq.FilterKeyCompare:
		if f != nil {
			return keyCompare(*f)
		}
	case dsq.FilterKeyPrefix:
		return keyPrefix(f), true
	case *dsq.FilterKeyPrefix:
		if f != nil {
			return keyPrefix(*f), true
		}
	case dsq.FilterValueCompare:
		return valueCompare(f)
	case *dsq.FilterValueCompare:
		if f != nil {
			return valueCompare(*f)
		}
	}
	return nil, false
}

func keyCompare(f dsq.FilterKeyCompare) (*pb.Filter, bool) {
	op, ok := compareOps[f.Op]
	if !ok {
		return nil, false
	}
	return &pb.Filter{Filter: &pb.Filter_KeyCompare{
		KeyCompare: &pb.KeyCompareFilter{Op: op, Key: []byte(f.Key)},
	}}, true
}

func keyPrefix(f dsq.FilterKeyPrefix) *pb.Filter {
	return &pb.Filter{Filter: &pb.Filter_KeyPrefix{
		KeyPrefix: &pb.KeyPrefixFilter{Prefix: []byte(f.Prefix)},
	}}
}

func valueCompare(f dsq.FilterValueCompare) (*pb.Filter, bool) {
	op, ok := compareOps[f.Op]
	if !ok {
		return nil, false
	}
	return &pb.Filter{Filter: &pb.Filter_ValueCompare{
		ValueCompare: &pb.ValueCompareFilter{Op: op, Value: f.Value},
	}}, true
}

// pushOrder translates the orders go-datastore defines, in value and pointer form.
func pushOrder(o dsq.Order) (pb.Order, bool) {
	switch o := o.(type) {
	case dsq.OrderByKey:
		return pb.Order_ORDER_BY_KEY, true
	case *dsq.OrderByKey:
		return pb.Order_ORDER_BY_KEY, o != nil
	case dsq.OrderByKeyDescending:
		return pb.Order_ORDER_BY_KEY_DESCENDING, true
	case *dsq.OrderByKeyDescending:
		return pb.Order_ORDER_BY_KEY_DESCENDING, o != nil
	case dsq.OrderByValue:
		return pb.Order_ORDER_BY_VALUE, true
	case *dsq.OrderByValue:
		return pb.Order_ORDER_BY_VALUE, o != nil
	case dsq.OrderByValueDescending:
		return pb.Order_ORDER_BY_VALUE_DESCENDING, true
	case *dsq.OrderByValueDescending:
		return pb.Order_ORDER_BY_VALUE_DESCENDING, o != nil
	}
	return pb.Order_ORDER_UNSPECIFIED, false
}

// applyLocal wraps the service's results with the parts of the plan that run here.
func applyLocal(p queryPlan, r dsq.Results) dsq.Results {
	for _, f := range p.filters {
		r = dsq.NaiveFilter(r, f)
	}
	if len(p.orders) > 0 {
		r = dsq.NaiveOrder(r, p.orders...)
	}
	if p.offset != 0 {
		r = dsq.NaiveOffset(r, p.offset)
	}
	if p.limit != 0 {
		r = dsq.NaiveLimit(r, p.limit)
	}
	return r
}

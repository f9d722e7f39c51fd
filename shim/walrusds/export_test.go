package walrusds

import "slices"

// WithoutFeature makes d act as if the service had not reported feature in Info (an older
// service), so tests can exercise the fallback paths against a current one.
func WithoutFeature(d *Datastore, feature string) {
	d.info.Features = slices.DeleteFunc(slices.Clone(d.info.Features),
		func(f string) bool { return f == feature })
}

// LookupTransports reports how many Lookups d sent over a LookupStream and as unary calls,
// and how many streams it opened.
func LookupTransports(d *Datastore) (stream, unary, opened uint64) {
	for _, e := range d.pool.endpoints {
		if e.lookups != nil {
			opened += e.lookups.opened.Load()
		}
	}
	return d.streamLookups.Load(), d.unaryLookups.Load(), opened
}

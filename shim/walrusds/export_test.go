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

// ReadAheadStats reports d's read-ahead: Lookups it sent, the most bytes it ever held
// (cached and expected in flight), the bytes of the values it caches now and its running
// workers. All are zero when read-ahead is disabled.
func ReadAheadStats(d *Datastore) (lookups uint64, peak, cached int64, workers int) {
	r := d.ahead
	if r == nil {
		return 0, 0, 0, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.state == raReady {
			cached += int64(len(e.value))
		}
	}
	return r.lookups.Load(), r.peak.Load(), cached, r.running
}

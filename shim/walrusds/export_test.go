package walrusds

import "slices"

// WithoutFeature makes d act as if the service had not reported feature in Info (an older
// service), so tests can exercise the fallback paths against a current one.
func WithoutFeature(d *Datastore, feature string) {
	d.info.Features = slices.DeleteFunc(slices.Clone(d.info.Features),
		func(f string) bool { return f == feature })
}

package walrusds

// The read-ahead's workers: each takes a batch of queued children, fetches it with one Lookup,
// and caches what comes back within the byte budget (readahead.go holds the cache itself).

import (
	"time"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

func (r *readAhead) worker(batch []*raEntry) {
	defer r.wg.Done()
	for {
		if batch != nil {
			r.fetch(batch)
		}
		if batch = r.nextBatch(); batch == nil {
			return
		}
	}
}

// nextBatch takes the next queued keys once the budget has room for them, marking them in
// flight. It returns nil (and counts the worker out) when nothing is queued, on Close, or
// when no room was made within the TTL (nobody reads what is cached: the queue is dropped).
func (r *readAhead) nextBatch() []*raEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var deadline time.Time
	for {
		r.expireLocked(time.Now())
		first := r.peekLocked()
		if first == nil || r.closed || r.ctx.Err() != nil {
			r.running--
			return nil
		}
		if first.expected > r.budget { // can never fit
			r.dropLocked(first)
			continue
		}
		if r.used+first.expected <= r.budget {
			return r.takeBatchLocked()
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(r.ttl)
		} else if !now.Before(deadline) {
			log.Debugf("read-ahead: nothing read from the cache for %v; dropping the queue", r.ttl)
			for _, g := range r.groups {
				for _, e := range g {
					r.dropLocked(e)
				}
			}
			r.groups = nil
			r.running--
			return nil
		}
		wake := deadline
		if len(r.expiry) > 0 && r.expiry[0].expires.Before(wake) {
			wake = r.expiry[0].expires
		}
		space := r.space
		r.mu.Unlock()
		t := time.NewTimer(time.Until(wake))
		select {
		case <-space:
		case <-t.C:
		case <-r.ctx.Done():
		}
		t.Stop()
		r.mu.Lock()
	}
}

// peekLocked returns the first queued entry, discarding dropped ones and empty groups.
func (r *readAhead) peekLocked() *raEntry {
	for len(r.groups) > 0 {
		g := r.groups[len(r.groups)-1]
		for len(g) > 0 && g[0].state != raQueued {
			g = g[1:]
		}
		if len(g) > 0 {
			r.groups[len(r.groups)-1] = g
			return g[0]
		}
		r.groups = r.groups[:len(r.groups)-1]
	}
	return nil
}

func (r *readAhead) takeBatchLocked() []*raEntry {
	var batch []*raEntry
	var bytes int64
	for len(batch) < readAheadKeys && bytes < readAheadBatchBytes {
		e := r.peekLocked()
		if e == nil || r.used+e.expected > r.budget {
			break
		}
		g := r.groups[len(r.groups)-1]
		r.groups[len(r.groups)-1] = g[1:]
		e.state = raInflight
		e.done = make(chan struct{})
		r.used += e.expected
		bytes += e.expected
		batch = append(batch, e)
	}
	r.notePeakLocked()
	return batch
}

// fetch sends one Lookup for batch and caches what it finds, as far as the budget allows.
// Errors are only logged: the Gets that wait for these keys then ask the service themselves.
func (r *readAhead) fetch(batch []*raEntry) {
	keys := make([][]byte, len(batch))
	for i, e := range batch {
		keys[i] = []byte(e.key)
	}
	r.lookups.Add(1)
	results, err := r.send(r.ctx, pb.LookupMode_LOOKUP_MODE_GET, keys)
	if err != nil {
		log.Debugf("read-ahead of %d keys: %v", len(keys), err)
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range batch {
		r.releaseLocked(e.expected)
		keep := err == nil && e.state == raInflight && !r.closed &&
			results[i].GetStatus() == pb.LookupStatus_LOOKUP_STATUS_FOUND
		var v []byte
		if keep {
			if v = results[i].GetValue(); v == nil {
				v = []byte{}
			}
			keep = r.used+int64(len(v)) <= r.budget
		}
		if keep {
			e.value, e.state, e.expires = v, raReady, now.Add(r.ttl)
			r.used += int64(len(v))
			r.expiry = append(r.expiry, e)
		} else {
			r.dropLocked(e)
		}
		close(e.done)
	}
	r.notePeakLocked()
}

// expireLocked drops the cached values whose TTL has passed.
func (r *readAhead) expireLocked(now time.Time) {
	n := 0
	for n < len(r.expiry) && (r.expiry[n].state != raReady || !now.Before(r.expiry[n].expires)) {
		if e := r.expiry[n]; e.state == raReady {
			r.dropLocked(e)
		}
		n++
	}
	r.expiry = r.expiry[n:] // append reallocates (dropping this head) as the slice grows
}

func (r *readAhead) notePeakLocked() {
	if r.used > r.peak.Load() {
		r.peak.Store(r.used)
	}
}

package consul

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
)

// queryGrace is how long past its wait time a blocking query may take.
const queryGrace = 10 * time.Second

// blocking holds the settings of one blocking-query loop.
type blocking struct {
	wait        time.Duration // how long Consul may hold a query open
	minInterval time.Duration // least time between two queries on one resource
	retryBase   time.Duration // first retry delay after an error
	retryMax    time.Duration // longest retry delay
}

// fetchFunc runs one query with q and returns Consul's response metadata.
type fetchFunc func(q *api.QueryOptions) (*api.QueryMeta, error)

// loopHooks receive a loop's outcomes; they run on the loop's goroutine.
type loopHooks struct {
	changed func()          // a result with a new index arrived (fetch already stored it)
	failed  func(err error) // a query failed; the loop retries after a backoff
	ok      func()          // a query succeeded (after failures, this ends staleness)
}

// run queries until ctx is done, following Consul's rules for blocking
// queries: wait on the last index, take a backwards index as a reset (to 1,
// never 0 after the first call), jitter the wait, rate-limit a loop that
// returns at once, and back off with jitter after errors.
//
// After an error the next query waits on index 1, which Consul answers at
// once: waiting on the old index would hold the first query after an outage
// for the whole wait time when nothing changed meanwhile, and the source
// would stay stale that long. Its result counts as a change (a resync).
//
// A query that resyncs (the first, and one on index 1) is a consistent
// read. A Consul server just restarted, or a leader just elected, answers
// a default read from a state store that may not have applied the whole
// raft log yet: Consul restarted under a running weir answered index 16,
// without an instance registered at 17, and weir pushed the instance's
// removal and then its return. A consistent read waits until the leader
// has applied the log, or fails meanwhile, and the loop retries; waiting
// on an index needs no such care, since its answer is newer than that
// index.
func (b blocking) run(ctx context.Context, fetch fetchFunc, hooks loopHooks) {
	var index uint64
	failures := 0
	resync := true // the first answer, and the first after an error, is new
	for ctx.Err() == nil {
		wait := jitter(b.wait, 16)
		// Consul may hold a query up to wait + wait/16; beyond a grace
		// period the connection is presumed dead rather than waiting.
		qctx, cancel := context.WithTimeout(ctx, wait+wait/16+queryGrace)
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: wait, RequireConsistent: index <= 1}).WithContext(qctx)
		started := time.Now()
		meta, err := fetch(q)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			hooks.failed(err)
			if index != 0 {
				index = 1
			}
			resync = true
			sleep(ctx, backoff(b.retryBase, b.retryMax, failures))
			continue
		}
		failures = 0
		hooks.ok()
		next := nextIndex(index, meta.LastIndex)
		if next != index || resync {
			hooks.changed()
		}
		index, resync = next, false
		sleep(ctx, b.minInterval-time.Since(started))
	}
}

// nextIndex returns the index to wait on after a response carrying got,
// when the last one waited on was prev. An index that went backwards (a
// Consul restore or a new leader behind the old one) resets the wait to 1,
// which answers at once with fresh data; so does an index of 0, which would
// make every later query return immediately.
func nextIndex(prev, got uint64) uint64 {
	if got < prev || got == 0 {
		return 1
	}
	return got
}

// backoff returns the delay before retry number n (1-based): exponential
// from base, capped at max, with "full jitter" between half and all of it so
// that many watchers do not retry in lockstep.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}

// jitter shortens d by up to d/fraction at random, spreading out the
// moments at which idle blocking queries return.
func jitter(d time.Duration, fraction int64) time.Duration {
	spread := d / time.Duration(fraction)
	if spread <= 0 {
		return d
	}
	return d - rand.N(spread)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

package asterisk

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Asterisk answers an ARI write of an AOR before res_pjsip has done the
// work the write causes: sorcery queues the object's observers on one
// taskprocessor per object type (sorcery/aor-…), and pjsip_options' AOR
// observer then waits for its own serializer (pjsip/options/manage). ARI's
// answers therefore say nothing about that queue, and a bulk push that
// writes as fast as ARI answers piles up thousands of tasks: past 500,
// Asterisk logs "The 'sorcery/aor-…' task processor queue reached 500
// scheduled tasks" and res_pjsip ignores new SIP requests (REGISTERs
// included) until the queue drains. A new AOR's task also reads every
// endpoint of the node, so a queued AOR that runs after endpoints were
// created meanwhile pays for all of them.
//
// aorQueue paces AOR writes on that queue itself. A probe goes through the
// same queue: pbxd owns one probe endpoint and AOR per node
// (<prefix>queue-probe; the AOR has a permanent contact), and flips the
// AOR's qualify_frequency between 0 (a permanent contact of an unqualified
// AOR counts as available: the endpoint goes online) and probeQualify (a
// qualified contact starts unknown: offline). The flip is queued behind
// every AOR write ARI answered before it, so when GET /endpoints/PJSIP
// shows the endpoint in the new state, Asterisk has run all of them.
type aorQueue struct {
	n *node

	mu        sync.Mutex
	cond      *sync.Cond
	written   int  // AOR writes answered so far
	confirmed int  // of which Asterisk is known to have run the observers
	probing   bool // a probe is in flight
	made      bool // the probe objects exist (as far as pbxd knows)
	online    bool // the state the last probe left the probe endpoint in
	broken    time.Time
}

const (
	// probeEvery is how many unconfirmed AOR writes start a probe;
	// maxUnconfirmed how many make the next AOR write wait for one.
	// Asterisk warns (and sheds SIP load) at 500 queued tasks, and clears
	// that alert below 450: with the writes in flight when the bound is
	// reached and the probe's own, at most 409 are queued. The bound is
	// a ceiling, not a pace: a write waits only when Asterisk is that far
	// behind, and each probe confirms every write answered before it, so
	// on a node that keeps up the writes never wait (a lower bound, 250,
	// made them wait for a probe's round trip every 150 writes).
	probeEvery     = 100
	maxUnconfirmed = 400
	// probeQualify is the probe AOR's qualify_frequency when offline
	// (a day: its contact is practically never sent an OPTIONS).
	probeQualify = 86400
	// probeTimeout bounds one probe; probeRetry is how long pacing stays
	// off after a failed one (no probe objects possible: the node's
	// wizard is read-only, or Asterisk is gone).
	probeTimeout = time.Minute
	probeRetry   = time.Minute
	probePoll    = 20 * time.Millisecond
)

// probeContact is the probe AOR's permanent contact: the discard port of
// the loopback address.
const probeContact = "sip:queue-probe@127.0.0.1:9"

func newAORQueue(n *node) *aorQueue {
	q := &aorQueue{n: n}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *aorQueue) probeName() string { return q.n.b.cfg.ObjectPrefix + "queue-probe" }

// admit waits until an AOR write may be sent: fewer than maxUnconfirmed
// are unconfirmed, or pacing is off.
func (q *aorQueue) admit(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.written-q.confirmed >= maxUnconfirmed && q.pacing() {
		q.startLocked()
		if err := q.waitLocked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// wrote records an answered AOR write and starts a probe when enough are
// unconfirmed.
func (q *aorQueue) wrote() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.written++
	if q.written-q.confirmed >= probeEvery && q.pacing() {
		q.startLocked()
	}
}

// drain waits until Asterisk has run the observers of every AOR write
// answered so far (at most probeTimeout; without pacing, at once).
func (q *aorQueue) drain(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	target := q.written
	for q.confirmed < target && q.pacing() {
		q.startLocked()
		if err := q.waitLocked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// pacing reports whether probes work on this node; q.mu held.
func (q *aorQueue) pacing() bool { return time.Since(q.broken) >= probeRetry }

// waitLocked waits for the probe in flight to end, or ctx; q.mu held.
func (q *aorQueue) waitLocked(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	for q.probing && ctx.Err() == nil {
		q.cond.Wait()
	}
	return ctx.Err()
}

// startLocked starts a probe covering every write answered so far, unless
// one is in flight; q.mu held.
func (q *aorQueue) startLocked() {
	if q.probing {
		return
	}
	q.probing = true
	upTo := q.written
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		err := q.probe(ctx)
		q.mu.Lock()
		defer q.mu.Unlock()
		q.probing = false
		if err != nil {
			// Unpaced rather than stuck: the writes go on as ARI answers.
			q.n.b.logger.Warn("asterisk queue probe failed: AOR writes unpaced for a minute", "node", q.n.cfg.Name, "err", err)
			q.broken = time.Now()
		}
		q.confirmed = max(q.confirmed, upTo)
		q.cond.Broadcast()
	}()
}

// errProbeTimeout is a probe whose flip was not seen in time.
var errProbeTimeout = errors.New("probe endpoint did not change state in time")

// probe flips the probe AOR and waits for the probe endpoint to show it.
func (q *aorQueue) probe(ctx context.Context) error {
	name := q.probeName()
	if !q.made {
		online, err := q.makeProbe(ctx, name)
		if err != nil {
			return err
		}
		q.made, q.online = true, online
	}
	want := !q.online
	qualify := strconv.Itoa(probeQualify)
	if want {
		qualify = "0"
	}
	if err := q.n.putUnpaced(ctx, "aor", name, []tuple{{"qualify_frequency", qualify}}); err != nil {
		q.made = false // gone (Asterisk restarted with an empty astdb?): make it again next time
		return err
	}
	state := "offline"
	if want {
		state = "online"
	}
	for {
		var ep endpointJSON
		err := q.n.get(ctx, "probe", "/endpoints/PJSIP/"+url.PathEscape(name), &ep)
		if err == nil && ep.State == state {
			q.online = want
			return nil
		}
		if errors.Is(err, errAbsent) {
			q.made = false
			return err
		}
		select {
		case <-ctx.Done():
			q.made = false // the state pbxd assumed may be wrong: read it again
			if err != nil {
				return err
			}
			return errProbeTimeout
		case <-time.After(probePoll):
		}
	}
}

// makeProbe creates the probe AOR (before its endpoint, so that its
// creation finds no endpoint to link) and endpoint if absent, and reports
// whether the AOR is set to make the endpoint online (qualify_frequency
// 0). The endpoint can never be used: it is identified by IP only and no
// identify object names it, and its context does not exist.
func (q *aorQueue) makeProbe(ctx context.Context, name string) (bool, error) {
	aor, err := q.n.getObject(ctx, "aor", name)
	if err != nil {
		return false, err
	}
	if aor == nil {
		aor = map[string]string{"qualify_frequency": strconv.Itoa(probeQualify)}
		if err := q.n.putUnpaced(ctx, "aor", name, []tuple{
			{"contact", probeContact}, {"qualify_frequency", aor["qualify_frequency"]}, {"max_contacts", "0"},
		}); err != nil {
			return false, err
		}
	}
	ep, err := q.n.getObject(ctx, "endpoint", name)
	if err != nil {
		return false, err
	}
	if ep == nil {
		if err := q.n.putUnpaced(ctx, "endpoint", name, []tuple{
			{"aors", name}, {"identify_by", "ip"}, {"context", name},
			{"disallow", "all"}, {"allow", "ulaw"},
		}); err != nil {
			return false, err
		}
	}
	return aor["qualify_frequency"] == "0", nil
}

// putUnpaced PUTs an object without the AOR queue's admission (the probe's
// own writes).
func (n *node) putUnpaced(ctx context.Context, typ, id string, send []tuple) error {
	return n.writeObject(ctx, "put_"+typ, typ, id, send, false)
}

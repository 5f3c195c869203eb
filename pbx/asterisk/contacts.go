package asterisk

import (
	"context"
	"crypto/md5" //nolint:gosec // Asterisk's contact ids hash the uri with MD5
	"encoding/hex"
	"strconv"
	"time"
)

// contactRef names one registered contact of a line.
type contactRef struct{ line, uri, aor string }

// contactRecheck is how long after a contact's shown expiry pbxd reads it
// again, and how often while Asterisk still holds it expired (its
// registrar prunes expired contacts every contact_expiration_check_interval,
// 30 s by default).
const contactRecheck = 2 * time.Second

// fillContacts reads, for each contact an event announced, the contact
// object Asterisk keeps (id "<aor>;@<md5 of the uri>", res_pjsip
// location.c) for its expiry and user agent, and reports the line again
// with them, until ctx ends.
//
// A phone's refresh that changes nothing else raises no event (unless
// pjsip.conf sets send_contact_status_on_update_registration, see
// configs/asterisk), so the expiry read last goes stale: the phone has
// refreshed, Asterisk holds a later expiry, pbxd shows the earlier one.
// So each contact is read again once its shown expiry has passed: a
// refreshed contact shows its new expiry, and one Asterisk no longer holds
// (the Removed event lost) is dropped. That costs one GET per contact per
// registration period, and none while it is not over.
func (n *node) fillContacts(ctx context.Context) {
	due := map[contactRef]time.Time{} // contact → when to read it again
	var next time.Time                // earliest of due, zero if none
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var tick <-chan time.Time
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case ref := <-n.fills:
			if at, ok := n.fill(ctx, ref, false); ok {
				due[ref] = at
				if next.IsZero() || at.Before(next) {
					next = at
				}
			}
		case <-tick:
			now := time.Now()
			var refs []contactRef
			for ref, at := range due {
				if !at.After(now) {
					refs = append(refs, ref)
					delete(due, ref)
				}
			}
			for _, ref := range refs {
				if at, ok := n.fill(ctx, ref, true); ok {
					due[ref] = at
				}
			}
			// Never sooner than a second from now: due contacts are
			// read in batches.
			next = time.Time{}
			for _, at := range due {
				if next.IsZero() || at.Before(next) {
					next = at
				}
			}
			if !next.IsZero() {
				next = maxTime(next, time.Now().Add(time.Second))
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fill reads contact ref and reports its line with the expiry and user
// agent read; it returns when to read the contact again (ok false: never,
// it is gone or unknown). recheck is a read after the shown expiry: a
// contact Asterisk no longer holds is then dropped.
func (n *node) fill(ctx context.Context, ref contactRef, recheck bool) (time.Time, bool) {
	n.mu.Lock()
	_, known := n.contacts[ref.line][ref.uri]
	n.mu.Unlock()
	if !known {
		return time.Time{}, false // removed meanwhile
	}
	sum := md5.Sum([]byte(ref.uri)) //nolint:gosec // Asterisk's id scheme, not security
	obj, err := n.getObject(ctx, "contact", ref.aor+";@"+hex.EncodeToString(sum[:]))
	now := time.Now()
	if err != nil {
		if recheck {
			return now.Add(contactRecheck), true // Asterisk busy or away: later
		}
		return time.Time{}, false // the expiry stays unknown until the next event
	}
	n.mu.Lock()
	set := n.contacts[ref.line]
	c, ok := set[ref.uri]
	if !ok {
		n.mu.Unlock()
		return time.Time{}, false
	}
	if obj == nil {
		if !recheck {
			n.mu.Unlock()
			return now.Add(contactRecheck), true // gone already: its Removed event should follow
		}
		// Expired or removed, and no Removed event came.
		delete(set, ref.uri)
		out := snapshot(ref.line, set, now)
		n.mu.Unlock()
		n.emit(out)
		return time.Time{}, false
	}
	exp, err := strconv.ParseInt(obj["expiration_time"], 10, 64)
	if err != nil {
		n.mu.Unlock()
		return time.Time{}, false
	}
	expires := time.Unix(exp, 0).UTC()
	again := maxTime(expires.Add(contactRecheck), now.Add(contactRecheck))
	if expires.Equal(c.Expires) && obj["user_agent"] == c.UserAgent {
		n.mu.Unlock()
		return again, true
	}
	c.Expires, c.UserAgent = expires, obj["user_agent"]
	set[ref.uri] = c
	out := snapshot(ref.line, set, now)
	n.mu.Unlock()
	n.emit(out)
	return again, true
}

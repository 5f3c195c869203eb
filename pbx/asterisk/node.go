package asterisk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"github.com/CyCoreSystems/ari/v5/client/native"

	"github.com/pbxd/pbxd/pbx"
)

// node is one Asterisk server: its ari client, a context-aware HTTP client
// for reads and health checks, and the contacts of its lines.
type node struct {
	b         *Backend
	cfg       NodeConfig
	w         *native.Client // writes (Update, Delete); never connected, so safe to share
	ev        *native.Client // the events websocket; used by run only
	http      *http.Client
	connected atomic.Bool

	mu       sync.Mutex
	contacts map[string]map[string]pbx.Contact // line id → uri → contact
}

// errAbsent marks a 404 from ARI.
var errAbsent = errors.New("not found")

func newNode(b *Backend, nc NodeConfig) *node {
	opts := func() *native.Options {
		return &native.Options{
			Application:  nc.App,
			URL:          strings.TrimSuffix(nc.URL, "/"),
			WebsocketURL: wsURL(nc.URL),
			Username:     nc.Username,
			Password:     nc.Password,
			SubscribeAll: true,
		}
	}
	return &node{
		b:        b,
		cfg:      nc,
		w:        native.New(opts()),
		ev:       native.New(opts()),
		http:     &http.Client{Timeout: b.cfg.RequestTimeout},
		contacts: map[string]map[string]pbx.Contact{},
	}
}

func (n *node) count(op, outcome string) {
	n.b.m.requests.WithLabelValues(n.cfg.Name, op, outcome).Inc()
}

// get GETs an ARI path into out. A 404 returns errAbsent; connection
// failures, timeouts and 5xx wrap pbx.ErrUnavailable.
func (n *node) get(ctx context.Context, op, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, n.b.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(n.cfg.URL, "/")+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(n.cfg.Username, n.cfg.Password)
	resp, err := n.http.Do(req)
	if err != nil {
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: %w", op, pbx.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			n.count(op, "unavailable")
			return fmt.Errorf("%s: %w: decode answer: %w", op, pbx.ErrUnavailable, err)
		}
		n.count(op, "ok")
		return nil
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body)
		n.count(op, "absent")
		return errAbsent
	case resp.StatusCode >= 500:
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: ARI answered %s", op, pbx.ErrUnavailable, resp.Status)
	}
	n.count(op, "error")
	return fmt.Errorf("%s: ARI answered %s", op, resp.Status)
}

// call runs an ari library call, which takes no context, bounded by the
// request timeout and ctx. On timeout the call is abandoned; its goroutine
// ends when the library's request does.
func (n *node) call(ctx context.Context, op string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, n.b.cfg.RequestTimeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- f() }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: %w", op, pbx.ErrUnavailable, ctx.Err())
	}
	if err == nil {
		n.count(op, "ok")
		return nil
	}
	// The library's errors carry the status only, never the body.
	switch code := native.CodeFromError(err); {
	case code == http.StatusNotFound:
		n.count(op, "absent")
		return errAbsent
	case code == 0 || code >= 500:
		n.count(op, "unavailable")
		return fmt.Errorf("%s: %w: %w", op, pbx.ErrUnavailable, err)
	default:
		n.count(op, "error")
		return fmt.Errorf("%s: ARI answered %d", op, code)
	}
}

// getObject reads one res_pjsip object as attribute → value, nil if absent.
func (n *node) getObject(ctx context.Context, typ, id string) (map[string]string, error) {
	var ts []ari.ConfigTuple
	err := n.get(ctx, "get_"+typ, "/asterisk/config/dynamic/res_pjsip/"+typ+"/"+url.PathEscape(id), &ts)
	if errors.Is(err, errAbsent) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.Attribute] = t.Value
	}
	return m, nil
}

// push creates the object with want, or PUTs the attributes of want that
// differ from held.
func (n *node) push(ctx context.Context, typ, id string, want []tuple, held map[string]string) error {
	send := want
	if held != nil {
		if send = diff(want, held); len(send) == 0 {
			return nil
		}
	}
	key := configKey(typ, id)
	return n.call(ctx, "put_"+typ, func() error { return n.w.Asterisk().Config().Update(key, toARI(send)) })
}

func (n *node) del(ctx context.Context, typ, id string) error {
	key := configKey(typ, id)
	err := n.call(ctx, "delete_"+typ, func() error { return n.w.Asterisk().Config().Delete(key) })
	if errors.Is(err, errAbsent) {
		return nil
	}
	return err
}

func (n *node) apply(ctx context.Context, l pbx.LineConfig) error {
	id := n.b.objectID(l.ID)
	ep, err := n.getObject(ctx, "endpoint", id)
	if err != nil {
		return err
	}
	auth, err := n.getObject(ctx, "auth", id)
	if err != nil {
		return err
	}
	aor, err := n.getObject(ctx, "aor", id)
	if err != nil {
		return err
	}
	if err := n.push(ctx, "auth", id, desiredAuth(l), auth); err != nil {
		return err
	}
	sid := id + suspendedSuffix
	wasSuspended := ep != nil && ep["auth"] == sid
	if l.Suspended {
		sauth, err := n.getObject(ctx, "auth", sid)
		if err != nil {
			return err
		}
		want := desiredSuspendedAuth(l)
		if sauth == nil {
			want = append(want, tuple{"password", randomPassword()})
		}
		if err := n.push(ctx, "auth", sid, want, sauth); err != nil {
			return err
		}
	}
	if err := n.push(ctx, "aor", id, n.b.desiredAOR(l), aor); err != nil {
		return err
	}
	if err := n.push(ctx, "endpoint", id, n.b.desiredEndpoint(l, id), ep); err != nil {
		return err
	}
	if wasSuspended && !l.Suspended {
		return n.del(ctx, "auth", sid)
	}
	return nil
}

func (n *node) remove(ctx context.Context, lineID string) error {
	id := n.b.objectID(lineID)
	for _, o := range [][2]string{{"endpoint", id}, {"aor", id}, {"auth", id}, {"auth", id + suspendedSuffix}} {
		if err := n.del(ctx, o[0], o[1]); err != nil {
			return err
		}
	}
	n.mu.Lock()
	had := len(n.contacts[lineID]) > 0
	delete(n.contacts, lineID)
	n.mu.Unlock()
	if had {
		n.b.emit(pbx.RegistrationEvent{LineID: lineID, At: time.Now()})
	}
	return nil
}

type endpointJSON struct {
	Technology string `json:"technology"`
	Resource   string `json:"resource"`
	State      string `json:"state"`
}

// ownedEndpoints lists the PJSIP endpoints whose id carries the prefix.
func (n *node) ownedEndpoints(ctx context.Context) ([]endpointJSON, error) {
	var eps []endpointJSON
	err := n.get(ctx, "list_endpoints", "/endpoints/PJSIP", &eps)
	if errors.Is(err, errAbsent) {
		return nil, nil // no PJSIP endpoint at all
	}
	if err != nil {
		return nil, err
	}
	out := eps[:0]
	for _, e := range eps {
		if strings.HasPrefix(e.Resource, n.b.cfg.ObjectPrefix) && len(e.Resource) > len(n.b.cfg.ObjectPrefix) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (n *node) list(ctx context.Context) ([]pbx.LineConfig, error) {
	eps, err := n.ownedEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]pbx.LineConfig, len(eps))
	found := make([]bool, len(eps))
	errs := make([]error, len(eps))
	sem := make(chan struct{}, n.b.cfg.ListConcurrency)
	var wg sync.WaitGroup
	for i, e := range eps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := e.Resource
			ep, err := n.getObject(ctx, "endpoint", id)
			if err != nil || ep == nil {
				errs[i] = err // deleted since the listing: not listed
				return
			}
			auth, err := n.getObject(ctx, "auth", id)
			if err != nil {
				errs[i] = err
				return
			}
			aor, err := n.getObject(ctx, "aor", id)
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = n.b.heldLine(n.cfg.Name, strings.TrimPrefix(id, n.b.cfg.ObjectPrefix), id, ep, auth, aor)
			found[i] = true
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	lines := out[:0]
	for i := range out {
		if found[i] {
			lines = append(lines, out[i])
		}
	}
	return lines, nil
}

// run keeps the node connected until ctx ends: probe /asterisk/info,
// connect the ari client's events websocket once, then check every
// HealthInterval that Asterisk answers, has not restarted (startup_time) and
// still has our application's websocket (GET /applications/{app}). Each
// (re)connection rebuilds the contact picture from /endpoints and asks for
// a resync.
func (n *node) run(ctx context.Context) {
	log := n.b.logger.With("node", n.cfg.Name)
	var (
		sub       ari.Subscription
		evDone    chan struct{}
		lastStart time.Time
		attempt   int
		failing   bool
	)
	defer func() {
		n.setConnected(false)
		if sub != nil {
			sub.Cancel()
			closeClient(n.ev)
			<-evDone
		}
	}()
	for ctx.Err() == nil {
		start, err := n.startupTime(ctx)
		if err == nil && sub == nil {
			if err = n.connectEvents(ctx); err == nil {
				sub = n.ev.Bus().Subscribe(nil, ari.Events.All)
				evDone = make(chan struct{})
				go func() {
					defer close(evDone)
					n.eventLoop(ctx, sub)
				}()
			}
		}
		if err == nil {
			var app struct{}
			if err = n.get(ctx, "health", "/applications/"+url.PathEscape(n.cfg.App), &app); errors.Is(err, errAbsent) {
				err = errors.New("events websocket not connected")
			}
		}
		if err == nil && (!n.connected.Load() || !start.Equal(lastStart)) {
			reason := "connect"
			if !lastStart.IsZero() && !start.Equal(lastStart) {
				reason = "restart"
				log.Warn("asterisk restarted", "startup_time", start)
			}
			if err = n.rebuildContacts(ctx); err == nil {
				lastStart = start
				n.setConnected(true)
				n.b.m.resyncs.WithLabelValues(n.cfg.Name, reason).Inc()
				n.b.signalResync()
				log.Info("asterisk connected", "reason", reason)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if n.connected.Load() || !failing {
				log.Warn("asterisk unreachable", "err", err)
			}
			failing = true
			n.setConnected(false)
			wait(ctx, n.b.backoff(attempt))
			attempt++
			continue
		}
		failing, attempt = false, 0
		wait(ctx, n.b.cfg.HealthInterval)
	}
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (n *node) setConnected(v bool) {
	n.connected.Store(v)
	g := 0.0
	if v {
		g = 1
	}
	n.b.m.connected.WithLabelValues(n.cfg.Name).Set(g)
}

func (n *node) startupTime(ctx context.Context) (time.Time, error) {
	var info ari.AsteriskInfo
	if err := n.get(ctx, "info", "/asterisk/info", &info); err != nil {
		if errors.Is(err, errAbsent) {
			return time.Time{}, fmt.Errorf("info: %w: 404", pbx.ErrUnavailable)
		}
		return time.Time{}, err
	}
	return time.Time(info.StatusInfo.StartupTime), nil
}

// connectEvents starts the ari client's websocket. The library's Connect
// blocks until its first successful connection and then reconnects by
// itself forever; if it does not come up in time it is left to finish in
// the background and closed then.
func (n *node) connectEvents(ctx context.Context) error {
	errc := make(chan error, 1)
	cl := n.ev
	go func() { errc <- cl.Connect() }()
	t := time.NewTimer(2 * n.b.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("events websocket: %w", err)
		}
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	// The client is stuck in its own retry loop. Replace it so a later
	// attempt starts afresh; close this one whenever it connects.
	go func() {
		if <-errc == nil {
			closeClient(cl)
		}
	}()
	opts := *cl.Options
	n.ev = native.New(&opts)
	return fmt.Errorf("events websocket: %w: not connected after %v", pbx.ErrUnavailable, 2*n.b.cfg.RequestTimeout)
}

func (n *node) eventLoop(ctx context.Context, sub ari.Subscription) {
	for {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				return
			}
			n.handle(e)
		case <-ctx.Done():
			return
		}
	}
}

func (n *node) lineOf(ep ari.EndpointData) (string, bool) {
	if !strings.EqualFold(ep.Technology, "PJSIP") {
		return "", false
	}
	id, ok := strings.CutPrefix(ep.Resource, n.b.cfg.ObjectPrefix)
	return id, ok && id != ""
}

// handle maps ARI endpoint events onto full-set registration events:
// ContactStatusChange adds or refreshes a contact (Removed drops it);
// PeerStatusChange Unreachable clears a line known only as "online" from
// /endpoints. Other states of PeerStatusChange and EndpointStateChange carry
// no contact and change nothing (offline means unknown, see NOTES.md).
func (n *node) handle(e ari.Event) {
	now := time.Now()
	switch ev := e.(type) {
	case *ari.ContactStatusChange:
		line, ok := n.lineOf(ev.Endpoint)
		if !ok || ev.ContactInfo.Uri == "" {
			return
		}
		n.mu.Lock()
		set := n.contacts[line]
		if set == nil {
			set = map[string]pbx.Contact{}
			n.contacts[line] = set
		}
		delete(set, "") // a real contact replaces the "online, contacts unknown" placeholder
		if ev.ContactInfo.ContactStatus == "Removed" {
			delete(set, ev.ContactInfo.Uri)
		} else {
			set[ev.ContactInfo.Uri] = pbx.Contact{URI: ev.ContactInfo.Uri, Source: n.cfg.Name}
		}
		out := snapshot(line, set, now)
		n.mu.Unlock()
		n.b.emit(out)
	case *ari.PeerStatusChange:
		line, ok := n.lineOf(ev.Endpoint)
		if !ok || ev.Peer.PeerStatus != "Unreachable" {
			return
		}
		n.mu.Lock()
		set := n.contacts[line]
		_, placeholder := set[""]
		if !placeholder || len(set) != 1 {
			n.mu.Unlock()
			return
		}
		delete(n.contacts, line)
		n.mu.Unlock()
		n.b.emit(pbx.RegistrationEvent{LineID: line, At: now})
	}
}

func snapshot(line string, set map[string]pbx.Contact, at time.Time) pbx.RegistrationEvent {
	ev := pbx.RegistrationEvent{LineID: line, At: at}
	for _, c := range set {
		ev.Contacts = append(ev.Contacts, c)
	}
	slices.SortFunc(ev.Contacts, func(a, b pbx.Contact) int { return strings.Compare(a.URI, b.URI) })
	return ev
}

// rebuildContacts reconciles the contact picture with /endpoints after a
// (re)connection, since Asterisk does not re-announce contacts: an owned
// endpoint that is online with no known contact gets a placeholder contact
// with an empty URI (registered, address unknown until its next event);
// offline means unknown and keeps what is known; a line whose endpoint is
// gone has no contact left.
func (n *node) rebuildContacts(ctx context.Context) error {
	eps, err := n.ownedEndpoints(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var out []pbx.RegistrationEvent
	n.mu.Lock()
	present := map[string]bool{}
	for _, e := range eps {
		line := strings.TrimPrefix(e.Resource, n.b.cfg.ObjectPrefix)
		present[line] = true
		if e.State == "online" && len(n.contacts[line]) == 0 {
			set := map[string]pbx.Contact{"": {Source: n.cfg.Name}}
			n.contacts[line] = set
			out = append(out, snapshot(line, set, now))
		}
	}
	for line, set := range n.contacts {
		if !present[line] {
			delete(n.contacts, line)
			if len(set) > 0 {
				out = append(out, pbx.RegistrationEvent{LineID: line, At: now})
			}
		}
	}
	n.mu.Unlock()
	for _, ev := range out {
		n.b.emit(ev)
	}
	return nil
}

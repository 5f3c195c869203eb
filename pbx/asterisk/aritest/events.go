package aritest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// app is a Stasis application: the websocket it is connected through, its
// subscribeAll flag and its explicit event sources.
type app struct {
	name         string
	subscribeAll bool
	sources      map[string]bool // "endpoint:PJSIP/100", "endpoint:PJSIP"
	conn         *wsConn
}

// wsConn is one events websocket; a writer goroutine keeps events in order.
type wsConn struct {
	c    net.Conn
	out  chan []byte
	once sync.Once
	done chan struct{}
}

func (c *wsConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.c.Close()
	})
}

func (c *wsConn) send(b []byte) {
	select {
	case c.out <- b:
	case <-c.done:
	default:
		// A consumer that does not keep up is disconnected, as Asterisk does
		// when its websocket write times out.
		c.close()
	}
}

func (c *wsConn) writeLoop() {
	for {
		select {
		case b := <-c.out:
			_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := wsutil.WriteServerText(c.c, b); err != nil {
				c.close()
				return
			}
		case <-c.done:
			return
		}
	}
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	names := strings.Split(q.Get("app"), ",")
	if q.Get("app") == "" {
		writeError(w, http.StatusBadRequest, "Missing parameter app")
		return
	}
	all := q.Get("subscribeAll") == "true" || q.Get("subscribeAll") == "yes"
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeError(w, http.StatusUpgradeRequired, "WebSocket upgrade required")
		return
	}
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	c := &wsConn{c: conn, out: make(chan []byte, 4096), done: make(chan struct{})}
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	for _, n := range names {
		a := s.apps[n]
		if a == nil {
			a = &app{name: n, sources: map[string]bool{}}
			s.apps[n] = a
		}
		if a.conn != nil {
			// A second websocket for the same app replaces the first.
			a.conn.close()
		}
		a.conn = c
		a.subscribeAll = all
	}
	s.mu.Unlock()

	go c.writeLoop()
	go func() {
		defer func() {
			c.close()
			s.mu.Lock()
			for _, n := range names {
				if a := s.apps[n]; a != nil && a.conn == c {
					// Asterisk deactivates an application whose websocket
					// closed: it is no longer listed.
					delete(s.apps, n)
				}
			}
			s.mu.Unlock()
		}()
		for {
			if _, _, err := wsutil.ReadClientData(conn); err != nil {
				return
			}
		}
	}()
}

type appJSON struct {
	Name             string   `json:"name"`
	ChannelIDs       []string `json:"channel_ids"`
	BridgeIDs        []string `json:"bridge_ids"`
	EndpointIDs      []string `json:"endpoint_ids"`
	DeviceNames      []string `json:"device_names"`
	EventsAllowed    []any    `json:"events_allowed"`
	EventsDisallowed []any    `json:"events_disallowed"`
}

func (a *app) json() appJSON {
	eps := []string{}
	for src := range a.sources {
		if e, ok := strings.CutPrefix(src, "endpoint:"); ok {
			eps = append(eps, e)
		}
	}
	sort.Strings(eps)
	return appJSON{Name: a.name, ChannelIDs: []string{}, BridgeIDs: []string{}, EndpointIDs: eps,
		DeviceNames: []string{}, EventsAllowed: []any{}, EventsDisallowed: []any{}}
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := []appJSON{}
	for _, a := range s.apps {
		out = append(out, a.json())
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := s.apps[r.PathValue("applicationName")]
	var j appJSON
	if a != nil {
		j = a.json()
	}
	s.mu.Unlock()
	if a == nil {
		writeError(w, http.StatusNotFound, "Application not found")
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// checkSource validates an eventSource; s.mu must be held. It returns the
// HTTP status and message on failure.
func (s *Server) checkSourceLocked(src string) (int, string) {
	scheme, rest, ok := strings.Cut(src, ":")
	if !ok {
		return http.StatusBadRequest, "Invalid event source URI scheme"
	}
	switch scheme {
	case "endpoint":
		tech, res, _ := strings.Cut(rest, "/")
		// The technology endpoint exists only once a PJSIP endpoint has.
		if !strings.EqualFold(tech, "PJSIP") || !s.techPJSIP {
			return http.StatusUnprocessableEntity, "Event source does not exist"
		}
		if res != "" {
			if _, ok := s.objects["endpoint"][res]; !ok {
				return http.StatusUnprocessableEntity, "Event source does not exist"
			}
		}
		return 0, ""
	case "channel", "bridge", "deviceState":
		return http.StatusUnprocessableEntity, "Event source does not exist"
	}
	return http.StatusBadRequest, "Invalid event source URI scheme"
}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) { s.subscription(w, r, true) }

func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) { s.subscription(w, r, false) }

func (s *Server) subscription(w http.ResponseWriter, r *http.Request, add bool) {
	srcs := r.URL.Query()["eventSource"]
	var list []string
	for _, v := range srcs {
		for _, x := range strings.Split(v, ",") {
			if x != "" {
				list = append(list, x)
			}
		}
	}
	if len(list) == 0 {
		writeError(w, http.StatusBadRequest, "Missing parameter eventSource")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[r.PathValue("applicationName")]
	if a == nil {
		writeError(w, http.StatusNotFound, "Application not found")
		return
	}
	for _, src := range list {
		if code, msg := s.checkSourceLocked(src); code != 0 {
			writeError(w, code, msg)
			return
		}
		if !add && !a.sources[src] {
			writeError(w, http.StatusConflict, "Application not subscribed to event source")
			return
		}
	}
	for _, src := range list {
		if add {
			a.sources[src] = true
		} else {
			delete(a.sources, src)
		}
	}
	writeJSON(w, http.StatusOK, a.json())
}

// emitLocked sends an endpoint event to every application that sees that
// endpoint (subscribeAll, endpoint:PJSIP, or endpoint:PJSIP/<id>), filling
// in application, timestamp and asterisk_id. s.mu must be held.
func (s *Server) emitLocked(endpointID string, ev map[string]any) {
	ev["timestamp"] = ariTime(time.Now())
	ev["asterisk_id"] = s.opts.EntityID
	for _, a := range s.apps {
		if a.conn == nil {
			continue
		}
		if !a.subscribeAll && !a.sources["endpoint:PJSIP"] && !a.sources["endpoint:PJSIP/"+endpointID] {
			continue
		}
		ev["application"] = a.name
		b, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		a.conn.send(b)
	}
}

// SendEvent sends a raw event to every connected application, as Asterisk
// would send any of its event types (ApplicationRegistered, ChannelTransfer,
// or one no client knows yet). application, timestamp and asterisk_id are
// added unless ev has them. It reports how many applications it reached.
func (s *Server) SendEvent(ev map[string]any) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.apps {
		if a.conn == nil {
			continue
		}
		m := make(map[string]any, len(ev)+3)
		m["application"] = a.name
		m["timestamp"] = ariTime(time.Now())
		m["asterisk_id"] = s.opts.EntityID
		for k, v := range ev {
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			continue
		}
		a.conn.send(b)
		n++
	}
	return n
}

// SendRaw sends one websocket text message as is to every connected
// application (malformed JSON included), and reports how many it reached.
func (s *Server) SendRaw(msg []byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.apps {
		if a.conn != nil {
			a.conn.send(append([]byte(nil), msg...))
			n++
		}
	}
	return n
}

// RegisterContact simulates a phone registering uri on the endpoint's first
// AOR, emitting what Asterisk 22 emits: on the endpoint's first contact a
// PeerStatusChange Reachable and an EndpointStateChange online; then a
// ContactStatusChange NonQualified (qualify_frequency 0) or Reachable with
// roundtrip_usec (qualify on). A full AOR with remove_existing replaces its
// oldest contact (ContactStatusChange Removed); without it the REGISTER is
// refused, reported as an error. Re-registering a known uri only refreshes
// its expiration_time, with no event (unless
// Options.ContactStatusOnRefresh). The phone asks for RegisterExpires.
func (s *Server) RegisterContact(endpointID, uri string) error {
	return s.RegisterContactExpires(endpointID, uri, RegisterExpires)
}

// RegisterContactExpires is RegisterContact for a phone asking for
// expires (whole seconds): the AOR's maximum_expiration caps it, and below
// its minimum_expiration the REGISTER is refused (423 Interval Too Brief).
func (s *Server) RegisterContactExpires(endpointID, uri string, expires time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, ok := s.objects["endpoint"][endpointID]
	if !ok {
		return fmt.Errorf("endpoint %q not found", endpointID)
	}
	s.readEndpointLocked(endpointID) // the registrar identifies the endpoint
	aorName, _, _ := strings.Cut(ep["aors"], ",")
	aorName = strings.TrimSpace(aorName)
	aor, ok := s.objects["aor"][aorName]
	if !ok {
		return fmt.Errorf("endpoint %q: AOR %q not found", endpointID, aorName)
	}
	secs := int(expires / time.Second)
	if minE, _ := strconv.Atoi(aor["minimum_expiration"]); secs < minE {
		return fmt.Errorf("AOR %q: expires %d below minimum_expiration %d: 423 Interval Too Brief", aorName, secs, minE)
	}
	if maxE, _ := strconv.Atoi(aor["maximum_expiration"]); maxE > 0 && secs > maxE {
		secs = maxE
	}
	now := time.Now()
	until := time.Unix(now.Add(time.Duration(secs)*time.Second).Unix(), 0)
	cur := s.contacts[endpointID]
	for i, c := range cur {
		if c.uri == uri {
			cur[i].expires = until
			if s.opts.ContactStatusOnRefresh {
				s.emitContactStatusLocked(endpointID, contactInfo(c))
			}
			return nil
		}
	}
	maxC, _ := strconv.Atoi(aor["max_contacts"])
	if maxC == 0 {
		return fmt.Errorf("AOR %q has max_contacts 0: registration refused", aorName)
	}
	first := len(cur) == 0
	if len(cur) >= maxC {
		if aor["remove_existing"] != "true" {
			return fmt.Errorf("AOR %q is full (max_contacts %d): registration refused", aorName, maxC)
		}
		old := cur[0]
		cur = cur[1:]
		s.contacts[endpointID] = cur
		s.emitContactStatusLocked(endpointID, removedInfo(old))
	}
	c := contact{uri: uri, aor: aorName, expires: until, status: "NonQualified"}
	if aor["qualify_frequency"] != "0" {
		c.status = "Reachable"
	}
	s.contacts[endpointID] = append(cur, c)
	if first {
		s.emitReachabilityLocked(endpointID, "Reachable")
	}
	s.emitContactStatusLocked(endpointID, contactInfo(c))
	return nil
}

// emitContactStatusLocked emits a ContactStatusChange of endpointID's
// contact described by info.
func (s *Server) emitContactStatusLocked(endpointID string, info map[string]string) {
	s.emitLocked(endpointID, map[string]any{
		"type":         "ContactStatusChange",
		"endpoint":     s.endpointLocked(endpointID),
		"contact_info": info,
	})
}

// emitReachabilityLocked emits what follows a change of endpointID's
// reachability: a PeerStatusChange to peerStatus ("Reachable" or
// "Unreachable"), then an EndpointStateChange.
func (s *Server) emitReachabilityLocked(endpointID, peerStatus string) {
	s.emitLocked(endpointID, map[string]any{
		"type":     "PeerStatusChange",
		"endpoint": s.endpointLocked(endpointID),
		"peer":     map[string]string{"peer_status": peerStatus},
	})
	s.emitLocked(endpointID, map[string]any{
		"type":     "EndpointStateChange",
		"endpoint": s.endpointLocked(endpointID),
	})
}

// removedInfo is a ContactStatusChange's contact_info for c's removal.
func removedInfo(c contact) map[string]string {
	return map[string]string{"uri": c.uri, "contact_status": "Removed", "aor": c.aor}
}

// contactInfo is a ContactStatusChange's contact_info for c.
func contactInfo(c contact) map[string]string {
	info := map[string]string{"uri": c.uri, "contact_status": c.status, "aor": c.aor}
	if c.status == "Reachable" {
		info["roundtrip_usec"] = "1742"
	}
	return info
}

// UnregisterContact simulates a clean unregistration (Expires: 0) of uri:
// ContactStatusChange Removed, and when it was the last contact
// PeerStatusChange Unreachable and EndpointStateChange offline.
func (s *Server) UnregisterContact(endpointID, uri string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.contacts[endpointID]
	i := -1
	for j, c := range cur {
		if c.uri == uri {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("endpoint %q has no contact %q", endpointID, uri)
	}
	old := cur[i]
	cur = append(cur[:i:i], cur[i+1:]...)
	s.contacts[endpointID] = cur
	if len(cur) == 0 {
		delete(s.contacts, endpointID)
		s.emitReachabilityLocked(endpointID, "Unreachable")
	}
	s.emitContactStatusLocked(endpointID, removedInfo(old))
	return nil
}

// RegisterExpires is the registration period RegisterContact's phones ask
// for; PhoneUserAgent their User-Agent.
const (
	RegisterExpires = 3600 * time.Second
	PhoneUserAgent  = "aritest-phone"
)

// GrantedExpires is the expiry Asterisk's 200 OK gives the contact now:
// what is left of its stored expiration_time (whole seconds) in whole
// seconds, rounded down, as res_pjsip_registrar computes it. A phone that
// asked for 3600 is told 3599.
func (s *Server) GrantedExpires(endpointID, uri string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.contacts[endpointID] {
		if c.uri == uri {
			return int(time.Until(c.expires).Milliseconds() / 1000), true
		}
	}
	return 0, false
}

// SetContactStatus simulates a qualify result for a registered contact
// (status "Reachable", "Unreachable" or "Unknown"): a ContactStatusChange,
// and when the endpoint's reachability changes a PeerStatusChange
// and an EndpointStateChange.
func (s *Server) SetContactStatus(endpointID, uri, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.contacts[endpointID]
	reachable := func() bool {
		for _, c := range cs {
			if c.status == "Reachable" || c.status == "NonQualified" {
				return true
			}
		}
		return false
	}
	before := reachable()
	i := slices.IndexFunc(cs, func(c contact) bool { return c.uri == uri })
	if i < 0 {
		return fmt.Errorf("endpoint %q has no contact %q", endpointID, uri)
	}
	cs[i].status = status
	s.emitContactStatusLocked(endpointID, map[string]string{"uri": uri, "contact_status": status, "aor": cs[i].aor})
	if after := reachable(); after != before {
		peer := "Unreachable"
		if after {
			peer = "Reachable"
		}
		s.emitReachabilityLocked(endpointID, peer)
	}
	return nil
}

// Contacts lists the contacts registered on an endpoint.
func (s *Server) Contacts(endpointID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.contacts[endpointID] {
		out = append(out, c.uri)
	}
	return out
}

// Package aritest is an in-process ARI server for tests, built from
// Asterisk's own API description (shared/ari/api-docs) and behaving like
// Asterisk does (shared/ari/NOTES.md), not like pbxd expects: push
// configuration of res_pjsip endpoint/auth/aor objects with sorcery's merge
// and default semantics, /endpoints, application subscriptions and the
// events websocket. Hooks let a test simulate phones registering, Asterisk
// restarting, and faults.
package aritest

import (
	"crypto/md5" //nolint:gosec // Asterisk's contact ids hash the uri with MD5
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wizard is the sorcery wizard the server models for res_pjsip endpoint,
// auth and aor objects (sorcery.conf).
type Wizard int

const (
	// Memory is the volatile "memory" wizard: a restart forgets every pushed
	// object, as a restarted Asterisk does.
	Memory Wizard = iota
	// AstDB is the "astdb" wizard: pushed objects survive a restart.
	AstDB
	// ConfigOnly maps only the read-only "config" wizard: every create,
	// update and delete is refused with 403.
	ConfigOnly
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Username and Password are the ari.conf user; defaults "pbxd" and
	// "pbxd-secret".
	Username, Password string
	// Wizard chooses the persistence of pushed objects; default Memory.
	Wizard Wizard
	// EntityID is the asterisk_id reported in events and /asterisk/info;
	// default a random MAC-like id.
	EntityID string
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// Cache models a memory_cache in front of the wizard (sorcery.conf
	// "endpoint/cache = memory_cache,..."): an endpoint read once, created
	// or updated is then served from memory, so reading it again does not
	// re-apply its stored fields (see Warnings).
	Cache bool
	// AORTaskTime models the queue on which Asterisk runs the observers of
	// AOR writes after ARI has answered them (queue.go): each write takes
	// this long to be seen by res_pjsip. Zero: seen at once.
	AORTaskTime time.Duration
	// ContactStatusOnRefresh models pjsip.conf's [global]
	// send_contact_status_on_update_registration = yes: a phone's refresh
	// of a registered contact raises a ContactStatusChange with the
	// contact's current status. Off (Asterisk's default), a refresh raises
	// no event.
	ContactStatusOnRefresh bool
}

// Server is a running ARI test server. Its methods are safe for concurrent
// use.
type Server struct {
	opts Options

	mu       sync.Mutex
	addr     string
	srv      *http.Server
	running  bool
	startup  time.Time
	objects  map[string]map[string]object // type → id → object
	static   map[string]map[string]bool   // type → id → from pjsip.conf (read-only)
	contacts map[string][]contact         // endpoint id → registered contacts
	apps     map[string]*app
	failN    int
	failCode int
	// failConfigN counts push-configuration requests still to fail.
	failConfigN int
	latency     time.Duration
	counts      map[string]int
	inflight    map[string]int // method → requests being served
	maxInflight map[string]int // method → most at once since the last reset
	// techPJSIP is whether the PJSIP technology endpoint exists: Asterisk
	// creates it with the first PJSIP endpoint and keeps it until it stops.
	// Without it /endpoints/PJSIP answers 404 and the event source
	// endpoint:PJSIP does not exist (422).
	techPJSIP bool
	// cached are the endpoint ids the memory cache holds (Options.Cache).
	cached map[string]bool
	// warnings are the WARNING lines the real Asterisk would have logged.
	warnings []string
	// aorScans counts the endpoints read because an AOR was created.
	aorScans int
	// seenAOR is every AOR as res_pjsip has applied it (queue.go), nil
	// once deleted; aorQueue the writes it has not run yet.
	seenAOR       map[string]object
	objectPuts    map[string]int // "type/id" → PUTs answered 200
	aorQueue      []aorTask
	aorQueueMax   int
	aorQueueAlert bool
	// globals are the dial plan's global variables set over ARI; a
	// restart forgets them, as Asterisk keeps them in memory only.
	globals map[string]string
}

type contact struct {
	uri     string
	aor     string
	expires time.Time // expiration_time: whole seconds, as Asterisk stores it
	status  string    // last ContactStatusChange status
}

// contactID is a contact's sorcery id: "<aor>;@<md5 of the uri>"
// (res_pjsip location.c).
func contactID(aor, uri string) string {
	sum := md5.Sum([]byte(uri))
	return aor + ";@" + hex.EncodeToString(sum[:])
}

// getContact serves GET .../res_pjsip/contact/{id} for registered
// contacts, with the attributes pbxd reads (Asterisk renders every field
// of the contact object; these are among them).
func (s *Server) getContact(w http.ResponseWriter, id string) {
	s.mu.Lock()
	var body []tuple
	for ep, cs := range s.contacts {
		for _, c := range cs {
			if contactID(c.aor, c.uri) == id {
				body = []tuple{{"uri", c.uri}, {"expiration_time", strconv.FormatInt(c.expires.Unix(), 10)},
					{"user_agent", PhoneUserAgent}, {"endpoint", ep}, {"qualify_frequency", "0"},
					{"via_addr", ""}, {"via_port", "0"}, {"reg_server", ""}, {"prune_on_boot", "no"}}
			}
		}
	}
	s.mu.Unlock()
	if body == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Object with id '%s' not found", id))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// New starts a server listening on opts.Addr (default 127.0.0.1:0).
func New(opts Options) (*Server, error) {
	if opts.Username == "" {
		opts.Username = "pbxd"
	}
	if opts.Password == "" {
		opts.Password = "pbxd-secret"
	}
	if opts.EntityID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		h := hex.EncodeToString(b[:])
		opts.EntityID = strings.Join([]string{h[0:2], h[2:4], h[4:6], h[6:8], h[8:10], h[10:12]}, ":")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s := &Server{
		opts:       opts,
		objects:    map[string]map[string]object{"endpoint": {}, "auth": {}, "aor": {}},
		static:     map[string]map[string]bool{"endpoint": {}, "auth": {}, "aor": {}},
		contacts:   map[string][]contact{},
		apps:       map[string]*app{},
		counts:     map[string]int{},
		cached:     map[string]bool{},
		seenAOR:    map[string]object{},
		objectPuts: map[string]int{},
		globals:    map[string]string{},
		inflight:   map[string]int{}, maxInflight: map[string]int{},
	}
	if err := s.start(opts.Addr); err != nil {
		return nil, err
	}
	return s, nil
}

// NewTest starts a server for t and stops it when t ends.
func NewTest(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("aritest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(addr string) error {
	var ln net.Listener
	var err error
	// A restart rebinds the same port, which the old listener may hold for
	// a moment.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	s.running = true
	s.startup = time.Now()
	srv := s.srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// URL is the ARI base URL, as in ari.conf clients: http://host:port/ari.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr + "/ari"
}

// WebsocketURL is the events URL: ws://host:port/ari/events.
func (s *Server) WebsocketURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "ws://" + s.addr + "/ari/events"
}

// Username returns the ARI user name.
func (s *Server) Username() string { return s.opts.Username }

// Password returns the ARI user's password.
func (s *Server) Password() string { return s.opts.Password }

// StartupTime is the status.startup_time /asterisk/info reports.
func (s *Server) StartupTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startup
}

// Stop shuts the server down like a stopped Asterisk: the listener closes
// and every websocket drops. It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return
	}
	s.running = false
	srv := s.srv
	apps := s.apps
	s.apps = map[string]*app{}
	s.mu.Unlock()
	_ = srv.Close()
	for _, a := range apps {
		if a.conn != nil {
			a.conn.close()
		}
	}
}

// Restart stops the server and starts it again on the same address with a
// new startup time. With the Memory wizard every pushed object and every
// contact is forgotten (objects seeded with Seed, which model pjsip.conf,
// stay); with AstDB they are kept.
func (s *Server) Restart() error {
	s.Stop()
	s.mu.Lock()
	if s.opts.Wizard != AstDB {
		for typ, objs := range s.objects {
			for id := range objs {
				if !s.static[typ][id] {
					delete(objs, id)
				}
			}
		}
		s.contacts = map[string][]contact{}
	}
	// A starting Asterisk loads every stored endpoint (through the cache,
	// which the astdb read fills): the technology exists again only if one
	// does, and each astdb endpoint read logs its warnings.
	if s.opts.Wizard == AstDB {
		for id, o := range s.objects["endpoint"] {
			if !s.static["endpoint"][id] {
				o["set_var"] = ""
			}
		}
	}
	s.cached = map[string]bool{}
	// A starting res_pjsip applies every AOR at once, with nothing queued.
	s.seenAOR = map[string]object{}
	for id, o := range s.objects["aor"] {
		s.seenAOR[id] = o.clone()
	}
	s.aorQueue = nil
	s.globals = map[string]string{}
	s.techPJSIP = len(s.objects["endpoint"]) > 0
	for id := range s.objects["endpoint"] {
		s.readEndpointLocked(id)
	}
	addr := s.addr
	s.mu.Unlock()
	// Asterisk's startup_time has millisecond resolution: make sure it moves.
	time.Sleep(2 * time.Millisecond)
	return s.start(addr)
}

// FailNext makes the next n HTTP requests (websocket upgrades included)
// fail with status code (500 if zero), before authentication.
func (s *Server) FailNext(n, code int) {
	if code == 0 {
		code = http.StatusInternalServerError
	}
	s.mu.Lock()
	s.failN, s.failCode = n, code
	s.mu.Unlock()
}

// FailNextConfig makes the next n push-configuration requests
// (/ari/asterisk/config/...) fail with status code (500 if zero). Health
// checks and events are unaffected, so a test's own request is the one that
// fails, whatever the backend polls meanwhile.
func (s *Server) FailNextConfig(n, code int) {
	if code == 0 {
		code = http.StatusInternalServerError
	}
	s.mu.Lock()
	s.failConfigN, s.failCode = n, code
	s.mu.Unlock()
}

// SetLatency delays every HTTP request by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// Requests returns how many HTTP requests with this method the server has
// received (all of them, failed or not).
func (s *Server) Requests(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[method]
}

// ResetCounts zeroes the request counters (MaxInFlight included).
func (s *Server) ResetCounts() {
	s.mu.Lock()
	s.counts = map[string]int{}
	s.maxInflight = map[string]int{}
	s.mu.Unlock()
}

// MaxInFlight returns the most requests with this method the server was
// serving at once (latency included) since it started or ResetCounts.
func (s *Server) MaxInFlight(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInflight[method]
}

// Object returns a copy of a res_pjsip object as the server holds it
// (Asterisk's rendering of every attribute), for assertions.
func (s *Server) Object(typ, id string) (map[string]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[typ][id]
	if !ok {
		return nil, false
	}
	return o.clone(), true
}

// ObjectIDs lists the ids of the objects of a type, sorted.
func (s *Server) ObjectIDs(typ string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.objects[typ]))
	for id := range s.objects[typ] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Seed creates an object as if configured by hand in pjsip.conf (the
// read-only config wizard): ARI can read it but not update or delete it,
// and it survives restarts.
func (s *Server) Seed(typ, id string, fields map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := schema[typ]; !ok {
		return fmt.Errorf("unknown type %q", typ)
	}
	o := newObject(typ)
	for _, k := range sortedKeys(fields) {
		if err := o.apply(typ, k, fields[k]); err != nil {
			return err
		}
	}
	s.objects[typ][id] = o
	s.static[typ][id] = true
	if typ == "aor" {
		s.seenAOR[id] = o
	}
	if typ == "endpoint" {
		s.techPJSIP = true
	}
	return nil
}

// Tamper changes one attribute of a stored object behind the client's back
// (as an operator with the Asterisk CLI would), bypassing ARI. For
// set_var the value replaces the whole list (newline-separated NAME=value
// entries; "" clears it).
func (s *Server) Tamper(typ, id, attr, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[typ][id]
	if !ok {
		return fmt.Errorf("%s %q not found", typ, id)
	}
	if f, ok := lookupField(typ, attr); ok && f.kind == kindVarList {
		o[attr] = value
		return nil
	}
	return o.apply(typ, attr, value)
}

// Forget deletes a stored object behind the client's back, without events.
func (s *Server) Forget(typ, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.objects[typ][id]
	delete(s.objects[typ], id)
	if typ == "endpoint" {
		delete(s.contacts, id)
	}
	return ok
}

// ForgetContacts drops the endpoint's registered contacts behind the
// client's back, without events (as an Asterisk whose events were lost).
func (s *Server) ForgetContacts(endpointID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.contacts, endpointID)
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// handler wires the routes declared in asterisk.json, endpoints.json,
// applications.json and events.json under /ari.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ari/asterisk/info", s.info)
	mux.HandleFunc("GET /ari/asterisk/ping", s.ping)
	mux.HandleFunc("GET /ari/asterisk/config/dynamic/{configClass}/{objectType}/{id}", s.getObject)
	mux.HandleFunc("PUT /ari/asterisk/config/dynamic/{configClass}/{objectType}/{id}", s.putObject)
	mux.HandleFunc("DELETE /ari/asterisk/config/dynamic/{configClass}/{objectType}/{id}", s.deleteObject)
	mux.HandleFunc("GET /ari/asterisk/variable", s.getGlobal)
	mux.HandleFunc("POST /ari/asterisk/variable", s.setGlobal)
	mux.HandleFunc("GET /ari/endpoints", s.listEndpoints)
	mux.HandleFunc("GET /ari/endpoints/{tech}", s.listEndpoints)
	mux.HandleFunc("GET /ari/endpoints/{tech}/{resource}", s.getEndpoint)
	mux.HandleFunc("GET /ari/applications", s.listApps)
	mux.HandleFunc("GET /ari/applications/{applicationName}", s.getApp)
	mux.HandleFunc("POST /ari/applications/{applicationName}/subscription", s.subscribe)
	mux.HandleFunc("DELETE /ari/applications/{applicationName}/subscription", s.unsubscribe)
	mux.HandleFunc("GET /ari/events", s.events)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Resource not found")
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.Method]++
		s.inflight[r.Method]++
		s.maxInflight[r.Method] = max(s.maxInflight[r.Method], s.inflight[r.Method])
		defer func() {
			s.mu.Lock()
			s.inflight[r.Method]--
			s.mu.Unlock()
		}()
		lat := s.latency
		fail := 0
		if s.failN > 0 {
			s.failN--
			fail = s.failCode
		} else if s.failConfigN > 0 && strings.HasPrefix(r.URL.Path, "/ari/asterisk/config/") {
			s.failConfigN--
			fail = s.failCode
		}
		s.mu.Unlock()
		if lat > 0 {
			time.Sleep(lat)
		}
		if fail != 0 {
			writeError(w, fail, http.StatusText(fail))
			return
		}
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="Asterisk REST Interface"`)
			writeError(w, http.StatusUnauthorized, "Authentication required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if u, p, ok := r.BasicAuth(); ok {
		return u == s.opts.Username && p == s.opts.Password
	}
	if k := r.URL.Query().Get("api_key"); k != "" {
		u, p, _ := strings.Cut(k, ":")
		return u == s.opts.Username && p == s.opts.Password
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg})
}

// ariTime formats a time as ARI does.
func ariTime(t time.Time) string { return t.Format("2006-01-02T15:04:05.000-0700") }

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	start := s.startup
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"build": map[string]string{"os": "Linux", "kernel": "6.1.0", "machine": "x86_64",
			"options": "", "date": "2026-08-06 15:45:49 UTC", "user": "aritest"},
		"system": map[string]string{"version": "22.5.0-aritest", "entity_id": s.opts.EntityID},
		"config": map[string]any{"name": "", "default_language": "en",
			"setid": map[string]string{"user": "asterisk", "group": "asterisk"}},
		"status": map[string]string{"startup_time": ariTime(start), "last_reload_time": ariTime(start)},
	})
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"asterisk_id": s.opts.EntityID, "ping": "pong", "timestamp": ariTime(time.Now()),
	})
}

// knownTypes are res_pjsip sorcery types that exist but are not pushable
// here (mapped to the config wizard only, like transports).
var knownTypes = map[string]bool{
	"transport": true, "contact": true, "identify": true, "registration": true,
	"domain_alias": true, "global": true, "system": true, "outbound-publish": true,
}

// lookupType resolves configClass/objectType, writing a 404 if unknown. It
// returns pushable=false for types that exist but only in pjsip.conf.
func lookupType(w http.ResponseWriter, r *http.Request) (typ string, pushable, ok bool) {
	class, typ := r.PathValue("configClass"), r.PathValue("objectType")
	if class != "res_pjsip" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("configClass '%s' not found", class))
		return "", false, false
	}
	if _, ok := schema[typ]; ok {
		return typ, true, true
	}
	if knownTypes[typ] {
		return typ, false, true
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("objectType '%s' not found", typ))
	return "", false, false
}

type tuple struct {
	Attribute string `json:"attribute"`
	Value     string `json:"value"`
}

// tuples renders an object as ARI does (ast_sorcery_objectset_create):
// every attribute in order, except that an endpoint's channel variables
// (set_var_to_vl) come out as one tuple per variable named after the
// variable, {"attribute":"PBXD_LINE","value":"..."}; without variables
// set_var is one empty tuple.
func tuples(typ string, o object) []tuple {
	out := make([]tuple, 0, len(o))
	for _, f := range schema[typ] {
		if f.kind == kindVarList && o[f.name] != "" {
			for _, v := range strings.Split(o[f.name], "\n") {
				name, val, _ := strings.Cut(v, "=")
				out = append(out, tuple{name, val})
			}
			continue
		}
		out = append(out, tuple{f.name, o[f.name]})
	}
	return out
}

// stirShaken is the option Asterisk 22 no longer supports: its handler
// logs a WARNING every time the field is applied, whatever the value, and
// the object set sorcery builds of an endpoint always carries it
// ("stir_shaken: no"). So every astdb read of an endpoint (the wizard
// re-applies every stored field) and every ARI update of one (the copy
// re-applies the whole object) logs it.
const stirShaken = "stir_shaken"

func stirShakenWarning(id string) string {
	return fmt.Sprintf("Endpoint %s: Option 'stir_shaken' is no longer supported.  Use 'stir_shaken_profile' instead.", id)
}

// warnLocked records a WARNING line; s.mu must be held.
func (s *Server) warnLocked(msg string) { s.warnings = append(s.warnings, msg) }

// Warnings returns the WARNING lines the real Asterisk would have written
// to its log so far.
func (s *Server) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

// EndpointReadsByNewAORs is how many endpoint reads the creation of AORs
// has cost so far: each new AOR makes Asterisk read every endpoint, so
// creating N lines one by one costs about N²/2 of them.
func (s *Server) EndpointReadsByNewAORs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aorScans
}

// readEndpointLocked models sorcery retrieving endpoint id (for ARI or a
// SIP request): the astdb wizard re-applies the stored fields, which logs
// the stir_shaken warning, unless a memory cache in front already holds
// the object. s.mu must be held.
func (s *Server) readEndpointLocked(id string) {
	if _, ok := s.objects["endpoint"][id]; !ok || s.opts.Wizard != AstDB || s.static["endpoint"][id] || s.cached[id] {
		return
	}
	s.warnLocked(stirShakenWarning(id))
	if s.opts.Cache {
		s.cached[id] = true
	}
}

func (s *Server) getObject(w http.ResponseWriter, r *http.Request) {
	typ, pushable, ok := lookupType(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if typ == "contact" {
		s.getContact(w, id)
		return
	}
	s.mu.Lock()
	var o object
	if pushable {
		o = s.objects[typ][id]
	}
	if o != nil && typ == "endpoint" {
		s.readEndpointLocked(id)
	}
	var body []tuple
	if o != nil {
		body = tuples(typ, o)
	}
	s.mu.Unlock()
	if o == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Object with id '%s' not found", id))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) putObject(w http.ResponseWriter, r *http.Request) {
	typ, pushable, ok := lookupType(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.objects[typ][id]
	if !pushable || s.opts.Wizard == ConfigOnly || (exists && s.static[typ][id]) {
		if exists {
			writeError(w, http.StatusForbidden, fmt.Sprintf("Cannot update sorcery objects of type '%s'", typ))
		} else {
			writeError(w, http.StatusForbidden, fmt.Sprintf("Cannot create sorcery objects of type '%s'", typ))
		}
		return
	}
	if exists && len(fields) == 0 {
		writeError(w, http.StatusBadRequest, "Fields must be provided to update object")
		return
	}
	var o object
	if exists {
		if typ == "endpoint" && !s.copyEndpointLocked(id, cur) {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "Allocation failed"})
			return
		}
		o = cur.clone()
	} else {
		o = newObject(typ)
	}
	if !s.applyFieldsLocked(w, typ, id, o, fields, exists) {
		return
	}
	body := tuples(typ, o)
	s.storeObjectLocked(typ, id, o, exists)
	writeJSON(w, http.StatusOK, body)
}

// objectField is one attribute set by a PUT.
type objectField struct {
	Attribute *string `json:"attribute"`
	Value     *string `json:"value"`
}

// decodeFields reads a PUT's body: no body, or no fields, is none; a
// malformed body or field is answered 400 here (ok false).
func decodeFields(w http.ResponseWriter, r *http.Request) (_ []objectField, ok bool) {
	var req struct {
		Fields json.RawMessage `json:"fields"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&req); errors.Is(err, io.EOF) {
		return nil, true
	} else if err != nil {
		writeError(w, http.StatusBadRequest, "Error parsing request body")
		return nil, false
	}
	var fields []objectField
	if len(req.Fields) == 0 || string(req.Fields) == "null" {
		return fields, true
	}
	if err := json.Unmarshal(req.Fields, &fields); err != nil {
		writeError(w, http.StatusBadRequest, "Fields must be provided to update object")
		return nil, false
	}
	for _, f := range fields {
		if f.Attribute == nil || f.Value == nil {
			writeError(w, http.StatusBadRequest, "Invalid field definition: attribute and value are required")
			return nil, false
		}
	}
	return fields, true
}

// copyEndpointLocked is Asterisk's copy of an existing endpoint before an
// update (ast_sorcery_copy), and reports whether it succeeds.
func (s *Server) copyEndpointLocked(id string, cur object) bool {
	s.readEndpointLocked(id)
	// ast_sorcery_copy re-applies the whole object set: the
	// channel variables come back as fields named after the
	// variable, which no endpoint has, and the copy fails.
	s.warnLocked(stirShakenWarning(id))
	// Nor can it parse its own "(nothing)" rendering of an
	// empty codec list.
	fail := cur["set_var"] != ""
	if !fail && cur["allow"] == "(nothing)" {
		s.warnLocked("Cannot allow unknown format 'nothing'")
		fail = true
	}
	return !fail
}

// applyFieldsLocked sets fields on o, the object typ/id being updated
// (exists) or created; a value that fails validation is answered 400 here
// (false).
func (s *Server) applyFieldsLocked(w http.ResponseWriter, typ, id string, o object, fields []objectField, exists bool) bool {
	for _, f := range fields {
		if err := o.apply(typ, *f.Attribute, *f.Value); err != nil {
			op := "Update"
			if !exists {
				op = "Creation"
			}
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s of object '%s' failed field value validation", op, id))
			return false
		}
		if typ == "endpoint" && *f.Attribute == stirShaken {
			s.warnLocked(stirShakenWarning(id))
		}
	}
	return true
}

// storeObjectLocked stores o as typ/id, with what Asterisk does around the
// store: the endpoint reads an AOR's creation causes, the endpoint cache
// or astdb's loss of channel variables, an AOR's contact status.
func (s *Server) storeObjectLocked(typ, id string, o object, exists bool) {
	if typ == "aor" && !exists {
		// res_pjsip (pjsip_options) reads every endpoint when an AOR is
		// created, to find those that reference it.
		for eid := range s.objects["endpoint"] {
			s.aorScans++
			s.readEndpointLocked(eid)
		}
	}
	if typ == "endpoint" {
		s.techPJSIP = true
		if s.opts.Cache {
			s.cached[id] = true
		} else if s.opts.Wizard == AstDB {
			// astdb stores each variable under its own name and drops
			// it when reading the object back: it never survives.
			o["set_var"] = ""
		}
	}
	s.objects[typ][id] = o
	s.objectPuts[typ+"/"+id]++
	if typ == "aor" {
		s.queueAORLocked(id, o.clone())
	}
}

func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request) {
	typ, pushable, ok := lookupType(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	_, exists := s.objects[typ][id]
	if !pushable || !exists {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Object with id '%s' not found", id))
		return
	}
	if s.opts.Wizard == ConfigOnly || s.static[typ][id] {
		writeError(w, http.StatusForbidden, "Could not delete object")
		return
	}
	delete(s.objects[typ], id)
	if typ == "aor" {
		s.queueAORLocked(id, nil)
	}
	// Deleting an endpoint while a phone is registered emits no event.
	if typ == "endpoint" {
		delete(s.contacts, id)
		delete(s.cached, id)
	}
	w.WriteHeader(http.StatusNoContent)
}

type endpointJSON struct {
	Technology string   `json:"technology"`
	Resource   string   `json:"resource"`
	State      string   `json:"state"`
	ChannelIDs []string `json:"channel_ids"`
}

// endpointLocked renders an endpoint; s.mu must be held.
func (s *Server) endpointLocked(id string) endpointJSON {
	state := "offline"
	if s.permanentOnlineLocked(id) {
		state = "online"
	}
	for _, c := range s.contacts[id] {
		if c.status == "Reachable" || c.status == "NonQualified" {
			state = "online"
		}
	}
	return endpointJSON{Technology: "PJSIP", Resource: id, State: state, ChannelIDs: []string{}}
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	if tech := r.PathValue("tech"); tech != "" && !strings.EqualFold(tech, "PJSIP") {
		writeError(w, http.StatusNotFound, "No Endpoints found - invalid tech "+tech)
		return
	}
	s.mu.Lock()
	if r.PathValue("tech") != "" && !s.techPJSIP {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "No Endpoints found - invalid tech "+r.PathValue("tech"))
		return
	}
	ids := make([]string, 0, len(s.objects["endpoint"]))
	for id := range s.objects["endpoint"] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]endpointJSON, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.endpointLocked(id))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	tech, res := r.PathValue("tech"), r.PathValue("resource")
	s.mu.Lock()
	_, ok := s.objects["endpoint"][res]
	var e endpointJSON
	if ok {
		e = s.endpointLocked(res)
	}
	s.mu.Unlock()
	if !ok || !strings.EqualFold(tech, "PJSIP") {
		writeError(w, http.StatusNotFound, "Endpoint not found")
		return
	}
	writeJSON(w, http.StatusOK, e)
}

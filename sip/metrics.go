package sip

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// REGISTER outcomes, the values of the result label of
// pbxd_sip_register_total.
const (
	resultOK               = "ok"                 // 200: bindings added, refreshed, removed or fetched
	resultChallenge        = "challenge"          // 401 to a REGISTER without credentials (normal first leg)
	resultStale            = "stale"              // 401 stale=true: nonce expired or forgotten
	resultUnauthorized     = "unauthorized"       // 401: wrong password, unknown user/domain, replayed nc
	resultForbidden        = "forbidden"          // 403: suspended line, too many contacts in one request
	resultIntervalTooBrief = "interval_too_brief" // 423 with Min-Expires
	resultBadRequest       = "bad_request"        // 400: malformed request or Authorization header
	resultThrottled        = "throttled"          // 403 to a source blocked for failing auth
	resultOutOfOrder       = "out_of_order"       // 500: same Call-ID with a CSeq not higher (RFC 3261 §10.3 step 7)
)

var allResults = []string{resultOK, resultChallenge, resultStale, resultUnauthorized, resultForbidden,
	resultIntervalTooBrief, resultBadRequest, resultThrottled, resultOutOfOrder}

// metrics of one Registrar, registered on the Registerer given to New.
type metrics struct {
	// pbxd_sip_register_total{result}: REGISTER requests answered, by
	// outcome (see the result* constants). Retransmissions absorbed by the
	// transaction layer are not counted.
	registers *prometheus.CounterVec
	byResult  map[string]prometheus.Counter // registers' children, resolved once
	// pbxd_sip_auth_failures_total: REGISTERs whose credentials were wrong
	// (bad password, unknown user or domain, replayed nonce count). These
	// feed the per-source throttle.
	authFailures prometheus.Counter
	// pbxd_sip_throttled_total: times a source IP got blocked for failing
	// authentication too often.
	throttled prometheus.Counter
	// pbxd_sip_bindings_expired_total: bindings removed because they were
	// not refreshed in time.
	expired prometheus.Counter
	// pbxd_sip_store_errors_total: failed writes to the BindingStore (each
	// is retried).
	storeErrors prometheus.Counter
	// pbxd_sip_store_queue_lines: lines with binding changes waiting for
	// the BindingStore (write-behind backlog).
	storeQueue prometheus.Gauge
	// pbxd_sip_responses_unsent_total{reason}: answers not sent:
	// "amplification" (larger than an unauthenticated UDP request),
	// "too_large" (over the UDP maximum; a 513 goes instead),
	// "write_error".
	unsent *prometheus.CounterVec
	// pbxd_sip_requests_dropped_total{reason}: requests dropped unanswered
	// ("unparsable" datagrams; "malformed": no usable Via, From, To,
	// Call-ID or CSeq to answer with; "in_progress": a retransmitted
	// authenticated REGISTER while the original is being answered).
	dropped *prometheus.CounterVec
	// pbxd_sip_connections_refused_total{transport,reason}: TCP/TLS
	// connections closed on accept for a cap ("per_source", "total"), or
	// not accepted yet for want of file descriptors ("fd_limit").
	connsRefused *prometheus.CounterVec
	reg          prometheus.Registerer
}

// connsOpen registers pbxd_sip_connections{transport}: TCP/TLS
// connections open now.
func (m *metrics) connsOpen(g *connGate, transport string) {
	promauto.With(m.reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "pbxd_sip_connections",
		Help:        "SIP TCP/TLS connections open on the built-in registrar.",
		ConstLabels: prometheus.Labels{"transport": transport},
	}, func() float64 { return float64(g.open.Load()) })
}

func newMetrics(reg prometheus.Registerer, active, throttledSources func() float64) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		registers: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pbxd_sip_register_total",
			Help: "SIP REGISTER requests answered by the built-in registrar, by result.",
		}, []string{"result"}),
		authFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "pbxd_sip_auth_failures_total",
			Help: "SIP REGISTER requests with wrong credentials (bad password, unknown user, replay).",
		}),
		throttled: f.NewCounter(prometheus.CounterOpts{
			Name: "pbxd_sip_throttled_total",
			Help: "Times a source IP was blocked for failing SIP authentication too often.",
		}),
		expired: f.NewCounter(prometheus.CounterOpts{
			Name: "pbxd_sip_bindings_expired_total",
			Help: "SIP bindings removed because they were not refreshed before expiry.",
		}),
		storeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pbxd_sip_store_errors_total",
			Help: "Failed attempts to persist SIP bindings (retried).",
		}),
		storeQueue: f.NewGauge(prometheus.GaugeOpts{
			Name: "pbxd_sip_store_queue_lines",
			Help: "Lines whose binding changes wait to be persisted.",
		}),
	}
	// pbxd_sip_registrations_active: contacts currently registered (all
	// lines), read at scrape time.
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbxd_sip_registrations_active",
		Help: "SIP contacts currently registered on the built-in registrar.",
	}, active)
	// pbxd_sip_throttled_sources: source IPs blocked right now.
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbxd_sip_throttled_sources",
		Help: "Source IPs currently blocked for failing SIP authentication.",
	}, throttledSources)
	m.unsent = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pbxd_sip_responses_unsent_total",
		Help: "SIP answers not sent, by reason (amplification, too_large, write_error).",
	}, []string{"reason"})
	m.dropped = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pbxd_sip_requests_dropped_total",
		Help: "SIP datagrams dropped without an answer, by reason.",
	}, []string{"reason"})
	for _, r := range []string{"amplification", "too_large", "write_error"} {
		m.unsent.WithLabelValues(r)
	}
	m.dropped.WithLabelValues("unparsable")
	m.dropped.WithLabelValues("malformed")
	m.dropped.WithLabelValues("in_progress")
	m.reg = reg
	m.connsRefused = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pbxd_sip_connections_refused_total",
		Help: "SIP TCP/TLS connections closed on accept for a cap, by transport and reason.",
	}, []string{"transport", "reason"})
	for _, t := range []string{"tcp", "tls"} {
		for _, r := range []string{"per_source", "total", "fd_limit"} {
			m.connsRefused.WithLabelValues(t, r)
		}
	}
	m.byResult = make(map[string]prometheus.Counter, len(allResults))
	for _, r := range allResults {
		m.byResult[r] = m.registers.WithLabelValues(r)
	}
	return m
}

// result returns the pbxd_sip_register_total counter of one result.
func (m *metrics) result(result string) prometheus.Counter {
	if c, ok := m.byResult[result]; ok {
		return c
	}
	return m.registers.WithLabelValues(result)
}

// Package provisioning owns the commercial and PBX truth of pbxd: accounts,
// the catalog as sold, subscriptions (seats), lines with their extensions and
// passwords, devices, change orders, and the reconciler that pushes lines
// into the PBX. PostgreSQL is the only source of truth: every change the PBX
// must follow bumps the line's revision in the same transaction.
package provisioning

import (
	"context"
	"log/slog"
	"time"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Clock is the daemon's notion of now.
type Clock interface{ Now() time.Time }

// NotifyChannel is the PostgreSQL channel announcing line changes.
const NotifyChannel = "pbxd_lines"

// Service is the provisioning domain over PostgreSQL.
type Service struct {
	zones  clock.Zones     // accounts' time zones, loaded once each
	db     *store.DB       // units of work, pipelined transactions and LISTEN
	q      *provdb.Queries // provisioning's queries on the pool, outside any transaction
	clock  Clock
	cipher *Cipher
	biller Biller
	subs   SubscriptionWriter // the biller, or Options.Subscriptions without one
	log    *slog.Logger

	changeOrders *prometheus.CounterVec
	linesByState *prometheus.GaugeVec

	// Numbers, requests, hardware (issue 18).
	charger          Charger
	numberQuarantine time.Duration
	numberOrders     *prometheus.CounterVec
	numbersByState   *prometheus.GaugeVec
	requestEvents    *prometheus.CounterVec
	requestsByState  *prometheus.GaugeVec

	// PBX nodes and account moves (issue 19, placement.go, move.go).
	nodes nodeSet
	moves *moveMetrics
}

// Options configure a Service.
type Options struct {
	DB        *store.DB // the database (store.NewDB over the daemon's pool)
	Clock     Clock
	SecretKey []byte // 32 bytes: encrypts line passwords at rest
	Biller    Biller // prices change orders; nil previews quantities only
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	// Charger takes hardware payments; nil: hardware is not sold.
	Charger Charger
	// NumberQuarantine is how long a released number ages before it is
	// sold again.
	NumberQuarantine time.Duration
	// Subscriptions writes the subscriptions a change leaves when there is
	// no Biller (which writes them otherwise: billing owns them).
	Subscriptions SubscriptionWriter
}

// New builds the service and registers its metrics.
func New(o Options) (*Service, error) {
	c, err := NewCipher(o.SecretKey)
	if err != nil {
		return nil, err
	}
	f := promauto.With(o.Registry)
	s := &Service{db: o.DB, q: provdb.New(o.DB), clock: o.Clock, cipher: c, biller: o.Biller, log: o.Logger}
	s.charger, s.numberQuarantine = o.Charger, o.NumberQuarantine
	if s.subs = o.Subscriptions; o.Biller != nil {
		s.subs = o.Biller
	}
	s.moves = newMoveMetrics(o.Registry)
	s.changeOrders = f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_change_orders_total", Help: "Change orders by outcome (previewed, confirmed, conflict, refused)."}, []string{"outcome"})
	s.linesByState = f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_lines", Help: "Lines by state (active, suspended), refreshed every 15 s."}, []string{"state"})
	s.numberOrders = f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_number_orders_total", Help: "Numbers reserved by change orders, and orders refused because the numbers were sold meanwhile (sold_out)."}, []string{"outcome"})
	s.requestEvents = f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_service_requests_events_total", Help: "Service requests entering a state (open, approved, rejected, done), by kind."}, []string{"kind", "state"})
	s.requestsByState = f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_service_requests", Help: "Service requests by kind and state, refreshed every 15 s."}, []string{"kind", "state"})
	s.numbersByState = f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_numbers", Help: "Inventory numbers by kind and state, refreshed every 15 s."}, []string{"kind", "state"})
	// Every counter with a bounded label set exists from start, at 0.
	for _, outcome := range []string{"previewed", "confirmed", "conflict", "refused"} {
		s.changeOrders.WithLabelValues(outcome)
	}
	for _, outcome := range []string{"reserved", "sold_out"} {
		s.numberOrders.WithLabelValues(outcome)
	}
	for _, k := range RequestKinds {
		for _, st := range RequestStates {
			s.requestEvents.WithLabelValues(k, st)
		}
	}
	return s, nil
}

// Run refreshes the slow gauges until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		s.refreshGauges(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Service) refreshGauges(ctx context.Context) {
	rows, err := s.q.CountLines(ctx)
	if err != nil {
		return
	}
	counts := map[string]float64{string(LineActive): 0, string(LineSuspended): 0}
	for _, r := range rows {
		counts[r.State] = float64(r.N)
	}
	for st, n := range counts {
		s.linesByState.WithLabelValues(st).Set(n)
	}
	s.refreshNumberGauge(ctx)
	s.refreshRequestGauge(ctx)
}

// audit records who did what, in the caller's transaction.
func audit(ctx context.Context, tx store.DBTX, at time.Time, actor, accountID, action, object string, details any) error {
	return store.Audit(ctx, tx, at, actor, accountID, action, object, details)
}

// notifyLinesSQL wakes the reconciler when the transaction commits.
const notifyLinesSQL = `SELECT pg_notify($1, '')`

// notifyLines wakes the reconciler when the transaction commits.
func notifyLines(ctx context.Context, tx store.DBTX) error {
	_, err := tx.Exec(ctx, notifyLinesSQL, NotifyChannel)
	return err
}

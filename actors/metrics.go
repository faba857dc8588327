package actors

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the actor system's Prometheus instruments. Build them in
// cmd with NewMetrics and pass them in; nothing here is global.
type Metrics struct {
	Commands      *prometheus.CounterVec // by command and result code ("ok" on success)
	Bookings      prometheus.Counter
	BatchSize     prometheus.Histogram
	MailboxDepth  prometheus.Histogram
	CommitSeconds prometheus.Histogram
	LiveActors    prometheus.Gauge
	Restarts      prometheus.Counter
	Subscribers   prometheus.Gauge
	Dropped       prometheus.Counter // subscribers dropped for falling behind
	Passivations  prometheus.Counter
	// FollowedEvents counts journal entries another writer (another slotd
	// instance) appended that an actor applied and published.
	FollowedEvents prometheus.Counter
	// Conflicts counts conditional appends refused because another writer
	// appended first.
	Conflicts prometheus.Counter
}

// NewMetrics creates the instruments and registers them with reg (nil: not
// registered, as in tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotd_commands_total",
			Help: "Commands answered by tenant actors, by command and result code (ok or an error code)."}, []string{"command", "result"}),
		Bookings: prometheus.NewCounter(prometheus.CounterOpts{Name: "slotd_bookings_total", Help: "Bookings confirmed durably."}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "slotd_batch_size",
			Help: "Commands per group commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		MailboxDepth: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "slotd_mailbox_depth",
			Help: "Messages waiting in a tenant mailbox when a batch starts.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		CommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "slotd_commit_seconds",
			Help: "Latency of one durable journal append.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		LiveActors:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "slotd_live_actors", Help: "Tenant actors in memory."}),
		Restarts:     prometheus.NewCounter(prometheus.CounterOpts{Name: "slotd_actor_restarts_total", Help: "Actor restarts after a panic."}),
		Subscribers:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "slotd_subscribers", Help: "Live availability and feed subscriptions."}),
		Dropped:      prometheus.NewCounter(prometheus.CounterOpts{Name: "slotd_subscribers_dropped_total", Help: "Subscriptions ended because their reader fell behind."}),
		Passivations: prometheus.NewCounter(prometheus.CounterOpts{Name: "slotd_passivations_total", Help: "Idle tenant actors stopped to bound memory."}),
		FollowedEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "slotd_followed_events_total",
			Help: "Journal entries appended by another writer (another slotd instance) that live actors caught up on."}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "slotd_append_conflicts_total",
			Help: "Journal appends refused because another writer appended first; the actor caught up and decided again."}),
	}
	if reg != nil {
		reg.MustRegister(m.Commands, m.Bookings, m.BatchSize, m.MailboxDepth, m.CommitSeconds, m.LiveActors,
			m.Restarts, m.Subscribers, m.Dropped, m.Passivations, m.FollowedEvents, m.Conflicts)
	}
	return m
}

package chat

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus collectors.
type metrics struct {
	started     prometheus.Counter
	finished    *prometheus.CounterVec
	tokens      prometheus.Counter
	tokenEvents prometheus.Counter
	running     prometheus.GaugeFunc
}

func newMetrics(s *Service) *metrics {
	return &metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_chat_generations_started_total",
			Help: "Chat generations started on this node.",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_chat_generations_finished_total",
			Help: "Chat generations ended on this node, by outcome (done, stopped, error).",
		}, []string{"outcome"}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_chat_tokens_total",
			Help: "Tokens received from models.",
		}),
		tokenEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_chat_token_events_total",
			Help: "Token events published (one per token, unless tokens were grouped to fit the history).",
		}),
		running: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_chat_generations_running",
			Help: "Chat generations running now on this node.",
		}, func() float64 { return float64(s.Running()) }),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.started, m.finished, m.tokens, m.tokenEvents, m.running} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

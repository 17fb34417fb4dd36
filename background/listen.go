package background

import (
	"context"
	"log/slog"
	"time"

	"github.com/lib/pq"
)

// Handlers are what Listen calls: one function per channel, with the notification's payload, and
// Lost when notifications may have been missed (the connection dropped).
type Handlers struct {
	Channels map[string]func(payload string)
	Lost     func()
}

// Listen listens to PostgreSQL notifications on h's channels (on one connection) and calls their
// handlers, until ctx ends: other API processes announce revoked keys and changed schemas this
// way, so a change made through any process holds in every process at once. When the connection
// drops, Lost is called (what was sent meanwhile is lost), and again when it is back.
func Listen(ctx context.Context, dsn string, log *slog.Logger, h Handlers) error {
	l := pq.NewListener(dsn, time.Second, time.Minute, func(ev pq.ListenerEventType, err error) {
		if ev == pq.ListenerEventReconnected || ev == pq.ListenerEventConnectionAttemptFailed {
			h.Lost()
		}
		if err != nil {
			log.Warn("notification listener", "error", err)
		}
	})
	defer l.Close()
	for ch := range h.Channels {
		if err := l.Listen(ch); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected: what was sent meanwhile is lost
				h.Lost()
				continue
			}
			if f := h.Channels[n.Channel]; f != nil {
				f(n.Extra)
			}
		case <-time.After(time.Minute):
			if err := l.Ping(); err != nil {
				log.Warn("notification listener", "error", err)
			}
		}
	}
}

package postgres

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// PolicyChannel is the LISTEN/NOTIFY channel on which every policy change
// (revocation, status, protection, device) announces its seq at commit.
const PolicyChannel = "devicegate_policy"

// ReportChannel is the channel on which every proxy report (the policy seq
// a proxy has applied) announces the proxy's name at commit.
const ReportChannel = "devicegate_proxy_report"

// ListenPolicy calls changed for every policy notification until ctx ends
// (then it returns nil), on a connection of its own, reconnecting after
// failures (changes made while it was away are caught up by the caller's
// seq-based sync). A dsn that does not parse is an error at once: it would
// never connect.
func ListenPolicy(ctx context.Context, dsn string, changed func(), log *slog.Logger) error {
	return Listen(ctx, dsn, PolicyChannel, changed, log)
}

// ListenReports calls changed for every proxy report (ReportChannel), like
// ListenPolicy: what waits for a revocation to reach every proxy.
func ListenReports(ctx context.Context, dsn string, changed func(), log *slog.Logger) error {
	return Listen(ctx, dsn, ReportChannel, changed, log)
}

// Listen calls changed for every notification on channel (one of the
// constants above), as ListenPolicy describes.
func Listen(ctx context.Context, dsn, channel string, changed func(), log *slog.Logger) error {
	cfg, err := connConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, whose password it masks only at
		// best: say what is wrong without it.
		return errors.New(channel + " notifications: database.dsn does not parse")
	}
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	for ctx.Err() == nil {
		listened, err := listenOnce(ctx, cfg, channel, changed)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			// A session that worked was lost (a crash, a failover): the
			// next one is tried soon, not after an old outage's backoff.
			backoff = firstBackoff
		}
		log.Warn("notifications interrupted; reconnecting", "channel", channel, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// listenOnce listens on one session until it fails; listened says whether
// LISTEN took effect on it. With a multi-host DSN and
// target_session_attrs=read-write the session is on the current primary
// (a standby refuses LISTEN, and NOTIFY is not replicated).
func listenOnce(ctx context.Context, cfg *pgx.ConnConfig, channel string, changed func()) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return false, err
	}
	changed() // whatever happened before LISTEN took effect (or on the old primary)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		changed()
	}
}

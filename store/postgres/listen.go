package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// PolicyChannel is the LISTEN/NOTIFY channel on which every policy change
// (revocation, status, protection, device) announces its seq at commit.
const PolicyChannel = "devicegate_policy"

// ListenPolicy calls changed for every policy notification until ctx ends,
// on a connection of its own, reconnecting after failures (changes made
// while it was away are caught up by the caller's seq-based sync).
func ListenPolicy(ctx context.Context, dsn string, changed func(), log *slog.Logger) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := listenOnce(ctx, dsn, changed)
		if ctx.Err() != nil {
			return
		}
		log.Warn("policy notifications interrupted; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func listenOnce(ctx context.Context, dsn string, changed func()) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+PolicyChannel); err != nil {
		return err
	}
	changed() // whatever happened before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		changed()
	}
}

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

// ListenPolicy calls changed for every policy notification until ctx ends
// (then it returns nil), on a connection of its own, reconnecting after
// failures (changes made while it was away are caught up by the caller's
// seq-based sync). A dsn that does not parse is an error at once: it would
// never connect.
func ListenPolicy(ctx context.Context, dsn string, changed func(), log *slog.Logger) error {
	if _, err := pgx.ParseConfig(dsn); err != nil {
		// pgx's message quotes the DSN, whose password it masks only at
		// best: say what is wrong without it.
		return errors.New("policy notifications: database.dsn does not parse")
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := listenOnce(ctx, dsn, changed)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("policy notifications interrupted; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
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

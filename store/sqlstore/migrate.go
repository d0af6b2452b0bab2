package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// migrate applies the dialect's numbered migrations that are not applied
// yet, each in its own transaction.
func (s *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(s.d.Migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("migration %s: name must start with a number and '_'", name)
		}
		body, err := fs.ReadFile(s.d.Migrations, name)
		if err != nil {
			return err
		}
		err = s.inTx(ctx, func(tx *txn) error {
			if s.d.MigrationLock != "" {
				if _, err := tx.tx.ExecContext(ctx, s.d.MigrationLock); err != nil {
					return err
				}
			}
			// Created under the lock: concurrent CREATE TABLE IF NOT EXISTS
			// races inside PostgreSQL's catalog.
			if _, err := tx.tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
				return err
			}
			var n int
			if err := tx.tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range strings.Split(string(body), ";\n") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			_, err := tx.tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version) VALUES (?)`), version)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

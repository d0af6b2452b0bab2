// Command seedrevoked adds n revoked devices to a sub-account of a SQLite
// store, for bench/peerbench.sh REVOKED=n (whole-process RSS and throughput
// of the proxy with a large revocation history).
//
//	go run ./bench/seedrevoked -db DATA/devicegate.db -sub bench:staff -n 1000000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strings"

	_ "modernc.org/sqlite"

	"github.com/devicegate/devicegate/bench/revokedrows"
)

func main() {
	path := flag.String("db", "", "SQLite database file")
	sub := flag.String("sub", "", "sub-account as store:name")
	n := flag.Int("n", 1_000_000, "revoked devices to add")
	flag.Parse()
	if err := run(*path, *sub, *n); err != nil {
		fmt.Fprintln(os.Stderr, "seedrevoked:", err)
		os.Exit(1)
	}
}

func run(path, sub string, n int) error {
	storeName, subName, ok := strings.Cut(sub, ":")
	if path == "" || !ok {
		return fmt.Errorf("need -db and -sub store:name")
	}
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var tenantID, subID string
	err = db.QueryRowContext(ctx, `SELECT t.id, s.id FROM tenants t JOIN sub_accounts s ON s.tenant_id = t.id
		WHERE t.name = ? AND s.name = ?`, storeName, subName).Scan(&tenantID, &subID)
	if err != nil {
		return fmt.Errorf("find %s: %w", sub, err)
	}
	return revokedrows.Insert(ctx, db, tenantID, subID, n)
}

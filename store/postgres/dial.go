package postgres

import (
	"errors"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
)

// deadPeerAfter is how long data sent to PostgreSQL may stay without an
// acknowledgment before the connection is given up (TCP_USER_TIMEOUT on
// Linux). Without it a connection whose packets vanish (a partition, a
// host gone without a reset) hangs in TCP's retransmission backoff: a
// proxy's policy sync waited 1.6 s after a 5 s partition healed, and the
// wait doubles with every retransmission up to minutes. With it the sync
// fails, the next one takes a fresh connection, and the proxy catches up
// as soon as the network is back.
const deadPeerAfter = 2 * time.Second

// idleProbe: keepalive probes find a dead connection that sends nothing
// (a LISTEN connection, idle pool connections); deadPeerAfter bounds
// the unanswered probes too.
var idleProbe = net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 2 * time.Second, Count: 3}

// abandonedTxAfter ends a session of ours left idle inside a transaction
// (idle_in_transaction_session_timeout), and with it the row locks it
// holds. Our transactions never wait on anything but the database, so
// such a session is a node cut off mid-transaction: a proxy partitioned
// while it wrote its audit batch held the store's audit head, and every
// revocation of that store waited behind it until the link came back.
const abandonedTxAfter = "5s"

// connConfig parses dsn with the dialer and session settings of every
// connection of this package; a setting in the DSN wins. The error does
// not quote the DSN (pgx's may, password and all).
func connConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("postgres: database.dsn does not parse")
	}
	if _, set := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = abandonedTxAfter
	}
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAliveConfig: idleProbe, Control: setDeadPeerTimeout}
	cfg.DialFunc = d.DialContext
	return cfg, nil
}

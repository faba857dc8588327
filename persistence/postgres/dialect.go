package postgres

import (
	"context"
	"fmt"
	"strings"
)

// dialect is the database slotd is connected to. The schema and statements
// are the same on both except where this package says otherwise:
// PostgreSQL-only defence in depth (row-level security and its
// set_config, the bookings exclusion constraint, NOTIFY) and
// CockroachDB-only multi-region DDL (crdb.go).
type dialect int

const (
	postgres dialect = iota
	cockroach
)

func (d dialect) String() string {
	if d == cockroach {
		return "CockroachDB"
	}
	return "PostgreSQL"
}

// dialectOf classifies the result of SELECT version(): CockroachDB answers
// "CockroachDB CCL v24.1.0 (...)", PostgreSQL "PostgreSQL 15.8 (...)".
func dialectOf(version string) (dialect, error) {
	switch {
	case strings.HasPrefix(version, "CockroachDB"):
		return cockroach, nil
	case strings.HasPrefix(version, "PostgreSQL"):
		return postgres, nil
	}
	return 0, fmt.Errorf("unrecognised database %q: want PostgreSQL or CockroachDB", version)
}

func detectDialect(ctx context.Context, q querier) (dialect, error) {
	var version string
	if err := q.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return 0, fmt.Errorf("detect database: %w", err)
	}
	return dialectOf(version)
}

// Package sqlbench measures durable bookings through the actors on the
// SQL backend (PostgreSQL, a throwaway pgtest cluster) beside the embedded
// Pebble store, with one workload for both, so that their rows in
// docs/benchmarks.md (PostgreSQL section) compare like with like. It has benchmarks only:
//
//	go test -run '^$' -bench . -benchtime 20s ./bench/sqlbench/
package sqlbench

package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrTampered matches every *VerifyError.
var ErrTampered = errors.New("audit: log tampered with")

// A Problem is what Verify found wrong. Problems are a stable enum, only ever added to.
type Problem string

// The problems.
const (
	// ProblemAltered: an entry's bytes do not match the hash stored for it, or are not a valid
	// entry.
	ProblemAltered Problem = "altered"
	// ProblemMisplaced: an entry sits at another index, or in another tenant's log, than the
	// one it was written at (reordered, inserted, shifted, copied).
	ProblemMisplaced Problem = "misplaced"
	// ProblemRemoved: an entry's body is gone and retention does not account for it.
	ProblemRemoved Problem = "removed"
	// ProblemHashAltered: a stored tree hash differs from the one recomputed from the entries.
	ProblemHashAltered Problem = "hash_altered"
	// ProblemTruncated: the log holds fewer entries than its signed checkpoint, or than a
	// trusted checkpoint, names.
	ProblemTruncated Problem = "truncated"
	// ProblemUnsigned: entries beyond the size the signed checkpoint names.
	ProblemUnsigned Problem = "unsigned_entries"
	// ProblemBadCheckpoint: the stored or trusted checkpoint's signature does not verify, or it
	// is not this tenant's.
	ProblemBadCheckpoint Problem = "bad_checkpoint"
	// ProblemRootMismatch: the tree recomputed from the log does not have the signed root:
	// everything stored was rewritten consistently, by someone without the signing key.
	ProblemRootMismatch Problem = "root_mismatch"
	// ProblemInconsistent: the log does not extend a trusted earlier checkpoint (its history
	// was rewritten, or it was rolled back).
	ProblemInconsistent Problem = "inconsistent_with_trusted"
)

// A VerifyError reports the first problem Verify found in a tenant's log: the lowest entry
// index at which the stored log departs from what was signed, or -1 when the problem cannot be
// pinned to one entry (a rewritten root, a bad checkpoint).
type VerifyError struct {
	Tenant  string
	Index   int64
	Problem Problem
	Detail  string
}

func (e *VerifyError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("audit: tenant %s: %s: %s", Sanitize(e.Tenant), e.Problem, e.Detail)
	}
	return fmt.Sprintf("audit: tenant %s: entry %d: %s: %s", Sanitize(e.Tenant), e.Index, e.Problem, e.Detail)
}

// Is makes errors.Is(err, ErrTampered) true.
func (e *VerifyError) Is(target error) bool { return target == ErrTampered }

// A Report is what a successful Verify saw.
type Report struct {
	Checkpoint Checkpoint // the verified head; keep its Note outside the database
	Pruned     int64      // entries below this index may have had their bodies pruned
	Bodies     int64      // entries whose bodies are still stored and were checked
}

const batch = 1024

// Verify recomputes tenant's whole log from what is stored (every entry's hash, every stored
// tree hash, the root) and checks it against the signed checkpoint, and, if trusted is not nil,
// that the log extends that earlier signed checkpoint (a Merkle consistency proof, which
// catches a rollback of the whole log). It returns a *VerifyError naming the first bad index
// on any altered, removed, reordered, inserted or truncated entry.
func (l *Log) Verify(ctx context.Context, tenant string, trusted []byte) (Report, error) {
	fail := func(i int64, p Problem, format string, args ...any) (Report, error) {
		return Report{}, &VerifyError{Tenant: tenant, Index: i, Problem: p, Detail: fmt.Sprintf(format, args...)}
	}
	cp, err := l.head(ctx, tenant)
	if err != nil {
		return Report{}, err
	}
	var tc Checkpoint
	if trusted != nil {
		if tc, err = l.OpenCheckpoint(tenant, trusted); err != nil {
			return fail(-1, ProblemBadCheckpoint, "trusted checkpoint: %v", err)
		}
	}
	length, err := l.store.Len(ctx, tenant)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	n := cp.Size
	if tc.Size > n {
		return fail(n, ProblemTruncated, "log has %d entries, a trusted checkpoint has %d", n, tc.Size)
	}

	// The stored hashes, all of them (about 64 bytes per entry).
	stored := make([]tlog.Hash, 0, tlog.StoredHashCount(n))
	for start := int64(0); start < tlog.StoredHashCount(n); start += batch {
		end := min(start+batch, tlog.StoredHashCount(n))
		idx := make([]int64, 0, end-start)
		for x := start; x < end; x++ {
			idx = append(idx, x)
		}
		hs, err := l.store.ReadHashes(ctx, tenant, idx)
		if err != nil {
			return fail(min(length, n), ProblemTruncated, "stored tree hashes missing: %v", err)
		}
		stored = append(stored, hs...)
	}

	// Pass 1: every stored body against its leaf hash, its position and its tenant.
	type found struct {
		index   int64
		problem Problem
		detail  string
	}
	var first *found
	note := func(i int64, p Problem, format string, args ...any) {
		if first == nil || i < first.index {
			first = &found{i, p, fmt.Sprintf(format, args...)}
		}
	}
	leaves := make([]tlog.Hash, n)
	var missing []int64
	var prunedBefore, bodies int64
	for start := int64(0); start < n; start += batch {
		end := min(start+batch, n)
		bs, err := l.store.ReadBodies(ctx, tenant, start, end)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		for j, b := range bs {
			i := start + int64(j)
			leaf := stored[tlog.StoredHashIndex(0, i)]
			leaves[i] = leaf
			if b == nil {
				missing = append(missing, i)
				continue
			}
			bodies++
			e, err := DecodeEntry(b)
			switch {
			case err == nil && (e.Seq != i || e.Tenant != tenant):
				note(i, ProblemMisplaced, "entry written as %s #%d", Sanitize(e.Tenant), e.Seq)
				continue
			case tlog.RecordHash(b) != leaf:
				note(i, ProblemAltered, "entry does not match its stored hash")
				continue
			case err != nil:
				note(i, ProblemAltered, "stored entry is not valid: %v", err)
				continue
			}
			if e.Action == ActionRetentionPrune {
				if k, err := strconv.ParseInt(e.Detail["pruned_before"], 10, 64); err == nil && k <= i && k > prunedBefore {
					prunedBefore = k
				}
			}
		}
	}
	for _, i := range missing {
		switch {
		case i >= length:
			note(i, ProblemTruncated, "log ends at %d, signed checkpoint says %d", length, n)
		case i >= prunedBefore:
			note(i, ProblemRemoved, "entry body missing; retention pruned only below %d", prunedBefore)
		}
	}

	// Pass 2: rebuild the tree from the leaves and compare every stored hash.
	computed := make([]tlog.Hash, 0, len(stored))
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(computed)) {
				return nil, fmt.Errorf("hash %d not computed", x)
			}
			out[i] = computed[x]
		}
		return out, nil
	})
	for i := int64(0); i < n; i++ {
		hs, err := tlog.StoredHashesForRecordHash(i, leaves[i], r)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		base := tlog.StoredHashIndex(0, i)
		for j, h := range hs {
			if stored[base+int64(j)] != h {
				note(i, ProblemHashAltered, "stored tree hash %d differs from the recomputed one", base+int64(j))
				break
			}
		}
		computed = append(computed, hs...)
	}
	if length > n {
		note(n, ProblemUnsigned, "log holds %d entries, its signed checkpoint %d", length, n)
	}
	if first != nil {
		return fail(first.index, first.problem, "%s", first.detail)
	}

	if n > 0 {
		root, err := tlog.TreeHash(n, r)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		if root != cp.Root {
			return fail(-1, ProblemRootMismatch, "the log's tree does not have the signed root")
		}
	}
	if trusted != nil && tc.Size > 0 {
		proof, err := tlog.ProveTree(n, tc.Size, r)
		if err == nil {
			err = tlog.CheckTree(proof, n, cp.Root, tc.Size, tc.Root)
		}
		if err != nil {
			return fail(-1, ProblemInconsistent, "log does not extend the trusted checkpoint of size %d", tc.Size)
		}
	}
	return Report{Checkpoint: cp, Pruned: prunedBefore, Bodies: bodies}, nil
}

// Prune deletes the bodies of tenant's oldest entries, those older than the retention period,
// keeping every hash so that Verify still checks the whole tree. It first appends a
// retention_prune entry naming the index below which bodies are gone (the proof that the gap is
// retention, not deletion), then deletes them, and returns how many bodies it deleted. It stops
// at the first entry not old enough, and refuses to delete an entry that does not match its
// stored hash (that is evidence).
func (l *Log) Prune(ctx context.Context, tenant string) (int64, error) {
	if l.signer == nil {
		return 0, errors.New("audit: this Log has no signer")
	}
	cp, err := l.head(ctx, tenant)
	if err != nil {
		return 0, err
	}
	cutoff := l.now().Add(-l.retention)
	var firstPresent, end int64 = -1, 0
scan:
	for start := int64(0); start < cp.Size; start += batch {
		stop := min(start+batch, cp.Size)
		bs, err := l.store.ReadBodies(ctx, tenant, start, stop)
		if err != nil {
			return 0, fmt.Errorf("audit: prune: %w", err)
		}
		idx := make([]int64, 0, len(bs))
		for i := start; i < stop; i++ {
			idx = append(idx, tlog.StoredHashIndex(0, i))
		}
		leaves, err := l.store.ReadHashes(ctx, tenant, idx)
		if err != nil {
			return 0, fmt.Errorf("audit: prune: %w", err)
		}
		for j, b := range bs {
			i := start + int64(j)
			if b == nil {
				if firstPresent >= 0 {
					break scan // a gap after present entries: leave it for Verify to report
				}
				continue
			}
			if firstPresent < 0 {
				firstPresent = i
			}
			e, err := DecodeEntry(b)
			if err != nil || tlog.RecordHash(b) != leaves[j] || e.Seq != i {
				return 0, &VerifyError{Tenant: tenant, Index: i, Problem: ProblemAltered,
					Detail: "refusing to prune an entry that does not verify"}
			}
			if !e.Time.Before(cutoff) {
				break scan
			}
			end = i + 1
		}
	}
	if firstPresent < 0 || end <= firstPresent {
		return 0, nil
	}
	_, _, err = l.Append(ctx, tenant, Entry{
		Actor:  "system:retention",
		Action: ActionRetentionPrune,
		Detail: map[string]string{
			"pruned_before": strconv.FormatInt(end, 10),
			"cutoff":        cutoff.UTC().Format(time.RFC3339),
		},
	})
	if err != nil {
		return 0, fmt.Errorf("audit: prune: record the prune: %w", err)
	}
	if err := l.store.DeleteBodies(ctx, tenant, 0, end); err != nil {
		return 0, fmt.Errorf("audit: prune: %w", err)
	}
	return end - firstPresent, nil
}

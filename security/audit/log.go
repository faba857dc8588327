package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultRetention is how long entries are kept when Options.Retention is zero.
const DefaultRetention = 180 * 24 * time.Hour

// Options configure a Log.
type Options struct {
	// Signer signs checkpoints. Without one the Log can verify but not append or prune (the
	// `slotd audit verify` case, which needs only the public key).
	Signer note.Signer
	// Verifier checks checkpoint signatures. Required.
	Verifier note.Verifier
	// Retention is how long entries are kept before Prune deletes their bodies; zero means
	// DefaultRetention.
	Retention time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// A Log appends to and verifies the tenants' audit logs kept in a Store. It is safe for
// concurrent use; several Logs (in several slotd instances) may share one Store.
type Log struct {
	store     Store
	signer    note.Signer
	verifiers note.Verifiers
	retention time.Duration
	now       func() time.Time

	mu sync.Mutex // serialises this instance's appends; the Store's conditional append covers the rest
}

// New returns a Log over store.
func New(store Store, opts Options) (*Log, error) {
	if store == nil || opts.Verifier == nil {
		return nil, errors.New("audit: New needs a store and a verifier")
	}
	if opts.Signer != nil && (opts.Signer.Name() != opts.Verifier.Name() || opts.Signer.KeyHash() != opts.Verifier.KeyHash()) {
		return nil, errors.New("audit: signer and verifier keys do not match")
	}
	l := &Log{store: store, signer: opts.Signer, verifiers: note.VerifierList(opts.Verifier),
		retention: opts.Retention, now: opts.Now}
	if l.retention == 0 {
		l.retention = DefaultRetention
	}
	if l.retention < 0 {
		return nil, errors.New("audit: negative retention")
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// GenerateKey returns a new checkpoint signing key and its verifier key, in the text forms of
// golang.org/x/mod/sumdb/note ("PRIVATE+KEY+name+hash+data" and "name+hash+data"), for
// `slotd audit keygen`. Keep the signer key with the master keys, outside the database; the
// verifier key may be published.
func GenerateKey(name string) (signerKey, verifierKey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// A Checkpoint is a signed statement of a tenant's log: its size and Merkle root.
type Checkpoint struct {
	Tenant string
	Size   int64
	Root   tlog.Hash
	Note   []byte // the signed note; keep it outside the database to detect rollback later
}

const checkpointOrigin = "slotd/audit/"

// checkpointText is the C2SP tlog-checkpoint body: origin, size, base64 root.
func checkpointText(tenant string, size int64, root tlog.Hash) string {
	return fmt.Sprintf("%s%s\n%d\n%s\n", checkpointOrigin, tenant, size, root)
}

func (l *Log) sign(tenant string, size int64, root tlog.Hash) (Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: checkpointText(tenant, size, root)}, l.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return Checkpoint{Tenant: tenant, Size: size, Root: root, Note: msg}, nil
}

// OpenCheckpoint verifies the signature on a checkpoint of tenant's log and parses it.
func (l *Log) OpenCheckpoint(tenant string, signed []byte) (Checkpoint, error) {
	n, err := note.Open(signed, l.verifiers)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint signature: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" || lines[0] != checkpointOrigin+tenant {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint is not one of tenant %s", Sanitize(tenant))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, errors.New("audit: checkpoint size")
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return Checkpoint{}, errors.New("audit: checkpoint root")
	}
	return Checkpoint{Tenant: tenant, Size: size, Root: root, Note: signed}, nil
}

func (l *Log) storeReader(ctx context.Context, tenant string) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return l.store.ReadHashes(ctx, tenant, indexes)
	})
}

// head returns the tenant's verified checkpoint (the zero one, with Tenant set, if the log is
// empty).
func (l *Log) head(ctx context.Context, tenant string) (Checkpoint, error) {
	signed, err := l.store.Head(ctx, tenant)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: read head: %w", err)
	}
	if signed == nil {
		return Checkpoint{Tenant: tenant}, nil
	}
	cp, err := l.OpenCheckpoint(tenant, signed)
	if err != nil {
		return Checkpoint{}, &VerifyError{Tenant: tenant, Index: -1, Problem: ProblemBadCheckpoint, Detail: err.Error()}
	}
	return cp, nil
}

// Append adds e to tenant's log and returns its index and the new signed checkpoint. It sets
// e.Seq, e.Tenant (e.Tenant must be empty or tenant) and, if zero, e.Time; escapes and
// truncates the text fields; and refuses unknown actions, bad detail keys and anything that
// looks like a secret (*RedactionError). It also refuses to extend a log whose stored tree no
// longer matches its signed checkpoint (*VerifyError), so tampering is never re-signed.
func (l *Log) Append(ctx context.Context, tenant string, e Entry) (int64, Checkpoint, error) {
	if l.signer == nil {
		return 0, Checkpoint{}, errors.New("audit: this Log has no signer")
	}
	if err := checkTenant(tenant); err != nil {
		return 0, Checkpoint{}, err
	}
	if e.Tenant != "" && e.Tenant != tenant {
		return 0, Checkpoint{}, invalid("entry names tenant %s, appending to %s", Sanitize(e.Tenant), tenant)
	}
	e, err := prepare(e)
	if err != nil {
		return 0, Checkpoint{}, err
	}
	e.Tenant = tenant
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC().Round(0)
	e.salt = make([]byte, saltSize)
	if _, err := rand.Read(e.salt); err != nil {
		return 0, Checkpoint{}, fmt.Errorf("audit: salt: %w", err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	// Another instance appended first: re-read the head and try again, after a random pause
	// that grows with each attempt so that two busy instances stop colliding.
	const attempts = 20
	pause := 100 * time.Microsecond
	for range attempts {
		n, cp, err := l.appendOnce(ctx, tenant, e)
		if !errors.Is(err, ErrConflict) {
			return n, cp, err
		}
		t := time.NewTimer(mathrand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, Checkpoint{}, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
	return 0, Checkpoint{}, fmt.Errorf("audit: append for %s: %w after %d attempts", tenant, ErrConflict, attempts)
}

func (l *Log) appendOnce(ctx context.Context, tenant string, e Entry) (int64, Checkpoint, error) {
	prev, err := l.head(ctx, tenant)
	if err != nil {
		return 0, Checkpoint{}, err
	}
	n := prev.Size
	r := l.storeReader(ctx, tenant)
	if n > 0 {
		// The hashes StoredHashes reads below are the ones TreeHash reads: checking them against
		// the signed root first means we only ever sign over an untampered tree.
		root, err := tlog.TreeHash(n, r)
		if err != nil || root != prev.Root {
			return 0, Checkpoint{}, &VerifyError{Tenant: tenant, Index: -1, Problem: ProblemRootMismatch,
				Detail: "stored tree does not match the signed checkpoint; refusing to append"}
		}
	}
	e.Seq = n
	body, err := encode(e)
	if err != nil {
		return 0, Checkpoint{}, err
	}
	hashes, err := tlog.StoredHashes(n, body, r)
	if err != nil {
		return 0, Checkpoint{}, fmt.Errorf("audit: stored hashes: %w", err)
	}
	base := tlog.StoredHashIndex(0, n)
	withNew := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		var old []int64
		var oldAt []int
		for i, x := range indexes {
			if x >= base && x < base+int64(len(hashes)) {
				out[i] = hashes[x-base]
			} else {
				old, oldAt = append(old, x), append(oldAt, i)
			}
		}
		if len(old) > 0 {
			hs, err := r.ReadHashes(old)
			if err != nil {
				return nil, err
			}
			for j, h := range hs {
				out[oldAt[j]] = h
			}
		}
		return out, nil
	})
	root, err := tlog.TreeHash(n+1, withNew)
	if err != nil {
		return 0, Checkpoint{}, fmt.Errorf("audit: tree hash: %w", err)
	}
	cp, err := l.sign(tenant, n+1, root)
	if err != nil {
		return 0, Checkpoint{}, err
	}
	if err := l.store.Append(ctx, tenant, n, body, hashes, cp.Note); err != nil {
		return 0, Checkpoint{}, err
	}
	return n, cp, nil
}

// Entries returns the entries of tenant's log in [start, end) whose bodies are still stored,
// decoded but not verified (Verify does that).
func (l *Log) Entries(ctx context.Context, tenant string, start, end int64) ([]Entry, error) {
	bodies, err := l.store.ReadBodies(ctx, tenant, start, end)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for i, b := range bodies {
		if b == nil {
			continue
		}
		e, err := DecodeEntry(b)
		if err != nil {
			return nil, fmt.Errorf("audit: entry %d: %w", start+int64(i), err)
		}
		out = append(out, e)
	}
	return out, nil
}

// ProveEntry returns the body of entry index of tenant's log, a Merkle inclusion proof for it,
// and the checkpoint the proof is against, for handing one entry to an auditor who holds the
// verifier key: CheckEntry(cp, index, body, proof) convinces them without the rest of the log.
func (l *Log) ProveEntry(ctx context.Context, tenant string, index int64) ([]byte, tlog.RecordProof, Checkpoint, error) {
	cp, err := l.head(ctx, tenant)
	if err != nil {
		return nil, nil, Checkpoint{}, err
	}
	if index < 0 || index >= cp.Size {
		return nil, nil, Checkpoint{}, fmt.Errorf("audit: no entry %d in a log of %d", index, cp.Size)
	}
	bodies, err := l.store.ReadBodies(ctx, tenant, index, index+1)
	if err != nil {
		return nil, nil, Checkpoint{}, err
	}
	if bodies[0] == nil {
		return nil, nil, Checkpoint{}, fmt.Errorf("audit: entry %d was pruned", index)
	}
	proof, err := tlog.ProveRecord(cp.Size, index, l.storeReader(ctx, tenant))
	if err != nil {
		return nil, nil, Checkpoint{}, fmt.Errorf("audit: prove entry: %w", err)
	}
	return bodies[0], proof, cp, nil
}

// CheckEntry verifies that body is entry index of the log described by cp (a checkpoint
// obtained from OpenCheckpoint, so already signature-checked).
func CheckEntry(cp Checkpoint, index int64, body []byte, proof tlog.RecordProof) error {
	return tlog.CheckRecord(proof, cp.Size, cp.Root, index, tlog.RecordHash(body))
}

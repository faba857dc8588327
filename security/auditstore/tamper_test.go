package auditstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/auditstore"
)

// db is the attacker's view: write access to the record store, not to the signing key.
type db struct {
	t  *testing.T
	rs persistence.RecordStore
}

func (d db) get(tenant, kind string, i int64) []byte {
	d.t.Helper()
	r, err := d.rs.GetRecord(context.Background(), tenant, kind, auditstore.Key(i))
	if err != nil {
		d.t.Fatalf("get %s %d: %v", kind, i, err)
	}
	return r.Value
}

func (d db) put(tenant, kind string, i int64, v []byte) {
	d.t.Helper()
	if _, err := d.rs.PutRecord(context.Background(), tenant, kind, auditstore.Key(i), v, persistence.AnyVersion); err != nil {
		d.t.Fatalf("put %s %d: %v", kind, i, err)
	}
}

func (d db) del(tenant, kind string, i int64) {
	d.t.Helper()
	if err := d.rs.DeleteRecord(context.Background(), tenant, kind, auditstore.Key(i), persistence.AnyVersion); err != nil {
		d.t.Fatalf("delete %s %d: %v", kind, i, err)
	}
}

func (d db) headRecord(tenant string) []byte {
	d.t.Helper()
	r, err := d.rs.GetRecord(context.Background(), tenant, auditstore.KindHead, "head")
	if err != nil {
		d.t.Fatalf("get head: %v", err)
	}
	return r.Value
}

func (d db) putHead(tenant string, v []byte) {
	d.t.Helper()
	if _, err := d.rs.PutRecord(context.Background(), tenant, auditstore.KindHead, "head", v, persistence.AnyVersion); err != nil {
		d.t.Fatalf("put head: %v", err)
	}
}

func wantProblem(tb testing.TB, err error, index int64, p audit.Problem) {
	tb.Helper()
	var ve *audit.VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, audit.ErrTampered) {
		tb.Fatalf("Verify = %v, want a *VerifyError %s at %d", err, p, index)
	}
	if ve.Problem != p || ve.Index != index {
		tb.Fatalf("Verify = %s at %d (%v), want %s at %d", ve.Problem, ve.Index, ve, p, index)
	}
}

// TestVerifyDetectsTampering is security/audit's tamper test played against the records:
// an attacker with write access to the database (not to the signing key) changes the stored
// records directly, and Verify names the first index touched, on every backend.
func TestVerifyDetectsTampering(t *testing.T) {
	const n = 37
	const a, b = "tenant-a", "tenant-b"
	tests := []struct {
		name   string
		tamper func(d db)
		index  int64
		want   audit.Problem
	}{
		{"modify a body record", func(d db) {
			d.put(a, auditstore.KindBody, 10, []byte(strings.Replace(string(d.get(a, auditstore.KindBody, 10)), `"account:3"`, `"account:0"`, 1)))
		}, 10, audit.ProblemAltered},
		{"flip one byte of a body", func(d db) {
			v := d.get(a, auditstore.KindBody, 20)
			v[len(v)/2] ^= 0x01
			d.put(a, auditstore.KindBody, 20, v)
		}, 20, audit.ProblemAltered},
		{"modify a body and its leaf hash", func(d db) {
			body := []byte(strings.Replace(string(d.get(a, auditstore.KindBody, 10)), `"192.0.2.7"`, `"203.0.113.9"`, 1))
			d.put(a, auditstore.KindBody, 10, body)
			hs := d.get(a, auditstore.KindHash, 10)
			leaf := tlog.RecordHash(body)
			copy(hs, leaf[:])
			d.put(a, auditstore.KindHash, 10, hs)
		}, 11, audit.ProblemHashAltered},
		{"modify an interior hash", func(d db) {
			hs := d.get(a, auditstore.KindHash, 7) // entry 7 stores the hashes of 6..7, 4..7 and 0..7
			hs[2*tlog.HashSize] ^= 1
			d.put(a, auditstore.KindHash, 7, hs)
		}, 7, audit.ProblemHashAltered},
		{"delete one body record", func(d db) { d.del(a, auditstore.KindBody, 12) }, 12, audit.ProblemRemoved},
		{"delete one entry and close the gap", func(d db) {
			for i := int64(12); i < n-1; i++ {
				d.put(a, auditstore.KindBody, i, d.get(a, auditstore.KindBody, i+1))
			}
			d.del(a, auditstore.KindBody, n-1)
		}, 12, audit.ProblemMisplaced},
		{"swap two body records", func(d db) {
			x, y := d.get(a, auditstore.KindBody, 5), d.get(a, auditstore.KindBody, 30)
			d.put(a, auditstore.KindBody, 5, y)
			d.put(a, auditstore.KindBody, 30, x)
		}, 5, audit.ProblemMisplaced},
		{"insert a forged entry", func(d db) {
			for i := int64(n - 1); i >= 15; i-- {
				d.put(a, auditstore.KindBody, i+1, d.get(a, auditstore.KindBody, i))
			}
			forged := strings.Replace(string(d.get(a, auditstore.KindBody, 3)), `"seq":3,`, `"seq":15,`, 1)
			d.put(a, auditstore.KindBody, 15, []byte(forged))
		}, 15, audit.ProblemAltered},
		{"append an entry past the head", func(d db) {
			forged := strings.Replace(string(d.get(a, auditstore.KindBody, 3)), `"seq":3,`, `"seq":37,`, 1)
			d.put(a, auditstore.KindBody, n, []byte(forged))
		}, n, audit.ProblemUnsigned},
		{"truncate the tail", func(d db) {
			for i := int64(n - 3); i < n; i++ {
				d.del(a, auditstore.KindBody, i)
				d.del(a, auditstore.KindHash, i)
			}
		}, n - 3, audit.ProblemTruncated},
		{"truncate the tail, keep the hashes", func(d db) {
			for i := int64(n - 3); i < n; i++ {
				d.del(a, auditstore.KindBody, i)
			}
		}, n - 3, audit.ProblemTruncated},
		{"copy another tenant's entry", func(d db) {
			d.put(a, auditstore.KindBody, 3, d.get(b, auditstore.KindBody, 3))
		}, 3, audit.ProblemMisplaced},
		{"another tenant's head", func(d db) { d.putHead(a, d.headRecord(b)) }, -1, audit.ProblemBadCheckpoint},
		{"garbage head", func(d db) { d.putHead(a, []byte("{")) }, -1, audit.ProblemBadCheckpoint},
		{"delete the head", func(d db) {
			if err := d.rs.DeleteRecord(context.Background(), a, auditstore.KindHead, "head", persistence.AnyVersion); err != nil {
				d.t.Fatal(err)
			}
		}, 0, audit.ProblemUnsigned},
	}
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					rs := be.open(t)
					st := auditstore.New(rs, lister(a, b))
					s, v := MustKeys(t)
					l := MustLog(t, st, s, v)
					appendN(t, l, a, n)
					appendN(t, l, b, n)
					if _, err := l.Verify(ctx, a, nil); err != nil {
						t.Fatalf("Verify before tampering: %v", err)
					}
					tt.tamper(db{t, rs})
					_, err := l.Verify(ctx, a, nil)
					wantProblem(t, err, tt.index, tt.want)
					if _, err := l.Verify(ctx, b, nil); err != nil {
						t.Fatalf("Verify(%s) after tampering with %s: %v", b, a, err)
					}
					// Appending after the tampering neither hides it nor overwrites evidence:
					// a tampered tree or records past the head refuse the append, a tampered
					// body stays reported at its index.
					_, _, err = l.Append(ctx, a, audit.Entry{Actor: "account:1", Action: audit.ActionSignIn})
					if err != nil && !errors.Is(err, audit.ErrTampered) {
						t.Fatalf("Append to the tampered log = %v, want nil or a VerifyError", err)
					}
					var ve *audit.VerifyError
					if _, err := l.Verify(ctx, a, nil); !errors.As(err, &ve) || ve.Index != tt.index {
						t.Fatalf("Verify after another Append = %v, want a VerifyError at %d", err, tt.index)
					}
					if ts, err := st.Tenants(ctx); err != nil || len(ts) != 2 {
						t.Fatalf("Tenants after tampering = %v, %v; want both", ts, err)
					}
				})
			}
		})
	}
}

// TestRollbackNeedsATrustedCheckpoint: an attacker who deletes the newest records and puts
// back an older head leaves a log consistent in itself; only a checkpoint kept outside the
// database shows the rollback.
func TestRollbackNeedsATrustedCheckpoint(t *testing.T) {
	ctx := context.Background()
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rs := be.open(t)
			d := db{t, rs}
			st := auditstore.New(rs, nil)
			s, v := MustKeys(t)
			l := MustLog(t, st, s, v)
			appendN(t, l, "a", 20)
			oldHead := d.headRecord("a")
			latest := appendN(t, l, "a", 5)
			if _, err := l.Verify(ctx, "a", latest.Note); err != nil {
				t.Fatalf("Verify(trusted latest) on the honest log = %v", err)
			}
			for i := int64(20); i < 25; i++ {
				d.del("a", auditstore.KindBody, i)
				d.del("a", auditstore.KindHash, i)
			}
			d.putHead("a", oldHead)
			if rep, err := l.Verify(ctx, "a", nil); err != nil || rep.Checkpoint.Size != 20 {
				t.Fatalf("Verify(no trusted) after rollback = %+v, %v; want a clean log of 20", rep, err)
			}
			_, err := l.Verify(ctx, "a", latest.Note)
			wantProblem(t, err, 20, audit.ProblemTruncated)
		})
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/auditstore"
)

// auditFixture is a data directory whose tenants acme and beta have audit logs of n entries,
// the first old ones older than the default retention.
type auditFixture struct {
	dir        string
	skey, vkey string
	n, old     int
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	f := &auditFixture{dir: t.TempDir(), n: 12, old: 5}
	var err error
	if f.skey, f.vkey, err = audit.GenerateKey("slotd-test"); err != nil {
		t.Fatal(err)
	}
	st := mustPebble(t, f.dir)
	defer st.Close()
	l := f.log(t, st)
	ctx := context.Background()
	for _, tenant := range []string{"acme", "beta", "idle"} {
		if err := st.PutDirectory(ctx, gateway.KindTenant, tenant, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if tenant == "idle" {
			continue
		}
		for i := range f.n {
			when := time.Now().Add(-time.Duration(f.n-i) * time.Minute)
			if i < f.old {
				when = when.Add(-200 * 24 * time.Hour)
			}
			_, _, err := l.Append(ctx, tenant, audit.Entry{Time: when, Actor: fmt.Sprintf("account:%d", i), Action: audit.ActionSignIn,
				Detail: map[string]string{"ip": "192.0.2.1"}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

func (f *auditFixture) log(t *testing.T, st *pebble.Store) *audit.Log {
	t.Helper()
	s, err := note.NewSigner(f.skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(f.vkey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(auditstore.New(st, nil), audit.Options{Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tamper opens the store and lets fn change its records directly, as an attacker with
// database access would.
func (f *auditFixture) tamper(t *testing.T, fn func(rs persistence.RecordStore)) {
	t.Helper()
	st := mustPebble(t, f.dir)
	defer st.Close()
	fn(st)
}

func (f *auditFixture) env() map[string]string {
	return map[string]string{envAuditVerifier: f.vkey}
}

// TestAuditVerify: `slotd audit verify` passes an intact store and, once one stored record is
// changed, exits non-zero naming the tenant, the entry index and the problem.
func TestAuditVerify(t *testing.T) {
	f := newAuditFixture(t)
	out, err := runSlotd(t, f.env(), "audit", "verify", "-data", f.dir)
	if err != nil {
		t.Fatalf("slotd audit verify on an intact log = %v", err)
	}
	for _, want := range []string{"tenant acme: ok, 12 entries", "tenant beta: ok, 12 entries", "2 tenants, 24 entries verified; all intact"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	f.tamper(t, func(rs persistence.RecordStore) {
		ctx := context.Background()
		r, err := rs.GetRecord(ctx, "acme", auditstore.KindBody, auditstore.Key(7))
		if err != nil {
			t.Fatal(err)
		}
		forged := strings.Replace(string(r.Value), `"account:7"`, `"account:0"`, 1)
		if _, err := rs.PutRecord(ctx, "acme", auditstore.KindBody, auditstore.Key(7), []byte(forged), persistence.AnyVersion); err != nil {
			t.Fatal(err)
		}
	})
	out, err = runSlotd(t, f.env(), "audit", "verify", "-data", f.dir)
	if err == nil {
		t.Fatal("slotd audit verify on a tampered log = nil error")
	}
	if want := "acme (entry 7 altered)"; !strings.Contains(err.Error(), want) {
		t.Fatalf("slotd audit verify = %v; want it to name %q", err, want)
	}
	if !strings.Contains(out, "tenant acme: TAMPERED: audit: tenant acme: entry 7: altered") || !strings.Contains(out, "tenant beta: ok") {
		t.Fatalf("output does not report acme's entry 7 and beta intact")
	}
	// -tenant checks one tenant.
	if _, err := runSlotd(t, f.env(), "audit", "verify", "-data", f.dir, "-tenant", "beta"); err != nil {
		t.Fatalf("slotd audit verify -tenant beta = %v", err)
	}
}

// TestAuditVerifyCheckpoints: a rollback of a whole log (newest entries and head replaced by
// an older state) is consistent in itself; only the checkpoint a previous run kept outside the
// database reveals it, and a log deleted outright is caught the same way.
func TestAuditVerifyCheckpoints(t *testing.T) {
	f := newAuditFixture(t)
	cps := filepath.Join(t.TempDir(), "checkpoints")
	args := []string{"audit", "verify", "-data", f.dir, "-checkpoints", cps}

	// An older head to roll back to.
	var oldHead []byte
	f.tamper(t, func(rs persistence.RecordStore) {
		r, err := rs.GetRecord(context.Background(), "acme", auditstore.KindHead, "head")
		if err != nil {
			t.Fatal(err)
		}
		oldHead = r.Value
	})
	st := mustPebble(t, f.dir)
	l := f.log(t, st)
	for range 3 {
		if _, _, err := l.Append(context.Background(), "acme", audit.Entry{Actor: "account:1", Action: audit.ActionRoleChanged}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	if _, err := runSlotd(t, f.env(), args...); err != nil {
		t.Fatalf("first run = %v", err)
	}
	for _, tenant := range []string{"acme", "beta"} {
		if b, err := os.ReadFile(filepath.Join(cps, tenant+".checkpoint")); err != nil || !strings.HasPrefix(string(b), "slotd/audit/"+tenant+"\n") {
			t.Fatalf("checkpoint of %s = %q, %v", tenant, b, err)
		}
	}

	f.tamper(t, func(rs persistence.RecordStore) {
		ctx := context.Background()
		for i := int64(f.n); i < int64(f.n+3); i++ {
			_ = rs.DeleteRecord(ctx, "acme", auditstore.KindBody, auditstore.Key(i), persistence.AnyVersion)
			_ = rs.DeleteRecord(ctx, "acme", auditstore.KindHash, auditstore.Key(i), persistence.AnyVersion)
		}
		if _, err := rs.PutRecord(ctx, "acme", auditstore.KindHead, "head", oldHead, persistence.AnyVersion); err != nil {
			t.Fatal(err)
		}
		// And beta's log disappears altogether.
		if err := rs.DeleteTenantRecords(ctx, "beta", ""); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := runSlotd(t, f.env(), "audit", "verify", "-data", f.dir); err != nil {
		t.Fatalf("without checkpoints the rolled-back store looks intact, but verify = %v", err)
	}
	_, err := runSlotd(t, f.env(), args...)
	if err == nil || !strings.Contains(err.Error(), "acme (entry 12 truncated)") || !strings.Contains(err.Error(), "beta (entry 0 truncated)") {
		t.Fatalf("with checkpoints, verify = %v; want acme truncated at 12 and beta at 0", err)
	}
}

// TestAuditVerifyPrune: -prune deletes bodies older than the retention after verifying, and
// the pruned log still verifies.
func TestAuditVerifyPrune(t *testing.T) {
	f := newAuditFixture(t)
	env := f.env()
	if _, err := runSlotd(t, env, "audit", "verify", "-data", f.dir, "-prune"); err == nil {
		t.Fatal("-prune without the signer key = nil error")
	}
	env[envAuditSigner] = f.skey
	out, err := runSlotd(t, env, "audit", "verify", "-data", f.dir, "-prune")
	if err != nil || !strings.Contains(out, "tenant acme: ok, 12 entries, pruned 5 older than 180d") || !strings.Contains(out, "10 pruned") {
		t.Fatalf("slotd audit verify -prune = %v", err)
	}
	out, err = runSlotd(t, env, "audit", "verify", "-data", f.dir, "-prune", "-retention", "365d")
	if err != nil || !strings.Contains(out, "tenant acme: ok, 13 entries (bodies below 5 pruned by retention)") {
		t.Fatalf("second run = %v", err)
	}
	for _, bad := range []string{"0d", "-3h", "soon"} {
		if _, err := runSlotd(t, env, "audit", "verify", "-data", f.dir, "-prune", "-retention", bad); err == nil {
			t.Errorf("-retention %s = nil error", bad)
		}
	}
}

func TestAuditKeygen(t *testing.T) {
	out, err := runSlotd(t, nil, "audit", "keygen", "-name", "acme-audit")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "SLOTD_AUDIT_") {
			env[k] = v
		}
	}
	s, v, err := auditKeys(envOf(env), env[envAuditVerifier])
	if err != nil || s == nil || v == nil || s.Name() != "acme-audit" || s.KeyHash() != v.KeyHash() {
		t.Fatalf("keygen output %q gives keys %v, %v, %v", out, s, v, err)
	}
}

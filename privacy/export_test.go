package privacy_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
)

// mustService builds a privacy.Service over r and codec.
func mustService(tb testing.TB, r *actors.Registry, codec *privacy.Codec, log privacy.AuditLog) *privacy.Service {
	tb.Helper()
	svc, err := privacy.NewService(privacy.Config{Tenants: r, Codec: codec, Audit: log, Now: func() time.Time { return t0 }, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// twoTenants sets up acme (Alice and Bob, a hold, a busy block) and globex
// (Alice and Carol) on one store through the privacy codec.
func twoTenants(t testing.TB) (*actors.Registry, *privacy.Codec) {
	t.Helper()
	codec := privacy.NewCodec(mustKeyring(t), memstore.New())
	r := mustRegistry(t, memstore.New(), codec)
	for _, tenant := range []string{"acme", "globex"} {
		mustDo(t, r, tenant, engine.Configure{Config: salon()})
	}
	mustDo(t, r, "acme", engine.Book{BookingID: "a1", ServiceID: "cut", ResourceID: "anna", Start: at(1, 10), Customer: alice})
	mustDo(t, r, "acme", engine.Book{BookingID: "a2", ServiceID: "cut", ResourceID: "ben", Start: at(1, 10), Customer: bob})
	mustDo(t, r, "acme", engine.Book{BookingID: "a3", ServiceID: "class", ResourceID: "room", Start: at(2, 9), Customer: alice})
	mustDo(t, r, "acme", engine.Reschedule{BookingID: "a3", Start: at(2, 11)})
	mustDo(t, r, "acme", engine.Cancel{BookingID: "a3", Reason: "moved away"})
	mustDo(t, r, "acme", engine.PlaceHold{HoldID: "ah1", ServiceID: "cut", ResourceID: "anna", Start: at(3, 9)})
	mustDo(t, r, "acme", engine.ImportBusy{ResourceID: "ben", Source: "gcal", Blocks: []engine.Interval{{Start: at(3, 13), End: at(3, 14)}}})
	mustDo(t, r, "globex", engine.Book{BookingID: "g1", ServiceID: "cut", ResourceID: "anna", Start: at(1, 12), Customer: alice})
	mustDo(t, r, "globex", engine.Book{BookingID: "g2", ServiceID: "cut", ResourceID: "anna", Start: at(1, 13), Customer: carol})
	return r, codec
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// assertAbsent fails if any of needles appears in doc.
func assertAbsent(t *testing.T, what, doc string, needles ...string) {
	t.Helper()
	for _, n := range needles {
		if strings.Contains(strings.ToLower(doc), strings.ToLower(n)) {
			t.Errorf("%s contains %q", what, n)
		}
	}
}

func TestExportCustomer(t *testing.T) {
	ctx := context.Background()
	r, codec := twoTenants(t)
	log, _ := mustAudit(t)
	svc := mustService(t, r, codec, log)
	subject, _, _ := codec.Subject(ctx, "acme", alice.Email)

	got, err := svc.ExportCustomer(ctx, "acme", " Alice.Liddell@Example.COM", "account:owner")
	if err != nil {
		t.Fatal(err)
	}
	cust := privacy.CustomerRecord{Name: alice.Name, Email: alice.Email, Phone: alice.Phone, Subject: subject}
	want := privacy.CustomerExport{Format: "slotd.customer-export", Version: 1, Tenant: "acme", ExportedAt: t0,
		Email: "alice.liddell@example.com", Subjects: []string{subject}, Bookings: []privacy.BookingRecord{
			{ID: "a1", Status: "confirmed", ServiceID: "cut", ServiceName: "Haircut", ResourceID: "anna", ResourceName: "Anna",
				Start: at(1, 10), End: at(1, 10).Add(45 * time.Minute), CreatedAt: t0, UpdatedAt: t0, Customer: cust},
			{ID: "a3", Status: "cancelled", ServiceID: "class", ServiceName: "Yoga class", ResourceID: "room", ResourceName: "Studio",
				Start: at(2, 11), End: at(2, 12), CreatedAt: t0, UpdatedAt: t0, CancelReason: "moved away", Rescheduled: 1, Customer: cust},
		}}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("ExportCustomer(acme, alice) =\n%s\nwant\n%s", g, w)
	}
	// Tenant isolation: globex's export of the same email has only
	// globex's booking, under globex's own pseudonym.
	g, err := svc.ExportCustomer(ctx, "globex", alice.Email, "account:g-owner")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Bookings) != 1 || g.Bookings[0].ID != "g1" || slices.Contains(g.Subjects, subject) {
		t.Errorf("ExportCustomer(globex, alice) = %s, want g1 only under another pseudonym", mustJSON(t, g))
	}
	// Someone unknown to the tenant: an empty export, not an error.
	none, err := svc.ExportCustomer(ctx, "acme", carol.Email, "account:owner")
	if err != nil || len(none.Bookings) != 0 || len(none.Subjects) != 0 {
		t.Errorf("ExportCustomer(acme, carol) = %s, %v; want no bookings", mustJSON(t, none), err)
	}
	if _, err := svc.ExportCustomer(ctx, "acme", "  ", "account:owner"); codeOf(err) != engine.CodeInvalid {
		t.Errorf("ExportCustomer(no email) = %v, want invalid", err)
	}
	// After erasure the customer has nothing left to export.
	if _, err := svc.Erase(ctx, "acme", alice.Email, "account:owner"); err != nil {
		t.Fatal(err)
	}
	after, err := svc.ExportCustomer(ctx, "acme", alice.Email, "account:owner")
	if err != nil || len(after.Bookings) != 0 {
		t.Errorf("ExportCustomer after erasure = %s, %v; want nothing", mustJSON(t, after), err)
	}
}

func TestExportTenant(t *testing.T) {
	ctx := context.Background()
	r, codec := twoTenants(t)
	log, _ := mustAudit(t)
	svc, err := privacy.NewService(privacy.Config{Tenants: r, Codec: codec, Audit: log, Now: func() time.Time { return t0 },
		Accounts: func(_ context.Context, tenant string) (any, error) {
			return []map[string]string{{"email": "owner@" + tenant + ".test", "role": "owner"}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Erase(ctx, "acme", bob.Email, "account:owner"); err != nil {
		t.Fatal(err)
	}
	acme, err := svc.ExportTenant(ctx, "acme", "account:owner")
	if err != nil {
		t.Fatal(err)
	}
	if acme.Format != privacy.FormatTenant || acme.Version != 1 || acme.Tenant != "acme" || acme.Config == nil || acme.Config.Name != "Salon" {
		t.Errorf("ExportTenant(acme) header = %s", mustJSON(t, acme))
	}
	var ids []string
	for _, b := range acme.Bookings {
		ids = append(ids, b.ID)
		switch b.ID {
		case "a1", "a3":
			if b.Customer.Email != alice.Email || b.Customer.Name != alice.Name {
				t.Errorf("booking %s customer = %+v, want Alice in the clear", b.ID, b.Customer)
			}
		case "a2":
			if !b.Customer.Erased || b.Customer.Email != "" || b.Customer.Subject == "" {
				t.Errorf("booking a2 customer = %+v, want Bob erased", b.Customer)
			}
		}
	}
	if !slices.Equal(ids, []string{"a1", "a2", "a3"}) {
		t.Errorf("ExportTenant(acme) bookings %v, want a1 a2 a3", ids)
	}
	if len(acme.Holds) != 1 || acme.Holds[0].ID != "ah1" {
		t.Errorf("ExportTenant(acme) holds = %+v, want ah1", acme.Holds)
	}
	if len(acme.Busy) != 1 || acme.Busy[0].ResourceID != "ben" || acme.Busy[0].Source != "gcal" {
		t.Errorf("ExportTenant(acme) busy = %+v, want ben's gcal block", acme.Busy)
	}
	if acme.JournalSeq == 0 {
		t.Errorf("ExportTenant(acme) journal_seq = 0")
	}
	doc := mustJSON(t, acme)
	if !strings.Contains(doc, "owner@acme.test") {
		t.Errorf("ExportTenant(acme) lacks its accounts")
	}
	// Tenant isolation: nothing of globex in acme's export, and the
	// reverse; nothing of erased Bob anywhere.
	assertAbsent(t, "acme's export", doc, append(secretsOf(carol), append(secretsOf(bob), `"g1"`, `"g2"`, "owner@globex.test")...)...)
	globex, err := svc.ExportTenant(ctx, "globex", "account:g-owner")
	if err != nil {
		t.Fatal(err)
	}
	gdoc := mustJSON(t, globex)
	assertAbsent(t, "globex's export", gdoc, append(secretsOf(bob), `"a1"`, `"a2"`, `"a3"`, `"ah1"`, `"gcal"`, "owner@acme.test")...)
	if !strings.Contains(gdoc, carol.Email) || !strings.Contains(gdoc, alice.Email) {
		t.Errorf("globex's export lacks its own customers")
	}
}

// TestExportsAndErasuresAreAudited: each request leaves an entry in the
// tenant's audit log, naming pseudonyms and counts, never the customer.
func TestExportsAndErasuresAreAudited(t *testing.T) {
	ctx := context.Background()
	r, codec := twoTenants(t)
	log, _ := mustAudit(t)
	svc := mustService(t, r, codec, log)
	if _, err := svc.ExportCustomer(ctx, "acme", alice.Email, "account:owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ExportTenant(ctx, "acme", "account:owner"); err != nil {
		t.Fatal(err)
	}
	rec, err := svc.Erase(ctx, "acme", alice.Email, "account:admin")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := log.Entries(ctx, "acme", 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantActions := []audit.Action{audit.ActionExport, audit.ActionExport, audit.ActionErasure}
	for i, e := range entries {
		if e.Action != wantActions[i] {
			t.Errorf("audit entry %d: %s, want %s", i, e, wantActions[i])
		}
		assertAbsent(t, "audit entry", e.String(), secretsOf(alice)...)
	}
	if last := entries[2]; last.Actor != "account:admin" || rec.AuditSeq != 2 || !strings.Contains(last.Detail["subjects"], rec.Subjects[0]) ||
		last.Detail["bookings"] != "2" {
		t.Errorf("erasure entry = %s (receipt %+v)", last, rec)
	}
	if n, _ := log.Entries(ctx, "globex", 0, 1); len(n) != 0 {
		t.Errorf("globex's audit log has acme's entries: %v", n)
	}
	if _, err := log.Verify(ctx, "acme", nil); err != nil {
		t.Errorf("audit log does not verify: %v", err)
	}
}

// TestEraseIsIdempotent: a repeated erasure, or one of someone the tenant
// never saw, erases nothing more and is still recorded.
func TestEraseIsIdempotent(t *testing.T) {
	ctx := context.Background()
	r, codec := twoTenants(t)
	log, _ := mustAudit(t)
	svc := mustService(t, r, codec, log)
	first, err := svc.Erase(ctx, "acme", alice.Email, "account:owner")
	if err != nil || len(first.Bookings) != 2 {
		t.Fatalf("Erase = %+v, %v", first, err)
	}
	before := snapshotOf(t, r, "acme")
	for _, email := range []string{alice.Email, "nobody@example.com"} {
		again, err := svc.Erase(ctx, "acme", email, "account:owner")
		if err != nil || len(again.Subjects) != 0 || len(again.Bookings) != 0 {
			t.Errorf("Erase(%s) again = %+v, %v; want nothing erased", email, again, err)
		}
	}
	if after := snapshotOf(t, r, "acme"); string(after) != string(before) {
		t.Errorf("a repeated erasure changed the tenant")
	}
	// globex's Alice is untouched.
	for _, b := range bookings(t, r, "globex") {
		if b.ID == "g1" && b.Customer.Email != alice.Email {
			t.Errorf("erasing Alice from acme erased her from globex: %+v", b.Customer)
		}
	}
	if n, _ := log.Entries(ctx, "acme", 0, 3); len(n) != 3 {
		t.Errorf("%d audit entries, want 3", len(n))
	}
}

package privacy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/secrets"
)

// sealed is one ciphertext of a customer found in a store.
type sealed struct {
	where   string // "journal 3", "snapshot"
	booking string
	subject string
	blob    []byte
}

// sealedIn returns every sealed customer of subject in tenant's journal and
// snapshot in st, read the way anyone holding the store can read them.
func sealedIn(tb testing.TB, st persistence.Store, tenant, subject string) []sealed {
	tb.Helper()
	ctx := context.Background()
	snap, _, err := st.Load(ctx, tenant)
	if err != nil {
		tb.Fatal(err)
	}
	entries, err := st.ReadFrom(ctx, tenant, 0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	docs := map[string][]byte{"snapshot": snap.Data}
	for _, e := range entries {
		docs[fmt.Sprintf("journal %d", e.Seq)] = e.Data
	}
	var out []sealed
	for where, doc := range docs {
		if doc == nil {
			continue
		}
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			tb.Fatalf("%s is not JSON: %v", where, err)
		}
		walkBookings(v, func(id string, c map[string]any) {
			s, _ := c["sealed"].(string)
			if c["subject"] != subject || s == "" {
				return
			}
			blob, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				tb.Fatalf("%s: booking %s: sealed is not base64", where, id)
			}
			out = append(out, sealed{where: where, booking: id, subject: subject, blob: blob})
		})
	}
	return out
}

// walkBookings calls fn for every object with an "id" and a "customer"
// object, anywhere in v.
func walkBookings(v any, fn func(id string, customer map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		if c, ok := x["customer"].(map[string]any); ok {
			id, _ := x["id"].(string)
			fn(id, c)
		}
		for _, y := range x {
			walkBookings(y, fn)
		}
	case []any:
		for _, y := range x {
			walkBookings(y, fn)
		}
	}
}

// assertNoneInClear fails if any of needles is stored in the clear in any
// of dirs: in the raw files (what a stolen disk or backup holds, the WAL
// included) or in the Pebble database's keys and values (decompressed).
func assertNoneInClear(t *testing.T, when string, needles []string, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		if found := findIn(rawFiles(t, dir), needles); len(found) > 0 {
			t.Errorf("%s: in the clear in the files of %s: %v", when, filepath.Base(dir), found)
		}
		if found := findIn(pebbleKVs(t, dir), needles); len(found) > 0 {
			t.Errorf("%s: in the clear in the database %s: %v", when, filepath.Base(dir), found)
		}
	}
}

// candidateKeys is a KeyStore that offers one wrapped key for any subject:
// an attacker trying every stored value as the erased subject's key.
type candidateKeys struct{ wrapped []byte }

func (c candidateKeys) Get(context.Context, string, string) ([]byte, bool, error) {
	return c.wrapped, true, nil
}
func (c candidateKeys) Put(context.Context, string, string, []byte) ([]byte, error) {
	return nil, errors.New("read only")
}
func (c candidateKeys) Replace(context.Context, string, string, []byte, []byte) (bool, error) {
	return false, nil
}

// TestCryptoShredding is the erasure proof. Alice and Bob book through the
// actors, which store through the privacy codec in a Pebble data directory
// (subject keys in a second one); a snapshot is taken and the data
// directory is copied as a backup; then Alice is erased. It checks that:
//
//  1. neither customer is ever stored in the clear: not in the data, the
//     keys or the backup, before or after the erasure, in the files or in
//     the database;
//  2. with the master keyring and every stored record, Alice's ciphertexts,
//     in the live journal and snapshot and in the backup's, can no longer
//     be opened (ErrShredded with the key store; with any stored value
//     tried as her key, nothing);
//  3. the booking history stays consistent: the same bookings, times and
//     resources, Alice's anonymised and Bob's intact, availability
//     unchanged, and the journal replays to the live state;
//  4. a restart from the backup with the current key store shows Alice
//     erased too.
func TestCryptoShredding(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dataDir, keysDir, backupDir := filepath.Join(base, "data"), filepath.Join(base, "keys"), filepath.Join(base, "backup")
	ring := mustKeyring(t)
	auditLog, auditStore := mustAudit(t)
	needles := append(secretsOf(alice), secretsOf(bob)...)

	// Bookings, a snapshot, a backup.
	data, keys := mustPebble(t, dataDir), mustPebble(t, keysDir)
	codec := privacy.NewCodec(ring, keys)
	r := mustRegistry(t, data, codec)
	mustDo(t, r, "acme", engine.Configure{Config: salon()})
	book := func(id, svc, res string, start time.Time, c engine.Customer, key string) {
		mustDo(t, r, "acme", engine.Book{BookingID: id, ServiceID: svc, ResourceID: res, Start: start, Customer: c, IdempotencyKey: key})
	}
	book("b1", "cut", "anna", at(1, 10), alice, "key-1")
	book("b2", "cut", "ben", at(1, 10), bob, "key-2")
	book("b3", "class", "room", at(1, 11), alice, "")
	book("b4", "class", "room", at(1, 11), bob, "") // the room is full now
	book("b5", "cut", "anna", at(2, 9), alice, "")
	book("b6", "cut", "anna", at(2, 12), alice, "key-6")
	mustDo(t, r, "acme", engine.Cancel{BookingID: "b5", Reason: "ill"})
	mustDo(t, r, "acme", engine.Reschedule{BookingID: "b6", Start: at(2, 14)})
	mustDo(t, r, "acme", engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "ben", Start: at(3, 9)})
	before := bookings(t, r, "acme")
	slotsBefore := availability(t, r, "acme")
	subjectOf := map[string]string{}
	for _, b := range before {
		subjectOf[b.ID] = b.Customer.Subject
		if b.Customer.Subject == "" || b.Customer.Sealed != "" || b.Customer.Email == "" {
			t.Fatalf("live booking %s has customer %+v: want it in the clear with a pseudonym", b.ID, b.Customer)
		}
	}
	aliceSubject, bobSubject := subjectOf["b1"], subjectOf["b2"]
	if aliceSubject == bobSubject || subjectOf["b3"] != aliceSubject || subjectOf["b5"] != aliceSubject || subjectOf["b4"] != bobSubject {
		t.Fatalf("pseudonyms %v: want one per customer", subjectOf)
	}
	r.Close() // a passivated actor takes a snapshot
	snap, tail, err := data.Load(ctx, "acme")
	if err != nil || snap.Data == nil || len(tail) != 0 {
		t.Fatalf("Load after close = snapshot at %d, %d entries after it, %v; want a snapshot of everything", snap.Seq, len(tail), err)
	}
	_ = data.Close()
	_ = keys.Close()
	copyDir(t, dataDir, backupDir)
	assertNoneInClear(t, "before erasure", needles, dataDir, keysDir, backupDir)

	// Erasure.
	data, keys = mustPebble(t, dataDir), mustPebble(t, keysDir)
	codec = privacy.NewCodec(ring, keys)
	r = mustRegistry(t, data, codec)
	svc := mustService(t, r, codec, auditLog)
	sk := secrets.NewSubjectKeys(ring, privacy.NewKeyStore(keys))
	aliceSealed := sealedIn(t, data, "acme", aliceSubject)
	if len(aliceSealed) < 5 { // b1, b3, b5, b6 in the journal, twice b6, and the snapshot
		t.Fatalf("found %d sealed copies of Alice, want at least 5", len(aliceSealed))
	}
	for _, s := range aliceSealed { // the attack below works while the key exists
		pt, err := sk.OpenFor(ctx, "acme", aliceSubject, "booking/"+s.booking, s.blob)
		if err != nil || !bytes.Contains(pt, []byte(alice.Email)) {
			t.Fatalf("before erasure, %s booking %s opens to %q, %v; want Alice", s.where, s.booking, pt, err)
		}
	}
	rec, err := svc.Erase(ctx, "acme", "  Alice.Liddell@EXAMPLE.com", "account:owner-1")
	if err != nil {
		t.Fatalf("Erase = %v", err)
	}
	if !slices.Equal(rec.Subjects, []string{aliceSubject}) || !slices.Equal(rec.Bookings, []string{"b1", "b3", "b5", "b6"}) {
		t.Errorf("Erase = %+v, want subject %s and bookings b1 b3 b5 b6", rec, aliceSubject)
	}
	after := bookings(t, r, "acme")

	// 3. History consistent, anonymised.
	erased := engine.Customer{Subject: aliceSubject, Erased: true}
	if len(after) != len(before) {
		t.Fatalf("%d bookings after erasure, want %d", len(after), len(before))
	}
	for i, b := range after {
		want := before[i]
		if want.Customer.Subject == aliceSubject {
			want.Customer = erased
		}
		if !sameJSON(b, want) {
			t.Errorf("after erasure booking %s =\n%+v\nwant\n%+v", b.ID, b, want)
		}
	}
	if slotsAfter := availability(t, r, "acme"); !sameJSON(slotsAfter, slotsBefore) {
		t.Errorf("erasure changed availability")
	}
	// Bob still books and reads fine; Alice may come back as a new customer.
	mustDo(t, r, "acme", engine.Book{BookingID: "b7", ServiceID: "cut", ResourceID: "ben", Start: at(2, 10), Customer: alice})
	b7 := bookings(t, r, "acme")
	if i := slices.IndexFunc(b7, func(b engine.Booking) bool { return b.ID == "b7" }); b7[i].Customer.Subject == aliceSubject || b7[i].Customer.Email != alice.Email {
		t.Errorf("Alice's new booking has customer %+v, want her details under a new pseudonym", b7[i].Customer)
	}
	mustDo(t, r, "acme", engine.Cancel{BookingID: "b7"})
	live := snapshotOf(t, r, "acme")
	r.Close()
	_ = data.Close()
	_ = keys.Close()

	// 1. Nothing in the clear, anywhere, after the erasure either.
	assertNoneInClear(t, "after erasure", needles, dataDir, keysDir, backupDir)
	entries, err := auditLog.Entries(ctx, "acme", 0, 1)
	if err != nil || len(entries) != 1 || entries[0].Action != audit.ActionErasure {
		t.Fatalf("audit log = %v, %v; want the erasure", entries, err)
	}
	if found := findIn(map[string][]byte{"audit": []byte(entries[0].String())}, needles); len(found) > 0 {
		t.Errorf("the audit entry names the customer: %v", found)
	}
	_ = auditStore

	// 2. Alice's ciphertexts cannot be opened, from the live store or the
	// backup, with the master keyring and the key store...
	data, keys, backup := mustPebble(t, dataDir), mustPebble(t, keysDir), mustPebble(t, backupDir)
	sk = secrets.NewSubjectKeys(ring, privacy.NewKeyStore(keys))
	for name, st := range map[string]*pebble.Store{"live": data, "backup": backup} {
		found := sealedIn(t, st, "acme", aliceSubject)
		if len(found) < 5 {
			t.Fatalf("%s: found %d sealed copies of Alice, want at least 5", name, len(found))
		}
		for _, s := range found {
			if pt, err := sk.OpenFor(ctx, "acme", aliceSubject, "booking/"+s.booking, s.blob); !errors.Is(err, secrets.ErrShredded) {
				t.Errorf("%s %s: Alice's booking %s opens to %q, %v; want ErrShredded", name, s.where, s.booking, pt, err)
			}
		}
		for _, s := range sealedIn(t, st, "acme", bobSubject) {
			if pt, err := sk.OpenFor(ctx, "acme", bobSubject, "booking/"+s.booking, s.blob); err != nil || !bytes.Contains(pt, []byte(bob.Email)) {
				t.Errorf("%s %s: Bob's booking %s opens to %q, %v; want Bob", name, s.where, s.booking, pt, err)
			}
		}
	}
	// ...nor with any value stored anywhere tried as her key.
	aliceSealed = sealedIn(t, backup, "acme", aliceSubject)
	for _, st := range []*pebble.Store{data, keys, backup} {
		_ = st.Close()
	}
	tried := 0
	for _, dir := range []string{dataDir, keysDir, backupDir} {
		for k, v := range pebbleKVs(t, dir) {
			for _, cand := range [][]byte{v, v[min(8, len(v)):]} {
				ck := secrets.NewSubjectKeys(ring, candidateKeys{cand})
				for _, s := range aliceSealed {
					tried++
					if pt, err := ck.OpenFor(ctx, "acme", aliceSubject, "booking/"+s.booking, s.blob); err == nil {
						t.Errorf("the value of %q in %s opens Alice's booking %s: %q", k, filepath.Base(dir), s.booking, pt)
					}
				}
			}
		}
	}
	if tried == 0 {
		t.Fatal("no candidate keys tried")
	}

	// 3 (cont.). The journal alone replays to the live state, and so does a
	// restart from snapshot and journal.
	data, keys = mustPebble(t, dataDir), mustPebble(t, keysDir)
	codec = privacy.NewCodec(ring, keys)
	all, err := data.ReadFrom(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([][]byte, len(all))
	for i, e := range all {
		raw[i] = e.Data
	}
	evs, err := codec.DecodeEvents(ctx, "acme", raw)
	if err != nil {
		t.Fatal(err)
	}
	replayed := engine.NewState("acme")
	for _, e := range evs {
		if err := replayed.Evolve(e); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := replayed.MarshalSnapshot(); !bytes.Equal(got, live) {
		t.Errorf("journal replay differs from the live state:\nreplay %s\nlive   %s", got, live)
	}
	r = mustRegistry(t, data, codec)
	if got := snapshotOf(t, r, "acme"); !bytes.Equal(got, live) {
		t.Errorf("restart differs from the live state:\nrestart %s\nlive    %s", got, live)
	}
	r.Close()
	_ = data.Close()

	// 4. The backup, restarted with the current key store: Alice erased,
	// Bob intact, the same history.
	backup = mustPebble(t, backupDir)
	r = mustRegistry(t, backup, codec)
	restored := bookings(t, r, "acme")
	if len(restored) != len(before) {
		t.Fatalf("backup has %d bookings, want %d", len(restored), len(before))
	}
	for i, b := range restored {
		want := before[i]
		if want.Customer.Subject == aliceSubject {
			want.Customer = erased
		}
		if !sameJSON(b, want) {
			t.Errorf("backup booking %s =\n%+v\nwant\n%+v", b.ID, b, want)
		}
	}
	if got := availability(t, r, "acme"); !sameJSON(got, slotsBefore) {
		t.Errorf("the backup's availability differs")
	}
	// The export of the backup shows no trace of Alice either.
	svc = mustService(t, r, codec, auditLog)
	exp, err := svc.ExportTenant(ctx, "acme", "operator")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(exp)
	if found := findIn(map[string][]byte{"export": js}, secretsOf(alice)); len(found) > 0 {
		t.Errorf("the backup's export shows Alice: %v", found)
	}
	if !strings.Contains(string(js), bob.Email) {
		t.Errorf("the backup's export lost Bob")
	}
}

// TestScanFindsPlaintext is the control for TestCryptoShredding: through
// the default codec the same scans do find the customer, so their finding
// nothing there means something.
func TestScanFindsPlaintext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	data := mustPebble(t, dir)
	r := mustRegistry(t, data, nil)
	mustDo(t, r, "acme", engine.Configure{Config: salon()})
	mustDo(t, r, "acme", engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "anna", Start: at(1, 10), Customer: alice})
	r.Close()
	_ = data.Close()
	for name, blobs := range map[string]map[string][]byte{"files": rawFiles(t, dir), "database": pebbleKVs(t, dir)} {
		if found := findIn(blobs, secretsOf(alice)); len(found) != len(secretsOf(alice)) {
			t.Errorf("scan of the %s found %v in a plaintext store, want all of %v", name, found, secretsOf(alice))
		}
	}
}

// TestSnapshotBesideTheActorNeedsExistingKeys: a snapshot is a copy of the
// state sealed beside the actor, so an erasure can commit, and the
// subject's key be forgotten, between the copy and its sealing. Sealing
// the copy must not give the subject a new key (that would bring the
// erased customer back, readable): beside the actor it fails with
// actors.ErrSnapshotInActor and creates nothing, and the actor snapshots
// itself.
func TestSnapshotBesideTheActorNeedsExistingKeys(t *testing.T) {
	ctx := t.Context()
	st := mustPebble(t, t.TempDir())
	codec := privacy.NewCodec(mustKeyring(t), st)
	s := engine.NewState("acme")
	if _, err := engine.Apply(s, engine.Configure{Config: salon()}, t0); err != nil {
		t.Fatal(err)
	}
	cmd, err := codec.PrepareCommand(ctx, "acme", engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "anna", Start: at(1, 10), Customer: alice})
	if err != nil {
		t.Fatal(err)
	}
	res, err := engine.Apply(s, cmd, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.EncodeEvents(ctx, "acme", res.Events); err != nil { // the journal's seal: the key is in use
		t.Fatal(err)
	}
	subject := cmd.(engine.Book).Customer.Subject

	snap := s.Snapshot()
	if _, err := codec.EncodeSnapshot(ctx, "acme", snap, false); err != nil {
		t.Fatalf("EncodeSnapshot beside the actor with the key in place = %v", err)
	}
	if err := codec.Forget(ctx, "acme", subject); err != nil { // the copy, then the erasure, then the sealing
		t.Fatal(err)
	}
	data, err := codec.EncodeSnapshot(ctx, "acme", snap, false)
	if !errors.Is(err, actors.ErrSnapshotInActor) || data != nil {
		t.Fatalf("EncodeSnapshot beside the actor after Forget = %d bytes, %v; want actors.ErrSnapshotInActor", len(data), err)
	}
	if keys, err := st.ListRecords(ctx, "acme", privacy.KindSubjectKey, "", "", 0); err != nil || slices.ContainsFunc(keys, isKey) {
		t.Fatalf("subject keys after sealing the snapshot = %v, %v; want none (no new key for a forgotten subject)", keys, err)
	}
}

// gatedSnapshots is the privacy codec with its first snapshot beside the
// actor held, after the copy, until gate is closed; entered is closed when
// it is held, and sealed once its encoding has returned.
type gatedSnapshots struct {
	*privacy.Codec
	entered, gate, sealed chan struct{}
	once                  sync.Once
}

func (g *gatedSnapshots) EncodeSnapshot(ctx context.Context, tenant string, snap *engine.Snapshot, inActor bool) ([]byte, error) {
	first := false
	if !inActor {
		g.once.Do(func() { first = true })
	}
	if !first {
		return g.Codec.EncodeSnapshot(ctx, tenant, snap, inActor)
	}
	close(g.entered)
	<-g.gate
	defer close(g.sealed)
	return g.Codec.EncodeSnapshot(ctx, tenant, snap, inActor)
}

// snapshotLog is a store that keeps every snapshot saved to it.
type snapshotLog struct {
	*pebble.Store
	mu    sync.Mutex
	saved []persistence.Snapshot
}

func (s *snapshotLog) SaveSnapshot(ctx context.Context, tenant string, snap persistence.Snapshot) error {
	s.mu.Lock()
	s.saved = append(s.saved, persistence.Snapshot{Seq: snap.Seq, Data: bytes.Clone(snap.Data)})
	s.mu.Unlock()
	return s.Store.SaveSnapshot(ctx, tenant, snap)
}

// heldSnapshot is a tenant on a store that logs every snapshot saved, whose
// first snapshot beside the actor is held after the copy: Alice's booking
// b1 and Bob's b2, then the copy at seq 3, which still holds Alice in the
// clear.
type heldSnapshot struct {
	st      *snapshotLog
	ring    *secrets.Keyring
	codec   *privacy.Codec
	gated   *gatedSnapshots
	r       *actors.Registry // instance A, whose snapshot is held
	subject string           // Alice's
	open    func()           // lets the held snapshot be sealed
}

func holdSnapshot(t *testing.T) *heldSnapshot {
	t.Helper()
	h := &heldSnapshot{st: &snapshotLog{Store: mustPebble(t, t.TempDir())}, ring: mustKeyring(t)}
	h.codec = privacy.NewCodec(h.ring, h.st.Store)
	h.gated = &gatedSnapshots{Codec: h.codec, entered: make(chan struct{}), gate: make(chan struct{}), sealed: make(chan struct{})}
	h.open = sync.OnceFunc(func() { close(h.gated.gate) })
	h.r = actors.NewRegistry(actors.Config{Store: h.st, Codec: h.gated, Clock: clock.NewManual(t0), Logger: quietLogger(), SnapshotEvery: 3})
	t.Cleanup(h.r.Close)
	t.Cleanup(h.open) // runs first: a failing test does not wait at the gate
	mustDo(t, h.r, "acme", engine.Configure{Config: salon()})
	first := mustDo(t, h.r, "acme", engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "anna", Start: at(1, 10), Customer: alice})
	h.subject = first.Booking.Customer.Subject
	mustDo(t, h.r, "acme", engine.Book{BookingID: "b2", ServiceID: "cut", ResourceID: "ben", Start: at(1, 10), Customer: bob}) // seq 3: due
	select {
	case <-h.gated.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot beside the actor after 3 events")
	}
	return h
}

// forget forgets Alice's key, as Service.Erase does after her erasure.
func (h *heldSnapshot) forget(t *testing.T) {
	t.Helper()
	if err := h.codec.Forget(t.Context(), "acme", h.subject); err != nil {
		t.Fatal(err)
	}
}

// rekey gives Alice's pseudonym a key again. Nothing in slotd can: the
// engine refuses her bookings under it, and her key's tombstone refuses a
// new key. It removes the tombstone first and stands for any path that
// would still get there (a key store restored without it, say), so that
// the actor's own rule, an erasure since the copy drops the copy, is
// tested on its own.
func (h *heldSnapshot) rekey(t *testing.T) {
	t.Helper()
	if err := h.st.DeleteRecord(t.Context(), "acme", privacy.KindSubjectKey, h.subject, persistence.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if err := secrets.NewSubjectKeys(h.ring, privacy.NewKeyStore(h.st.Store)).Create(t.Context(), "acme", h.subject); err != nil {
		t.Fatal(err)
	}
}

// isKey reports whether a subject key record holds a key, not the
// tombstone a forgotten subject leaves.
func isKey(r persistence.Record) bool { return !secrets.IsTombstone(r.Value) }

// release lets the held snapshot be sealed, waits for it, and closes
// instance A (which waits for the snapshot in flight, then takes its last
// one in the actor).
func (h *heldSnapshot) release(t *testing.T) {
	t.Helper()
	h.open()
	select {
	case <-h.gated.sealed:
	case <-time.After(5 * time.Second):
		t.Fatal("the held snapshot was not sealed")
	}
	h.r.Close()
}

// assertB1NeverReadable fails if any snapshot saved shows b1 readable.
func (h *heldSnapshot) assertB1NeverReadable(t *testing.T) {
	t.Helper()
	h.st.mu.Lock()
	saved := slices.Clone(h.st.saved)
	h.st.mu.Unlock()
	if len(saved) == 0 {
		t.Fatal("no snapshot was saved, not even the actor's last")
	}
	for _, snap := range saved {
		state, err := h.codec.DecodeSnapshot(t.Context(), "acme", snap.Data)
		if err != nil {
			t.Fatal(err)
		}
		if b, ok := state.Booking("b1"); ok && !b.Customer.Erased {
			t.Errorf("snapshot at seq %d holds the erased booking b1 readable: %+v", snap.Seq, b.Customer)
		}
	}
}

// TestErasureDuringASnapshotIsNotUndone is the race a snapshot sealed
// beside the actor opens: the copy holds Alice in the clear; she is erased
// and her key forgotten; her pseudonym gets a key again (rekey); then the
// copy is sealed, and under that key her erased booking would be stored
// readable. The actor must not store that copy: no snapshot ever saved,
// nor the state reloaded, may show the erased booking.
func TestErasureDuringASnapshotIsNotUndone(t *testing.T) {
	h := holdSnapshot(t)
	mustDo(t, h.r, "acme", engine.EraseSubject{Subject: h.subject})
	h.forget(t)
	h.rekey(t)
	h.release(t)
	h.assertB1NeverReadable(t)
	r2 := mustRegistry(t, h.st, h.codec)
	for _, b := range bookings(t, r2, "acme") {
		switch {
		case b.ID == "b1" && (!b.Customer.Erased || b.Customer.Name != ""):
			t.Errorf("reloaded b1 = %+v, want erased", b.Customer)
		case b.ID == "b2" && b.Customer.Name != bob.Name:
			t.Errorf("reloaded b2 = %+v, want Bob's booking readable", b.Customer)
		}
	}
}

// TestLaggingInstanceFollowsBeforeItSnapshots: two instances on one store.
// A's copy holds Alice in the clear; B erases her and her key is forgotten
// before A has caught up. A's sealing beside the actor meets the missing
// key (ErrSnapshotInActor); the snapshot A then takes in its actor, sealing
// with keys created, must follow the journal first, or it gives Alice a new
// key and stores her erased booking readable.
func TestLaggingInstanceFollowsBeforeItSnapshots(t *testing.T) {
	h := holdSnapshot(t)
	rB := mustRegistry(t, h.st, h.codec) // instance B erases Alice
	mustDo(t, rB, "acme", engine.EraseSubject{Subject: h.subject})
	h.forget(t)
	h.open() // A has not caught up yet (no notification has reached it)
	<-h.gated.sealed
	time.Sleep(100 * time.Millisecond) // let A's actor take the fallback snapshot
	h.release(t)
	h.assertB1NeverReadable(t)
	if keys, _ := h.st.ListRecords(t.Context(), "acme", privacy.KindSubjectKey, "", "", 0); slices.ContainsFunc(keys, func(r persistence.Record) bool { return r.Key == h.subject && isKey(r) }) {
		t.Errorf("erased subject %s has a key again", h.subject)
	}
}

// TestErasureFollowedFromAnotherWriterSkipsTheSnapshot is
// TestErasureDuringASnapshotIsNotUndone with the erasure made by another
// instance and followed by A from the journal (Notify): it counts as an
// erasure since the copy just the same.
func TestErasureFollowedFromAnotherWriterSkipsTheSnapshot(t *testing.T) {
	h := holdSnapshot(t)
	rB := mustRegistry(t, h.st, h.codec)
	mustDo(t, rB, "acme", engine.EraseSubject{Subject: h.subject})
	h.forget(t)
	h.rekey(t)
	h.r.Notify("acme")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // wait until A has followed the erasure
		erased := false
		_ = h.r.Read(t.Context(), "acme", func(s *engine.State, _ uint64) error { erased = s.SubjectErased(h.subject); return nil })
		if erased {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.release(t)
	h.assertB1NeverReadable(t)
}

package privacy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/secrets"
)

// t0 is the tests' "now": Monday 2030-01-07 06:00 UTC. Bookings are on the
// days after.
var t0 = time.Date(2030, time.January, 7, 6, 0, 0, 0, time.UTC)

// at is hour:00 UTC, day days after t0's date.
func at(day, hour int) time.Time {
	return time.Date(2030, time.January, 7+day, hour, 0, 0, 0, time.UTC)
}

// The customers. Their details are distinctive so that a scan of the
// store's bytes finds them and nothing else.
var (
	alice = engine.Customer{Name: "Alice Liddell", Email: "alice.liddell@example.com", Phone: "+44 7700 900461"}
	bob   = engine.Customer{Name: "Bob Tinkerton", Email: "bob.tinkerton@example.net", Phone: "+1 202 555 0199"}
	carol = engine.Customer{Name: "Carol Quinterra", Email: "carol.quinterra@example.org"}
)

// secretsOf are the strings of c that must never be stored in the clear.
func secretsOf(c engine.Customer) []string {
	out := []string{c.Name, c.Email}
	if c.Phone != "" {
		out = append(out, c.Phone)
	}
	return out
}

// salon is a tenant with two members of staff (capacity 1) and a room
// seating 2, open 09:00–17:00 UTC every day.
func salon() engine.TenantConfig {
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []engine.Range{{Start: "09:00", End: "17:00"}}
	}
	res := func(id, name, kind string, capacity int) engine.Resource {
		return engine.Resource{ID: id, Name: name, Kind: kind, TimeZone: "UTC", Capacity: capacity, Weekly: week}
	}
	return engine.TenantConfig{
		Name: "Salon", TimeZone: "UTC",
		Resources: []engine.Resource{res("anna", "Anna", "staff", 1), res("ben", "Ben", "staff", 1), res("room", "Studio", "room", 2)},
		Services: []engine.Service{
			{ID: "cut", Name: "Haircut", DurationMin: 45, BufferAfterMin: 15, StepMin: 60, Resources: []string{"anna", "ben"}},
			{ID: "class", Name: "Yoga class", DurationMin: 60, StepMin: 60, Resources: []string{"room"}},
		},
	}
}

func mustKeyring(tb testing.TB) *secrets.Keyring {
	tb.Helper()
	secret := make([]byte, secrets.KeySize)
	if _, err := rand.Read(secret); err != nil {
		tb.Fatal(err)
	}
	ring, err := secrets.NewKeyring(secrets.Key{ID: "k1", Secret: secret})
	if err != nil {
		tb.Fatal(err)
	}
	return ring
}

func mustAudit(tb testing.TB) (*audit.Log, *audit.MemoryStore) {
	tb.Helper()
	skey, vkey, err := audit.GenerateKey("slotd-test")
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	store := audit.NewMemoryStore()
	log, err := audit.New(store, audit.Options{Signer: signer, Verifier: verifier, Now: func() time.Time { return t0 }})
	if err != nil {
		tb.Fatal(err)
	}
	return log, store
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// mustPebble opens a Pebble store in dir, closed at the end of the test
// unless closed before.
func mustPebble(tb testing.TB, dir string) *pebble.Store {
	tb.Helper()
	st, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		tb.Fatalf("open pebble %s: %v", dir, err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// mustRegistry starts a registry on store through codec (nil: the default
// JSON codec), with the test clock; closed at the end of the test unless
// closed before.
func mustRegistry(tb testing.TB, store actors.Store, codec actors.Codec) *actors.Registry {
	tb.Helper()
	r := actors.NewRegistry(actors.Config{Store: store, Codec: codec, Clock: clock.NewManual(t0), Logger: quietLogger()})
	tb.Cleanup(r.Close)
	return r
}

func mustDo(tb testing.TB, r *actors.Registry, tenant string, cmd engine.Command) actors.Reply {
	tb.Helper()
	rep, err := r.Do(context.Background(), tenant, cmd)
	if err != nil {
		tb.Fatalf("Do(%s, %s %+v) = %v", tenant, engine.CommandName(cmd), cmd, err)
	}
	return rep
}

func bookings(tb testing.TB, r *actors.Registry, tenant string) []engine.Booking {
	tb.Helper()
	var out []engine.Booking
	if err := r.Read(context.Background(), tenant, func(st *engine.State, _ uint64) error {
		out = st.Bookings(time.Time{}, time.Time{})
		return nil
	}); err != nil {
		tb.Fatalf("Read(%s) = %v", tenant, err)
	}
	return out
}

func snapshotOf(tb testing.TB, r *actors.Registry, tenant string) []byte {
	tb.Helper()
	var data []byte
	if err := r.Read(context.Background(), tenant, func(st *engine.State, _ uint64) error {
		var err error
		data, err = st.MarshalSnapshot()
		return err
	}); err != nil {
		tb.Fatalf("Read(%s) = %v", tenant, err)
	}
	return data
}

func availability(tb testing.TB, r *actors.Registry, tenant string) []engine.Slot {
	tb.Helper()
	var out []engine.Slot
	q := engine.AvailabilityQuery{ServiceID: "cut", From: "2030-01-08", To: "2030-01-11", TimeZone: "UTC"}
	if err := r.Read(context.Background(), tenant, func(st *engine.State, _ uint64) error {
		var err error
		out, err = st.Availability(q, t0)
		return err
	}); err != nil {
		tb.Fatalf("availability of %s: %v", tenant, err)
	}
	return out
}

// copyDir copies the regular files of src into dst, as a backup would.
func copyDir(tb testing.TB, src, dst string) {
	tb.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		tb.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// rawFiles returns every file under dir, by path: the bytes an attacker
// holding a copy of the disk or a backup holds.
func rawFiles(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = b
		return err
	})
	if err != nil {
		tb.Fatalf("read %s: %v", dir, err)
	}
	return out
}

// pebbleKVs returns every key and value of the (closed) Pebble database in
// dir, decompressed: Pebble compresses its tables, so a raw scan of the
// files alone could miss plaintext. Opening a copy leaves dir untouched.
func pebbleKVs(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	cp := filepath.Join(tb.TempDir(), "scan")
	copyDir(tb, dir, cp)
	db, err := pebbledb.Open(cp, &pebbledb.Options{Logger: quietPebble{}})
	if err != nil {
		tb.Fatalf("open %s for scanning: %v", dir, err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer it.Close()
	out := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = append([]byte(nil), it.Value()...)
	}
	if err := it.Error(); err != nil {
		tb.Fatal(err)
	}
	if len(out) == 0 {
		tb.Fatalf("pebble database %s is empty", dir)
	}
	return out
}

// findIn returns, for each needle found anywhere in blobs (keys included),
// where: the proof of what is stored in the clear.
func findIn(blobs map[string][]byte, needles []string) map[string]string {
	found := map[string]string{}
	for where, b := range blobs {
		for _, n := range needles {
			if containsFold(b, n) || containsFold([]byte(where), n) {
				found[n] = where
			}
		}
	}
	return found
}

// containsFold reports whether b contains s, ignoring case.
func containsFold(b []byte, s string) bool {
	return bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(s)))
}

func codeOf(err error) engine.Code {
	var ee *engine.Error
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err == nil {
		return ""
	}
	return "?"
}

// quietPebble discards Pebble's log lines.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// sameJSON compares by JSON encoding, times by instant.
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

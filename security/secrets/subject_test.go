package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestSubjectKeysRoundTrip(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
	blob, err := sk.SealFor(ctx, "tenant-a", "customer-1", "booking-9/email", []byte("ada@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sk.OpenFor(ctx, "tenant-a", "customer-1", "booking-9/email", blob)
	if err != nil || string(got) != "ada@example.com" {
		t.Fatalf("OpenFor(SealFor) = %q, %v", got, err)
	}
	// One key per subject, reused.
	if _, err := sk.SealFor(ctx, "tenant-a", "customer-1", "booking-10/email", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if store.Len() != 1 {
		t.Fatalf("store holds %d keys after two seals for one subject, want 1", store.Len())
	}
	// Bound to tenant, subject and record.
	for _, ids := range [][3]string{
		{"tenant-b", "customer-1", "booking-9/email"},
		{"tenant-a", "customer-2", "booking-9/email"},
		{"tenant-a", "customer-1", "booking-9/phone"},
	} {
		if _, err := sk.SealFor(ctx, ids[0], ids[1], "other", []byte("make sure the key exists")); err != nil {
			t.Fatal(err)
		}
		if got, err := sk.OpenFor(ctx, ids[0], ids[1], ids[2], blob); err == nil {
			t.Fatalf("OpenFor(%v) = %q, want an error", ids, got)
		}
	}
	// Not interchangeable with master-key ciphertexts.
	if _, err := sk.ring.Open(blob, "tenant-a", "booking-9/email"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Keyring.Open(subject blob) = %v, want ErrMalformed", err)
	}
}

func TestSubjectBlobEveryByteChangeFails(t *testing.T) {
	ctx := context.Background()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), NewMemoryKeyStore())
	blob, err := sk.SealFor(ctx, "t", "s", "r", []byte("+44 20 7946 0958"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		tampered := bytes.Clone(blob)
		tampered[i] ^= 0x01
		if got, err := sk.OpenFor(ctx, "t", "s", "r", tampered); err == nil || got != nil {
			t.Fatalf("OpenFor(byte %d flipped) = %q, %v", i, got, err)
		}
	}
}

// TestForgetShredsEveryCopy is the crypto-shredding test: after Forget, no ciphertext of the
// subject opens, not with the master keys, not after the subject gets a new key, and nothing
// left in the key store can bring it back.
func TestForgetShredsEveryCopy(t *testing.T) {
	ctx := context.Background()
	ring := MustKeyring(t, "k1")
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(ring, store)
	personal := map[string]string{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"}
	blobs := map[string][]byte{}
	for field, v := range personal {
		b, err := sk.SealFor(ctx, "tenant-a", "customer-1", "customer-1/"+field, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		blobs[field] = b
	}
	// "Journal" and "backup" copies of the same ciphertexts.
	journal := map[string][]byte{}
	for f, b := range blobs {
		journal[f] = bytes.Clone(b)
	}
	// Another subject of the same tenant is unaffected.
	other, err := sk.SealFor(ctx, "tenant-a", "customer-2", "customer-2/name", []byte("Grace Hopper"))
	if err != nil {
		t.Fatal(err)
	}

	if err := sk.Forget(ctx, "tenant-a", "customer-1"); err != nil {
		t.Fatal(err)
	}
	for f, b := range journal {
		if got, err := sk.OpenFor(ctx, "tenant-a", "customer-1", "customer-1/"+f, b); !errors.Is(err, ErrShredded) || got != nil {
			t.Fatalf("OpenFor(%s) after Forget = %q, %v, want ErrShredded", f, got, err)
		}
	}
	// The store holds only a tombstone for the subject, and no stored bytes contain the
	// plaintext or unwrap to a key that opens the old ciphertexts.
	store.mu.Lock()
	for k, w := range store.keys {
		if k[1] == "customer-1" {
			if !IsTombstone(w) {
				t.Fatalf("store still holds a key for customer-1")
			}
			continue
		}
		pt, err := ring.open(infoSubjectKey, w, k[0], k[1])
		if err != nil {
			t.Fatal(err)
		}
		for f, b := range journal {
			if bytes.Equal(pt[:subjectKID], b[1:1+subjectKID]) {
				t.Fatalf("a remaining key has the id of the forgotten key (%s)", f)
			}
		}
	}
	store.mu.Unlock()

	// Sealing for the subject again, as a writer holding a stale copy of their data would,
	// fails and makes no key: the old data stays erased (a returning customer is a new subject).
	if nb, err := sk.SealFor(ctx, "tenant-a", "customer-1", "customer-1/name", []byte("Ada King")); !errors.Is(err, ErrShredded) || nb != nil {
		t.Fatalf("SealFor after Forget = %x, %v, want ErrShredded", nb, err)
	}
	if _, err := sk.OpenFor(ctx, "tenant-a", "customer-1", "customer-1/name", journal["name"]); !errors.Is(err, ErrShredded) {
		t.Fatalf("OpenFor(old) after a SealFor = %v, want ErrShredded", err)
	}
	if got, err := sk.OpenFor(ctx, "tenant-a", "customer-2", "customer-2/name", other); err != nil || string(got) != "Grace Hopper" {
		t.Fatalf("OpenFor(other subject) = %q, %v", got, err)
	}
}

func TestSubjectKeysWrappedUnderMasterKey(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
	blob, err := sk.SealFor(ctx, "tenant-a", "customer-1", "r", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	w, _, _ := store.Get(ctx, "tenant-a", "customer-1")
	if bytes.Contains(w, blob[1:1+subjectKID]) {
		t.Fatal("the wrapped key shows the key id in the clear")
	}
	// A wrapped key copied to another subject or tenant does not unwrap there.
	for _, dst := range [][2]string{{"tenant-a", "customer-2"}, {"tenant-b", "customer-1"}} {
		if _, err := store.Put(ctx, dst[0], dst[1], w); err != nil {
			t.Fatal(err)
		}
		if _, err := sk.SealFor(ctx, dst[0], dst[1], "r", []byte("x")); !errors.Is(err, ErrAuthentication) {
			t.Fatalf("SealFor with a key copied to %v = %v, want ErrAuthentication", dst, err)
		}
	}
	// Without the master key, the store is useless.
	if _, err := NewSubjectKeys(MustKeyring(t, "k2"), store).OpenFor(ctx, "tenant-a", "customer-1", "r", blob); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("OpenFor under another keyring = %v, want ErrUnknownKey", err)
	}
	if _, err := NewSubjectKeys(MustKeyring(t, "k1"), store).OpenFor(ctx, "tenant-a", "customer-1", "r", blob); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("OpenFor under another key named k1 = %v, want ErrAuthentication", err)
	}
}

func TestSubjectKeysRewrap(t *testing.T) {
	ctx := context.Background()
	old := Key{ID: "old", Secret: randomKey(t)}
	next := Key{ID: "new", Secret: randomKey(t)}
	r1, _ := NewKeyring(old)
	r2, _ := NewKeyring(next, old)
	r3, _ := NewKeyring(next)
	store := NewMemoryKeyStore()
	blob, err := NewSubjectKeys(r1, store).SealFor(ctx, "t", "s", "r", []byte("personal"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSubjectKeys(r3, store).OpenFor(ctx, "t", "s", "r", blob); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("OpenFor before rewrap, old key gone = %v, want ErrUnknownKey", err)
	}
	sk := NewSubjectKeys(r2, store)
	if done, err := sk.Rewrap(ctx, "t", "s"); !done || err != nil {
		t.Fatalf("Rewrap = %v, %v, want true", done, err)
	}
	if done, err := sk.Rewrap(ctx, "t", "s"); done || err != nil {
		t.Fatalf("second Rewrap = %v, %v, want false (already under the active key)", done, err)
	}
	if done, err := sk.Rewrap(ctx, "t", "nobody"); done || err != nil {
		t.Fatalf("Rewrap(missing) = %v, %v, want false, nil", done, err)
	}
	got, err := NewSubjectKeys(r3, store).OpenFor(ctx, "t", "s", "r", blob)
	if err != nil || string(got) != "personal" {
		t.Fatalf("OpenFor after rewrap with only the new key = %q, %v", got, err)
	}
}

// rotatedRings returns a keyring with key "old" and the keyring after a
// rotation: "new" active, "old" still there to open what it sealed.
func rotatedRings(t *testing.T) (before, after *Keyring) {
	t.Helper()
	old := Key{ID: "old", Secret: randomKey(t)}
	before, err := NewKeyring(old)
	if err != nil {
		t.Fatal(err)
	}
	after, err = NewKeyring(Key{ID: "new", Secret: randomKey(t)}, old)
	if err != nil {
		t.Fatal(err)
	}
	return before, after
}

// TestRewrapNeverResurrects: a Forget between Rewrap's read and write wins.
func TestRewrapNeverResurrects(t *testing.T) {
	ctx := context.Background()
	r1, r2 := rotatedRings(t)
	inner := NewMemoryKeyStore()
	if _, err := NewSubjectKeys(r1, inner).SealFor(ctx, "t", "s", "r", []byte("x")); err != nil {
		t.Fatal(err)
	}
	racing := &forgetOnGet{KeyStore: inner}
	if done, err := NewSubjectKeys(r2, racing).Rewrap(ctx, "t", "s"); done || err != nil {
		t.Fatalf("Rewrap racing Forget = %v, %v, want false, nil", done, err)
	}
	if w, _, _ := inner.Get(ctx, "t", "s"); !IsTombstone(w) {
		t.Fatal("Rewrap wrote back a forgotten key")
	}
}

// forgetOnGet forgets the key right after handing it out, as a concurrent Forget would.
type forgetOnGet struct{ KeyStore }

func (f *forgetOnGet) Get(ctx context.Context, tenant, subject string) ([]byte, bool, error) {
	w, ok, err := f.KeyStore.Get(ctx, tenant, subject)
	if ok {
		_, _ = f.KeyStore.Replace(ctx, tenant, subject, w, tombstone)
	}
	return w, ok, err
}

// concurrentSeals seals "v<i>" as record "r<i>" for subject, n at once, and
// returns the ciphertexts; a seal failing with allowed leaves a nil one.
func concurrentSeals(t *testing.T, sk *SubjectKeys, subject string, n int, allowed error) [][]byte {
	t.Helper()
	blobs := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := sk.SealFor(context.Background(), "t", subject, fmt.Sprint("r", i), []byte(fmt.Sprint("v", i)))
			if err != nil && (allowed == nil || !errors.Is(err, allowed)) {
				t.Error(err)
			}
			blobs[i] = b
		}()
	}
	wg.Wait()
	return blobs
}

func TestConcurrentFirstSealsShareOneKey(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
	blobs := concurrentSeals(t, sk, "new-customer", 32, nil)
	for i, b := range blobs {
		got, err := sk.OpenFor(ctx, "t", "new-customer", fmt.Sprint("r", i), b)
		if err != nil || string(got) != fmt.Sprint("v", i) {
			t.Fatalf("OpenFor(%d) = %q, %v: a concurrent first seal used a key that was lost", i, got, err)
		}
	}
}

func TestCreateIsCreateOnly(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
	if err := sk.Create(ctx, "tenant-a", "fresh"); err != nil {
		t.Fatal(err)
	}
	blob, err := sk.SealFor(ctx, "tenant-a", "fresh", "r1", []byte("ada"))
	if err != nil {
		t.Fatal(err)
	}
	// A second Create must not replace the key the blob was sealed with.
	if err := sk.Create(ctx, "tenant-a", "fresh"); err != nil {
		t.Fatal(err)
	}
	if got, err := sk.OpenFor(ctx, "tenant-a", "fresh", "r1", blob); err != nil || string(got) != "ada" {
		t.Fatalf("OpenFor after a second Create = %q, %v", got, err)
	}
	if store.Len() != 1 {
		t.Fatalf("store holds %d keys, want 1", store.Len())
	}
	// After Forget, Create makes no key; what was sealed stays shredded.
	if err := sk.Forget(ctx, "tenant-a", "fresh"); err != nil {
		t.Fatal(err)
	}
	if err := sk.Create(ctx, "tenant-a", "fresh"); !errors.Is(err, ErrShredded) {
		t.Fatalf("Create after Forget = %v, want ErrShredded", err)
	}
	if _, err := sk.OpenFor(ctx, "tenant-a", "fresh", "r1", blob); err == nil {
		t.Fatal("OpenFor of a forgotten subject's blob succeeded after Create")
	}
	if err := sk.Create(ctx, "", "x"); err == nil {
		t.Fatal("Create with an empty tenant id succeeded")
	}
}

// TestNewKeyStoredIsTheKey: a key from NewKey, its Wrapped form stored by
// the caller under the subject, is the one SealFor and OpenFor use.
func TestNewKeyStoredIsTheKey(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
	k, err := sk.NewKey("tenant-a", "s1")
	if err != nil {
		t.Fatal(err)
	}
	w := k.Wrapped
	if store.Len() != 0 {
		t.Fatal("NewKey stored a key")
	}
	if _, err := store.Put(ctx, "tenant-a", "s1", w); err != nil {
		t.Fatal(err)
	}
	blob, err := sk.SealFor(ctx, "tenant-a", "s1", "r", []byte("ada"))
	if err != nil || store.Len() != 1 {
		t.Fatalf("SealFor = %v with %d keys stored, want the stored key used", err, store.Len())
	}
	if got, err := sk.OpenFor(ctx, "tenant-a", "s1", "r", blob); err != nil || string(got) != "ada" {
		t.Fatalf("OpenFor = %q, %v", got, err)
	}
	// Bound to tenant and subject: stored under another subject it does not unwrap.
	if _, err := store.Put(ctx, "tenant-a", "s2", w); err != nil {
		t.Fatal(err)
	}
	if _, err := sk.SealFor(ctx, "tenant-a", "s2", "r", []byte("x")); err == nil {
		t.Fatal("a key wrapped for s1 unwrapped as s2's")
	}
	if _, err := sk.NewKey("", "s"); err == nil {
		t.Fatal("NewKey with an empty tenant succeeded")
	}
}

// TestSealForExistingNeverCreates: SealForExisting seals under the key a
// subject has, and for a subject without one (never given one, or
// forgotten) fails with ErrShredded and stores nothing.
func TestSealForExistingNeverCreates(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
	if _, err := sk.SealForExisting(ctx, "acme", "s-new", "r1", []byte("x")); !errors.Is(err, ErrShredded) || store.Len() != 0 {
		t.Fatalf("SealForExisting for a subject without a key = %v with %d keys stored; want ErrShredded and none", err, store.Len())
	}
	blob, err := sk.SealFor(ctx, "acme", "s-1", "r1", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := sk.SealForExisting(ctx, "acme", "s-1", "r2", []byte("again"))
	if err != nil {
		t.Fatalf("SealForExisting with a key = %v", err)
	}
	if pt, err := sk.OpenFor(ctx, "acme", "s-1", "r2", again); err != nil || string(pt) != "again" {
		t.Fatalf("OpenFor(SealForExisting) = %q, %v", pt, err)
	}
	if err := sk.Forget(ctx, "acme", "s-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sk.SealForExisting(ctx, "acme", "s-1", "r3", []byte("x")); !errors.Is(err, ErrShredded) || store.Len() != 0 {
		t.Fatalf("SealForExisting after Forget = %v with %d keys stored; want ErrShredded and none", err, store.Len())
	}
	if _, err := sk.OpenFor(ctx, "acme", "s-1", "r1", blob); !errors.Is(err, ErrShredded) {
		t.Fatalf("OpenFor after Forget = %v, want ErrShredded", err)
	}
}

// TestForgottenSubjectNeverGetsAKeyAgain: Forget leaves a tombstone that no
// seal, Create, Rewrap or second Forget turns back into a key, also for a
// subject that had no key yet (a customer of a journal older than keys).
func TestForgottenSubjectNeverGetsAKeyAgain(t *testing.T) {
	ctx := context.Background()
	r1, r2 := rotatedRings(t)
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(r1, store)
	if _, err := sk.SealFor(ctx, "t", "had-key", "r", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"had-key", "never-had-key"} {
		for range 2 {
			if err := sk.Forget(ctx, "t", subject); err != nil {
				t.Fatalf("Forget(%s) = %v", subject, err)
			}
		}
		if _, err := sk.SealFor(ctx, "t", subject, "r2", []byte("y")); !errors.Is(err, ErrShredded) {
			t.Errorf("SealFor(%s) after Forget = %v, want ErrShredded", subject, err)
		}
		if _, err := sk.SealForExisting(ctx, "t", subject, "r2", []byte("y")); !errors.Is(err, ErrShredded) {
			t.Errorf("SealForExisting(%s) after Forget = %v, want ErrShredded", subject, err)
		}
		if err := sk.Create(ctx, "t", subject); !errors.Is(err, ErrShredded) {
			t.Errorf("Create(%s) after Forget = %v, want ErrShredded", subject, err)
		}
		if done, err := NewSubjectKeys(r2, store).Rewrap(ctx, "t", subject); done || err != nil {
			t.Errorf("Rewrap(%s) after Forget = %v, %v, want false, nil", subject, done, err)
		}
		if w, ok, _ := store.Get(ctx, "t", subject); !ok || !IsTombstone(w) {
			t.Errorf("store holds %q for %s after Forget, want the tombstone", w, subject)
		}
	}
	if store.Len() != 0 {
		t.Errorf("store.Len() = %d keys after forgetting both subjects, want 0", store.Len())
	}
}

// TestForgetRacingFirstSeals: seals for a new subject racing its Forget
// either finish before it (and their ciphertexts no longer open) or fail;
// afterwards the subject has the tombstone and nothing opens.
func TestForgetRacingFirstSeals(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		store := NewMemoryKeyStore()
		sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
		subject := fmt.Sprint("s", round)
		forgot := make(chan struct{})
		go func() {
			defer close(forgot)
			if err := sk.Forget(ctx, "t", subject); err != nil {
				t.Error(err)
			}
		}()
		blobs := concurrentSeals(t, sk, subject, 8, ErrShredded)
		<-forgot
		for i, b := range blobs {
			if b == nil {
				continue
			}
			if pt, err := sk.OpenFor(ctx, "t", subject, fmt.Sprint("r", i), b); !errors.Is(err, ErrShredded) {
				t.Fatalf("round %d: OpenFor(blob %d) after Forget = %q, %v, want ErrShredded", round, i, pt, err)
			}
		}
		if w, ok, _ := store.Get(ctx, "t", subject); !ok || !IsTombstone(w) {
			t.Fatalf("round %d: store holds %q after Forget, want the tombstone", round, w)
		}
	}
}

// TestSealWithFreshKey: a key from NewKey seals without being read or
// unwrapped; stored under its subject, what it sealed opens like SealFor's;
// it refuses to seal for another subject or tenant; and once the subject
// is forgotten, nothing it sealed opens.
func TestSealWithFreshKey(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryKeyStore()
	sk := NewSubjectKeys(MustKeyring(t, "k1"), store)
	k, err := sk.NewKey("acme", "s-new")
	if err != nil {
		t.Fatal(err)
	}
	blob, err := sk.SealWithFresh(k, "acme", "s-new", "r1", []byte("Ada"))
	if err != nil {
		t.Fatal(err)
	}
	if store.Len() != 0 {
		t.Fatal("SealWithFresh stored a key")
	}
	if _, err := store.Put(ctx, "acme", "s-new", k.Wrapped); err != nil {
		t.Fatal(err)
	}
	if pt, err := sk.OpenFor(ctx, "acme", "s-new", "r1", blob); err != nil || string(pt) != "Ada" {
		t.Fatalf("OpenFor(SealWithFresh) = %q, %v", pt, err)
	}
	if _, err := sk.OpenFor(ctx, "acme", "s-new", "r2", blob); err == nil {
		t.Error("a fresh key's ciphertext opened as another record")
	}
	for _, other := range [][2]string{{"acme", "s-other"}, {"other", "s-new"}} {
		if _, err := sk.SealWithFresh(k, other[0], other[1], "r1", []byte("x")); err == nil {
			t.Errorf("SealWithFresh for %s/%s with the key of acme/s-new succeeded", other[0], other[1])
		}
	}
	if err := sk.Forget(ctx, "acme", "s-new"); err != nil {
		t.Fatal(err)
	}
	if _, err := sk.OpenFor(ctx, "acme", "s-new", "r1", blob); !errors.Is(err, ErrShredded) {
		t.Errorf("OpenFor after Forget = %v, want ErrShredded", err)
	}
}

package secrets

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzOpen feeds arbitrary blobs and ids to Open and OpenFor: they must never panic, never
// succeed on anything but what was sealed for those ids, and only fail with typed errors. (Each
// fuzz worker process makes its own seeds, so success is checked by content, not by bytes.)
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	ring, err := NewKeyring(Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}, Key{ID: "k0", Secret: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		f.Fatal(err)
	}
	sk := NewSubjectKeys(ring, NewMemoryKeyStore())
	good, err := ring.Seal("t", "r", []byte("plaintext"))
	if err != nil {
		f.Fatal(err)
	}
	subj, err := sk.SealFor(ctx, "t", "r", "r", []byte("personal"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "t", "r")
	f.Add(subj, "t", "r")
	f.Add([]byte{1, 2, 'k', '1'}, "t", "r")
	f.Add([]byte{1, 64}, "t", "r")
	f.Add([]byte{}, "", "")
	f.Fuzz(func(t *testing.T, blob []byte, tenant, record string) {
		pt, err := ring.Open(blob, tenant, record)
		if err == nil {
			if tenant != "t" || record != "r" || string(pt) != "plaintext" {
				t.Fatalf("Open(%x, %q, %q) = %q: opened something never sealed for these ids", blob, tenant, record, pt)
			}
		} else if pt != nil {
			t.Fatalf("Open returned plaintext with error %v", err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAuthentication) &&
			!errors.Is(err, ErrUnknownKey) && tenant != "" && record != "" && len(tenant) <= maxIDLength && len(record) <= maxIDLength {
			t.Fatalf("Open error %v is not typed", err)
		}
		if _, err := KeyID(blob); err == nil {
			if _, err := ring.NeedsRotation(blob); err != nil {
				t.Fatalf("NeedsRotation fails where KeyID succeeds: %v", err)
			}
		}
		pt, err = sk.OpenFor(ctx, tenant, record, record, blob)
		if err == nil && (tenant != "t" || record != "r" || string(pt) != "personal") {
			t.Fatalf("OpenFor(%x) = %q: opened something never sealed", blob, pt)
		}
	})
}

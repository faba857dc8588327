package integrations_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/secrets"
)

// TestRotateKeys: credentials sealed under k1, rotated with k2 active, open with k2 alone.
func TestRotateKeys(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	_, k2 := MustKeyring(t, "k2")
	ringK1 := e.ring
	var conns []integrations.Connection
	conns = append(conns, mustConnect(t, e.svc, "t1", googleConn("ada", googleToken)))
	conns = append(conns, mustConnect(t, e.svc, "t1", icloudConn("ada", icloudAppPass)))
	both := ringWith(t, k2[0], ringK1) // new key active, old one still readable
	rot, err := e.service(t, both).RotateKeys(ctx, "t1")
	if err != nil || rot.Resealed != 2 || rot.Current != 0 {
		t.Fatalf("RotateKeys = %+v, %v; want 2 resealed", rot, err)
	}
	// Idempotent.
	if rot, err := e.service(t, both).RotateKeys(ctx, "t1"); err != nil || rot.Resealed != 0 || rot.Current != 2 {
		t.Fatalf("second RotateKeys = %+v, %v; want 2 current", rot, err)
	}
	// k1 removed from the ring: everything still opens.
	onlyK2 := MustParseKeyring(t, k2[0])
	svc := e.service(t, onlyK2)
	for _, c := range conns {
		got, err := svc.Get(ctx, "t1", c.ID)
		if err != nil || got.KeyID != "k2" {
			t.Fatalf("Get(%s) = %+v, %v; want key k2", c.ID, got, err)
		}
		if _, err := svc.Credential(ctx, "t1", c.ID); err != nil {
			t.Fatalf("Credential(%s) with k2 only = %v", c.ID, err)
		}
	}
	if cred, _ := svc.Credential(ctx, "t1", conns[0].ID); cred.RefreshToken != googleToken {
		t.Fatal("the rotated credential is not the original one")
	}
	// And k1 alone opens nothing any more.
	if _, err := e.service(t, ringK1).Credential(ctx, "t1", conns[0].ID); !errors.Is(err, secrets.ErrUnknownKey) {
		t.Fatalf("Credential with k1 only after rotation = %v, want ErrUnknownKey", err)
	}
}

// ringWith returns a keyring of the line first (active) and every key of old. Keys cannot be
// read out of a Keyring, so the env's ring is rebuilt from the lines MustKeyring kept.
func ringWith(t *testing.T, first string, old *secrets.Keyring) *secrets.Keyring {
	t.Helper()
	line, ok := keyLines.Load(old)
	if !ok {
		t.Fatal("unknown keyring")
	}
	return MustParseKeyring(t, first, line.(string))
}

var keyLines sync.Map // *secrets.Keyring → its one line, for rings made by newEnv

// racing is a record store that runs hook just before the first conditional replace of a
// connection record (the rotation's compare-and-swap), as a concurrent writer would.
type racing struct {
	persistence.RecordStore
	once sync.Once
	hook func()
}

func (r *racing) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expect uint64) (uint64, error) {
	if kind == integrations.KindConnection && expect != 0 && expect != persistence.AnyVersion {
		r.once.Do(r.hook)
	}
	return r.RecordStore.PutRecord(ctx, tenant, kind, key, value, expect)
}

// TestRotateKeysConcurrentWriter: a credential replaced (or a connection disconnected) while
// the rotation runs is re-read and retried, never overwritten with the old secret.
func TestRotateKeysConcurrentWriter(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		write func(t *testing.T, live *integrations.Service, id string)
		check func(t *testing.T, svc *integrations.Service, id string)
	}{
		{"credential replaced", func(t *testing.T, live *integrations.Service, id string) {
			if err := live.UpdateCredential(ctx, "t1", id, integrations.Credential{RefreshToken: "1//refreshed-meanwhile"}); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, svc *integrations.Service, id string) {
			if cred, err := svc.Credential(ctx, "t1", id); err != nil || cred.RefreshToken != "1//refreshed-meanwhile" {
				t.Fatalf("Credential after rotation = %v; want the one written meanwhile", err)
			}
		}},
		{"connection deleted", func(t *testing.T, live *integrations.Service, id string) {
			if _, err := live.Disconnect(ctx, "t1", id, "account:ada"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, svc *integrations.Service, id string) {
			if _, err := svc.Get(ctx, "t1", id); err == nil {
				t.Fatal("the connection deleted during rotation is back")
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, googleToken)
			c := mustConnect(t, e.svc, "t1", googleConn("ada", googleToken))
			_, k2 := MustKeyring(t, "k2")
			both := ringWith(t, k2[0], e.ring)
			live := e.service(t, both) // a slotd instance already running with the new keyring
			rs := &racing{RecordStore: e.rs, hook: func() { tt.write(t, live, c.ID) }}
			rotator, err := integrations.New(integrations.Config{Records: rs, Keys: both})
			if err != nil {
				t.Fatal(err)
			}
			rot, err := rotator.RotateKeys(ctx, "t1")
			if err != nil || rot.Retried != 1 || rot.Resealed != 0 {
				t.Fatalf("RotateKeys = %+v, %v; want 1 retry and nothing resealed by the rotation", rot, err)
			}
			tt.check(t, e.service(t, MustParseKeyring(t, k2[0])), c.ID)
		})
	}
}

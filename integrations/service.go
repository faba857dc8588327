package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/secrets"
)

// Record kinds. A connection is one record, its credential sealed inside it; the policy
// record says whether the tenant's plan allows integrations.
const (
	KindConnection = "integration"        // key: connection id
	KindPolicy     = "integration_policy" // key: "plan"

	policyKey = "plan"
)

// Sealer seals and opens credentials bound to a tenant and a record id (*secrets.Keyring).
type Sealer interface {
	Seal(tenantID, recordID string, plaintext []byte) ([]byte, error)
	Open(blob []byte, tenantID, recordID string) ([]byte, error)
	Reseal(blob []byte, tenantID, recordID string) ([]byte, error)
	NeedsRotation(blob []byte) (bool, error)
}

// AuditLog is where connects and disconnects are recorded (*audit.Log).
type AuditLog interface {
	Append(ctx context.Context, tenant string, e audit.Entry) (int64, audit.Checkpoint, error)
}

// Config holds a Service's dependencies.
type Config struct {
	Records persistence.RecordStore
	Keys    Sealer
	// Revokers revoke credentials at their providers; a provider missing from the map gets
	// the default: GoogleRevoker for Google (over HTTP, to GoogleRevokeURL), NoRevocation
	// for the others.
	Revokers map[Provider]Revoker
	// HTTP sends the default revokers' requests; nil: an http.Client with a 10 s timeout.
	HTTP Doer
	// GoogleRevokeURL is Google's revocation endpoint; "" means DefaultGoogleRevokeURL.
	// Tests point it at a local fake.
	GoogleRevokeURL string
	// RevokeTimeout bounds one revocation (retries included), so that a provider that does
	// not answer cannot hold up an account's deletion; 0 means 30 s.
	RevokeTimeout time.Duration
	// Audit records connects, disconnects and their outcome; nil: not recorded.
	Audit  AuditLog
	Logger *slog.Logger
	Now    func() time.Time
}

// Service keeps the tenants' calendar connections. It is safe for concurrent use, and
// several Services (in several slotd instances) may share one record store.
type Service struct {
	records  persistence.RecordStore
	keys     Sealer
	revokers map[Provider]Revoker
	timeout  time.Duration
	audit    AuditLog
	log      *slog.Logger
	now      func() time.Time
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Records == nil || cfg.Keys == nil {
		return nil, errors.New("integrations: New needs Records and Keys")
	}
	s := &Service{records: cfg.Records, keys: cfg.Keys, timeout: cfg.RevokeTimeout, audit: cfg.Audit,
		log: cfg.Logger, now: cfg.Now, revokers: map[Provider]Revoker{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	doer := cfg.HTTP
	if doer == nil {
		doer = &http.Client{Timeout: 10 * time.Second}
	}
	url := cfg.GoogleRevokeURL
	if url == "" {
		url = DefaultGoogleRevokeURL
	}
	s.revokers[Google] = &GoogleRevoker{URL: url, HTTP: doer}
	for _, p := range []Provider{Microsoft, ICloud, CalDAV} {
		s.revokers[p] = NoRevocation{}
	}
	for p, r := range cfg.Revokers {
		s.revokers[p] = r
	}
	return s, nil
}

// record is a connection as stored: its metadata and its sealed credential.
type record struct {
	Connection
	Sealed []byte `json:"sealed"`
}

func (s *Service) get(ctx context.Context, tenant, id string) (record, uint64, error) {
	if !validID(id) {
		return record{}, 0, engine.Errorf(engine.CodeNotFound, "no such connection")
	}
	r, err := s.records.GetRecord(ctx, tenant, KindConnection, id)
	if errors.Is(err, persistence.ErrNotFound) {
		return record{}, 0, engine.Errorf(engine.CodeNotFound, "no such connection")
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("integrations: get connection: %w", err)
	}
	rec, err := decode(tenant, r)
	return rec, r.Version, err
}

func decode(tenant string, r persistence.Record) (record, error) {
	var rec record
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		return record{}, fmt.Errorf("integrations: connection record %s is not valid", r.Key)
	}
	rec.ID, rec.Tenant = r.Key, tenant
	return rec, nil
}

// all calls fn with every connection record of tenant.
func (s *Service) all(ctx context.Context, tenant string, fn func(rec record, version uint64) error) error {
	after := ""
	for {
		rs, err := s.records.ListRecords(ctx, tenant, KindConnection, "", after, 500)
		if err != nil {
			return fmt.Errorf("integrations: list connections: %w", err)
		}
		for _, r := range rs {
			rec, err := decode(tenant, r)
			if err != nil {
				return err
			}
			if err := fn(rec, r.Version); err != nil {
				return err
			}
		}
		if len(rs) < 500 {
			return nil
		}
		after = rs[len(rs)-1].Key
	}
}

// Enabled reports whether the tenant's plan allows integrations (the default).
func (s *Service) Enabled(ctx context.Context, tenant string) (bool, error) {
	r, err := s.records.GetRecord(ctx, tenant, KindPolicy, policyKey)
	if errors.Is(err, persistence.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("integrations: read policy: %w", err)
	}
	var p struct {
		Disabled bool `json:"disabled"`
	}
	if err := json.Unmarshal(r.Value, &p); err != nil {
		return false, fmt.Errorf("integrations: policy record is not valid")
	}
	return !p.Disabled, nil
}

// SetEnabled allows or forbids new connections for the tenant (its plan's integrations).
// Forbidding them does not disconnect existing ones: AccountLifecycle.PlanDowngraded does both.
func (s *Service) SetEnabled(ctx context.Context, tenant string, enabled bool) error {
	v, _ := json.Marshal(map[string]bool{"disabled": !enabled})
	if _, err := s.records.PutRecord(ctx, tenant, KindPolicy, policyKey, v, persistence.AnyVersion); err != nil {
		return fmt.Errorf("integrations: write policy: %w", err)
	}
	return nil
}

// Connect stores a new connection for tenant, its credential sealed, and returns it. actor
// ("account:42") is recorded in the audit trail. It is refused (forbidden) when the tenant's
// plan does not allow integrations.
func (s *Service) Connect(ctx context.Context, tenant, actor string, nc NewConnection) (Connection, error) {
	if err := nc.check(); err != nil {
		return Connection{}, err
	}
	if ok, err := s.Enabled(ctx, tenant); err != nil || !ok {
		return Connection{}, cmpErr(err, engine.Errorf(engine.CodeForbidden, "the plan does not include calendar integrations"))
	}
	id := newID()
	plain, err := json.Marshal(nc.Credential)
	if err != nil {
		return Connection{}, fmt.Errorf("integrations: %w", err)
	}
	sealed, err := s.keys.Seal(tenant, id, plain)
	clear(plain)
	if err != nil {
		return Connection{}, fmt.Errorf("integrations: seal credential: %w", err)
	}
	kid, err := secrets.KeyID(sealed)
	if err != nil {
		return Connection{}, fmt.Errorf("integrations: %w", err)
	}
	c := Connection{ID: id, Tenant: tenant, Account: nc.Account, Resource: nc.Resource, Provider: nc.Provider,
		Email: nc.Email, Scopes: nc.Scopes, Server: nc.Server, KeyID: kid, Created: s.now().UTC()}
	val, err := json.Marshal(record{Connection: c, Sealed: sealed})
	if err != nil {
		return Connection{}, fmt.Errorf("integrations: %w", err)
	}
	if _, err := s.records.PutRecord(ctx, tenant, KindConnection, id, val, 0); err != nil {
		return Connection{}, fmt.Errorf("integrations: store connection: %w", err)
	}
	// A downgrade racing with this connect: it forbids connections, then lists them; we
	// store, then check again. One of us sees the other, so no connection outlives it.
	if ok, err := s.Enabled(ctx, tenant); err != nil || !ok {
		if derr := s.records.DeleteRecord(ctx, tenant, KindConnection, id, persistence.AnyVersion); derr != nil {
			return Connection{}, fmt.Errorf("integrations: undo connection: %w", derr)
		}
		return Connection{}, cmpErr(err, engine.Errorf(engine.CodeForbidden, "the plan does not include calendar integrations"))
	}
	s.record(ctx, tenant, audit.Entry{Actor: actor, Action: audit.ActionIntegrationConnected, Target: "integration:" + id,
		Detail: map[string]string{"provider": string(c.Provider), "account": c.Account}})
	return c, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// Get returns one connection of tenant.
func (s *Service) Get(ctx context.Context, tenant, id string) (Connection, error) {
	rec, _, err := s.get(ctx, tenant, id)
	return rec.Connection, err
}

// List returns every connection of tenant, by id.
func (s *Service) List(ctx context.Context, tenant string) ([]Connection, error) {
	var out []Connection
	err := s.all(ctx, tenant, func(rec record, _ uint64) error {
		out = append(out, rec.Connection)
		return nil
	})
	return out, err
}

// ListAccount returns the connections of tenant that account made.
func (s *Service) ListAccount(ctx context.Context, tenant, account string) ([]Connection, error) {
	var out []Connection
	err := s.all(ctx, tenant, func(rec record, _ uint64) error {
		if rec.Account == account {
			out = append(out, rec.Connection)
		}
		return nil
	})
	return out, err
}

// Credential opens the credential of a connection, for the code that talks to the provider.
func (s *Service) Credential(ctx context.Context, tenant, id string) (Credential, error) {
	rec, _, err := s.get(ctx, tenant, id)
	if err != nil {
		return Credential{}, err
	}
	return s.open(tenant, rec)
}

func (s *Service) open(tenant string, rec record) (Credential, error) {
	plain, err := s.keys.Open(rec.Sealed, tenant, rec.ID)
	if err != nil {
		return Credential{}, fmt.Errorf("integrations: open credential of %s: %w", rec.ID, err)
	}
	defer clear(plain)
	var c Credential
	if err := json.Unmarshal(plain, &c); err != nil {
		return Credential{}, fmt.Errorf("integrations: credential of %s is not valid", rec.ID)
	}
	return c, nil
}

// maxCAS bounds compare-and-swap retries on one record.
const maxCAS = 16

// UpdateCredential replaces a connection's credential (a provider that rotates refresh tokens
// returns a new one with each use), sealed under the active key, by compare-and-swap.
func (s *Service) UpdateCredential(ctx context.Context, tenant, id string, c Credential) error {
	for range maxCAS {
		rec, v, err := s.get(ctx, tenant, id)
		if err != nil {
			return err
		}
		nc := NewConnection{Account: rec.Account, Provider: rec.Provider, Email: rec.Email, Server: rec.Server, Credential: c}
		if err := nc.check(); err != nil {
			return err
		}
		plain, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("integrations: %w", err)
		}
		sealed, err := s.keys.Seal(tenant, id, plain)
		clear(plain)
		if err != nil {
			return fmt.Errorf("integrations: seal credential: %w", err)
		}
		if rec.KeyID, err = secrets.KeyID(sealed); err != nil {
			return fmt.Errorf("integrations: %w", err)
		}
		rec.Sealed, rec.Updated = sealed, s.now().UTC()
		val, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("integrations: %w", err)
		}
		_, err = s.records.PutRecord(ctx, tenant, KindConnection, id, val, v)
		if errors.Is(err, persistence.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("integrations: store credential: %w", err)
		}
		return nil
	}
	return fmt.Errorf("integrations: update credential: %w", persistence.ErrConflict)
}

func (s *Service) record(ctx context.Context, tenant string, e audit.Entry) {
	if s.audit == nil {
		return
	}
	if e.Actor == "" {
		e.Actor = "system"
	}
	if _, _, err := s.audit.Append(ctx, tenant, e); err != nil {
		s.log.Error("audit append failed", "tenant", tenant, "action", string(e.Action), "err", err)
	}
}

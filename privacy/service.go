package privacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/security/audit"
)

// Tenants is what the service needs from the actor system
// (*actors.Registry): commands that are durable when they return, and reads
// of committed state.
type Tenants interface {
	Do(ctx context.Context, tenant string, cmd engine.Command) (actors.Reply, error)
	Read(ctx context.Context, tenant string, fn func(st *engine.State, seq uint64) error) error
	// ReadLatest is Read after catching up with every other instance's
	// writes (an erasure among them).
	ReadLatest(ctx context.Context, tenant string, fn func(st *engine.State, seq uint64) error) error
}

// AuditLog is the tenant's tamper-evident security log (*audit.Log).
type AuditLog interface {
	Append(ctx context.Context, tenant string, e audit.Entry) (int64, audit.Checkpoint, error)
}

// Config holds the service's dependencies.
type Config struct {
	Tenants Tenants
	Codec   *Codec   // the codec the registry stores through
	Audit   AuditLog // required: every export and erasure is recorded
	// Accounts lists a tenant's accounts for its export, as JSON-encodable
	// values without secrets (for example accounts.Service.List); nil
	// leaves accounts out.
	Accounts func(ctx context.Context, tenant string) (any, error)
	Now      func() time.Time // default time.Now
	Logger   *slog.Logger     // default slog.Default()
}

// Service answers data subjects' requests on their tenant's behalf: export
// (GDPR Art. 15 and 20) and erasure (Art. 17). The tenant is whatever the
// caller passes: the HTTP routes take it from the authenticated principal.
type Service struct {
	cfg Config
}

// NewService returns a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Tenants == nil || cfg.Codec == nil || cfg.Audit == nil {
		return nil, errors.New("privacy: NewService needs Tenants, Codec and Audit")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg}, nil
}

// Receipt is what an erasure did. It names the pseudonyms erased, never the
// email: the receipt is itself kept (in the audit log, by the tenant).
type Receipt struct {
	Format   string    `json:"format"` // "slotd.erasure-receipt"
	Version  int       `json:"version"`
	Tenant   string    `json:"tenant"`
	ErasedAt time.Time `json:"erased_at"`
	// Subjects are the pseudonyms whose data was erased and whose keys
	// were destroyed; empty when the tenant holds nothing for the email.
	Subjects []string `json:"subjects"`
	// Bookings are the bookings whose customer was anonymised by this
	// request; they stay in the tenant's history, without personal data.
	Bookings []string `json:"bookings"`
	// AuditSeq is the index of the erasure's entry in the audit log.
	AuditSeq int64 `json:"audit_seq"`
}

// Erase erases the personal data of the customer with this email from
// tenant, on the request of actor (a principal's Subject, for the audit
// log), by crypto-shredding:
//
//  1. find their pseudonyms: the index entry of the email, and any booking
//     in the tenant's state whose customer has that email;
//  2. for each, apply engine.EraseSubject through the tenant's actor and
//     wait until it is durable: the live state, later snapshots and every
//     replay show their bookings as {Subject, Erased: true};
//  3. record the erasure in the audit log (pseudonyms and booking ids,
//     never the email);
//  4. destroy the pseudonym's key (Codec.Forget): every sealed copy of the
//     customer in journals, snapshots and backups becomes unreadable;
//  5. delete the index entry, so that nothing links the email to the
//     pseudonym any more.
//
// Each step is idempotent; if one fails, Erase returns the error and a
// retry completes the erasure. The audit entry precedes the key's
// destruction, so no erasure goes unrecorded.
func (s *Service) Erase(ctx context.Context, tenant, email, actor string) (Receipt, error) {
	email = NormalizeEmail(email)
	if email == "" {
		return Receipt{}, engine.Errorf(engine.CodeInvalid, "an email is required")
	}
	indexed, ok, err := s.cfg.Codec.Subject(ctx, tenant, email)
	if err != nil {
		return Receipt{}, err
	}
	var subjects []string
	if ok {
		subjects = append(subjects, indexed)
	}
	var legacy []string
	err = s.cfg.Tenants.ReadLatest(ctx, tenant, func(st *engine.State, _ uint64) error {
		for _, b := range st.Bookings(time.Time{}, time.Time{}) {
			if b.Customer.Erased || NormalizeEmail(b.Customer.Email) != email {
				continue
			}
			if b.Customer.Subject == "" {
				legacy = append(legacy, b.ID)
			} else if !slices.Contains(subjects, b.Customer.Subject) {
				subjects = append(subjects, b.Customer.Subject)
			}
		}
		return nil
	})
	if err != nil {
		return Receipt{}, err
	}
	if len(legacy) > 0 {
		// Only a tenant stored without this package's codec has these.
		return Receipt{}, engine.Errorf(engine.CodeConflict, "bookings %v have no pseudonym: the tenant is not stored through the privacy codec, so they cannot be erased", legacy)
	}
	slices.Sort(subjects)
	rec := Receipt{Format: "slotd.erasure-receipt", Version: 1, Tenant: tenant, ErasedAt: s.cfg.Now().UTC(),
		Subjects: subjects, Bookings: []string{}}
	if rec.Subjects == nil {
		rec.Subjects = []string{}
	}
	for _, subject := range subjects {
		rep, err := s.cfg.Tenants.Do(ctx, tenant, engine.EraseSubject{Subject: subject})
		if err != nil {
			return Receipt{}, fmt.Errorf("erase subject %s: %w", subject, err)
		}
		for _, e := range rep.Events {
			rec.Bookings = append(rec.Bookings, e.BookingIDs...)
		}
	}
	slices.Sort(rec.Bookings)
	seq, _, err := s.cfg.Audit.Append(ctx, tenant, audit.Entry{Time: rec.ErasedAt, Actor: actor, Action: audit.ActionErasure,
		Target: "customer", Detail: map[string]string{
			"subjects": fmt.Sprint(rec.Subjects), "bookings": strconv.Itoa(len(rec.Bookings)), "method": "crypto_shredding"}})
	if err != nil {
		return Receipt{}, fmt.Errorf("audit erasure: %w", err)
	}
	rec.AuditSeq = seq
	for _, subject := range subjects {
		if err := s.cfg.Codec.Forget(ctx, tenant, subject); err != nil {
			return Receipt{}, err
		}
		if err := s.cfg.Codec.unlink(ctx, tenant, email, subject); err != nil {
			return Receipt{}, err
		}
	}
	return rec, nil
}

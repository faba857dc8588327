package privacy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/security/audit"
)

// Export formats. Each document names its format and version; fields are
// only ever added within a version.
const (
	FormatCustomer = "slotd.customer-export"
	FormatTenant   = "slotd.tenant-export"
	FormatVersion  = 1
)

// CustomerRecord is a booking's customer as exported. An erased customer
// has only Subject and Erased.
type CustomerRecord struct {
	Name    string `json:"name,omitempty"`
	Email   string `json:"email,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Subject string `json:"subject,omitempty"`
	Erased  bool   `json:"erased,omitempty"`
}

// BookingRecord is a booking as exported: what was booked, when, with whom,
// and its history, with the service's and resource's names so that the
// record reads on its own.
type BookingRecord struct {
	ID           string         `json:"id"`
	Status       string         `json:"status"`
	ServiceID    string         `json:"service_id"`
	ServiceName  string         `json:"service_name,omitempty"`
	ResourceID   string         `json:"resource_id"`
	ResourceName string         `json:"resource_name,omitempty"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	CancelReason string         `json:"cancel_reason,omitempty"`
	Rescheduled  int            `json:"rescheduled,omitempty"`
	Customer     CustomerRecord `json:"customer"`
}

// HoldRecord is a hold as exported.
type HoldRecord struct {
	ID         string    `json:"id"`
	ServiceID  string    `json:"service_id"`
	ResourceID string    `json:"resource_id"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// CustomerExport is one customer's data in one tenant (GDPR Art. 15 access
// and Art. 20 portability): every booking made with their email, in the
// clear. Erased bookings are not theirs any more: nothing links them to the
// email, and they are left out.
type CustomerExport struct {
	Format     string          `json:"format"`
	Version    int             `json:"version"`
	Tenant     string          `json:"tenant"`
	ExportedAt time.Time       `json:"exported_at"`
	Email      string          `json:"email"`    // as normalized for matching
	Subjects   []string        `json:"subjects"` // the pseudonyms their bookings carry
	Bookings   []BookingRecord `json:"bookings"`
}

// TenantExport is a whole tenant's data (Art. 20 for the tenant, and its
// own records): configuration, every booking with its customer (erased
// ones as erased), holds, imported busy blocks and, if configured, its
// accounts. JournalSeq is the journal position it reflects.
type TenantExport struct {
	Format     string               `json:"format"`
	Version    int                  `json:"version"`
	Tenant     string               `json:"tenant"`
	ExportedAt time.Time            `json:"exported_at"`
	JournalSeq uint64               `json:"journal_seq"`
	Config     *engine.TenantConfig `json:"config"`
	Bookings   []BookingRecord      `json:"bookings"`
	Holds      []HoldRecord         `json:"holds"`
	Busy       []engine.BusyArg     `json:"busy"`
	Accounts   any                  `json:"accounts,omitempty"`
}

// names maps service and resource ids to their names.
type names struct{ services, resources map[string]string }

func namesOf(st *engine.State) names {
	n := names{services: map[string]string{}, resources: map[string]string{}}
	if cfg, ok := st.Config(); ok {
		for _, s := range cfg.Services {
			n.services[s.ID] = s.Name
		}
		for _, r := range cfg.Resources {
			n.resources[r.ID] = r.Name
		}
	}
	return n
}

func (n names) record(b engine.Booking) BookingRecord {
	c := b.Customer
	return BookingRecord{ID: b.ID, Status: b.Status, ServiceID: b.ServiceID, ServiceName: n.services[b.ServiceID],
		ResourceID: b.ResourceID, ResourceName: n.resources[b.ResourceID], Start: b.Start.UTC(), End: b.End.UTC(),
		CreatedAt: b.CreatedAt.UTC(), UpdatedAt: b.UpdatedAt.UTC(), CancelReason: b.CancelReason, Rescheduled: b.Rescheduled,
		Customer: CustomerRecord{Name: c.Name, Email: c.Email, Phone: c.Phone, Subject: c.Subject, Erased: c.Erased}}
}

// ExportCustomer returns the data tenant holds about the customer with
// this email, for actor (recorded in the audit log, as is the export).
func (s *Service) ExportCustomer(ctx context.Context, tenant, email, actor string) (CustomerExport, error) {
	email = NormalizeEmail(email)
	if email == "" {
		return CustomerExport{}, engine.Errorf(engine.CodeInvalid, "an email is required")
	}
	indexed, ok, err := s.cfg.Codec.Subject(ctx, tenant, email)
	if err != nil {
		return CustomerExport{}, err
	}
	out := CustomerExport{Format: FormatCustomer, Version: FormatVersion, Tenant: tenant, ExportedAt: s.cfg.Now().UTC(),
		Email: email, Subjects: []string{}, Bookings: []BookingRecord{}}
	err = s.cfg.Tenants.ReadLatest(ctx, tenant, func(st *engine.State, _ uint64) error {
		n := namesOf(st)
		for _, b := range st.Bookings(time.Time{}, time.Time{}) {
			c := b.Customer
			if c.Erased || (NormalizeEmail(c.Email) != email && (!ok || c.Subject != indexed)) {
				continue
			}
			out.Bookings = append(out.Bookings, n.record(b))
			if c.Subject != "" && !slices.Contains(out.Subjects, c.Subject) {
				out.Subjects = append(out.Subjects, c.Subject)
			}
		}
		return nil
	})
	if err != nil {
		return CustomerExport{}, err
	}
	slices.Sort(out.Subjects)
	_, _, err = s.cfg.Audit.Append(ctx, tenant, audit.Entry{Time: out.ExportedAt, Actor: actor, Action: audit.ActionExport,
		Target: "customer", Detail: map[string]string{"scope": "customer", "subjects": fmt.Sprint(out.Subjects),
			"bookings": strconv.Itoa(len(out.Bookings)), "format": FormatCustomer}})
	if err != nil {
		return CustomerExport{}, fmt.Errorf("audit export: %w", err)
	}
	return out, nil
}

// ExportTenant returns all of tenant's data, for actor (recorded in the
// audit log, as is the export).
func (s *Service) ExportTenant(ctx context.Context, tenant, actor string) (TenantExport, error) {
	out := TenantExport{Format: FormatTenant, Version: FormatVersion, Tenant: tenant, ExportedAt: s.cfg.Now().UTC(),
		Bookings: []BookingRecord{}, Holds: []HoldRecord{}}
	err := s.cfg.Tenants.ReadLatest(ctx, tenant, func(st *engine.State, seq uint64) error {
		out.JournalSeq = seq
		if cfg, ok := st.Config(); ok {
			out.Config = &cfg
		}
		n := namesOf(st)
		for _, b := range st.Bookings(time.Time{}, time.Time{}) {
			out.Bookings = append(out.Bookings, n.record(b))
		}
		for _, h := range st.Holds() {
			out.Holds = append(out.Holds, HoldRecord{ID: h.ID, ServiceID: h.ServiceID, ResourceID: h.ResourceID,
				Start: h.Start.UTC(), End: h.End.UTC(), ExpiresAt: h.ExpiresAt.UTC()})
		}
		out.Busy = st.Busy()
		return nil
	})
	if err != nil {
		return TenantExport{}, err
	}
	if s.cfg.Accounts != nil {
		if out.Accounts, err = s.cfg.Accounts(ctx, tenant); err != nil {
			return TenantExport{}, fmt.Errorf("export accounts: %w", err)
		}
	}
	_, _, err = s.cfg.Audit.Append(ctx, tenant, audit.Entry{Time: out.ExportedAt, Actor: actor, Action: audit.ActionExport,
		Target: "tenant", Detail: map[string]string{"scope": "tenant", "bookings": strconv.Itoa(len(out.Bookings)),
			"format": FormatTenant}})
	if err != nil {
		return TenantExport{}, fmt.Errorf("audit export: %w", err)
	}
	return out, nil
}

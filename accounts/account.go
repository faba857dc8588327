package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/password"
)

// Role is what an account may do within its tenant.
type Role string

// Roles, from most to least.
const (
	// RoleOwner configures the tenant, manages every account and may require
	// a second factor for all accounts.
	RoleOwner Role = "owner"
	// RoleAdmin configures the tenant and manages staff accounts.
	RoleAdmin Role = "admin"
	// RoleStaff sees and changes bookings.
	RoleStaff Role = "staff"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleOwner || r == RoleAdmin || r == RoleStaff }

// Perm is the gateway permission of the role.
func (r Role) Perm() gateway.Permission {
	switch r {
	case RoleOwner, RoleAdmin:
		return gateway.PermAdmin
	case RoleStaff:
		return gateway.PermStaff
	}
	return 0
}

// kind is the gateway principal kind of the role.
func (r Role) kind() string {
	if r == RoleStaff {
		return "staff"
	}
	return "admin"
}

// Account is a person who works for a tenant, as the API shows it: never
// with a secret.
type Account struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Email       string    `json:"email"`
	Name        string    `json:"name,omitempty"`
	Role        Role      `json:"role"`
	Disabled    bool      `json:"disabled"`
	MFA         bool      `json:"mfa_enabled"`
	HasPassword bool      `json:"has_password"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// accountRecord is an account as stored.
type accountRecord struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Name     string `json:"name,omitempty"`
	Role     Role   `json:"role"`
	Disabled bool   `json:"disabled,omitempty"`
	// PasswordHash is a PHC (Argon2id) or bcrypt string; "" for accounts
	// that sign in only through OIDC.
	PasswordHash string `json:"password_hash,omitempty"`
	// TOTP is the sealed base32 TOTP secret once enrolled; TOTPPending one
	// being enrolled, not yet confirmed by a code.
	TOTP        []byte `json:"totp,omitempty"`
	TOTPPending []byte `json:"totp_pending,omitempty"`
	// TOTPLastStep is the last time step (Unix time / 30 s) whose code was
	// accepted: codes of it and earlier steps are refused.
	TOTPLastStep int64 `json:"totp_last_step,omitempty"`
	// RecoveryHashes are the SHA-256 hashes of the unused recovery codes.
	RecoveryHashes []string `json:"recovery_hashes,omitempty"`
	// OIDC pins the account to an identity per issuer (issuer → subject).
	OIDC map[string]string `json:"oidc,omitempty"`
	// Generation grows whenever every session of the account must end
	// (password or role change, disabling); a session of an older
	// generation is refused.
	Generation uint64    `json:"generation"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

func (a *accountRecord) public(tenant string) Account {
	return Account{ID: a.ID, Tenant: tenant, Email: a.Email, Name: a.Name, Role: a.Role, Disabled: a.Disabled,
		MFA: len(a.TOTP) > 0, HasPassword: a.PasswordHash != "", Created: a.Created, Updated: a.Updated}
}

func (a *accountRecord) totpRecordID() string { return "account/" + a.ID + "/totp" }

// tenantPolicy is a tenant's account settings, set by its owners.
type tenantPolicy struct {
	// RequireMFA makes every account enrol a TOTP second factor at its next
	// sign-in, and forbids turning it off.
	RequireMFA bool `json:"require_mfa"`
	// OIDCDomains lets a verified email of one of these domains, signing in
	// through OIDC, create a staff account (auto-provisioning). Empty: OIDC
	// signs in existing accounts only.
	OIDCDomains []string `json:"oidc_domains,omitempty"`
}

// Policy is a tenant's account settings as the API shows them.
type Policy struct {
	RequireMFA  bool     `json:"require_mfa"`
	OIDCDomains []string `json:"oidc_domains"`
}

func (s *Service) policy(ctx context.Context, tenant string) (tenantPolicy, error) {
	var p tenantPolicy
	_, err := s.getJSON(ctx, tenant, kindPolicy, policyKey, &p)
	if errors.Is(err, persistence.ErrNotFound) {
		return tenantPolicy{}, nil
	}
	return p, err
}

// NormalizeEmail returns the form an email is stored and looked up in:
// trimmed and lower-cased, or "" if it is not a plain address.
func NormalizeEmail(email string) string {
	e := strings.ToLower(strings.TrimSpace(email))
	if len(e) < 3 || len(e) > 254 || !utf8.ValidString(e) {
		return ""
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return ""
	}
	return e
}

var errEmailTaken = engine.Errorf(engine.CodeConflict, "another account of this tenant has that email")

// NewAccount is what creating an account takes.
type NewAccount struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	Password string `json:"password,omitempty"` // optional: OIDC-only accounts have none
}

func checkName(name string) error {
	if utf8.RuneCountInString(name) > 200 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return engine.Errorf(engine.CodeInvalid, "name must be at most 200 characters on one line")
	}
	return nil
}

// CreateAccount creates an account in tenant. It is what the API's create
// route calls after its permission checks, and what a bootstrap command
// (the tenant's first owner) may call directly.
func (s *Service) CreateAccount(ctx context.Context, tenant string, na NewAccount) (Account, error) {
	if !persistence.ValidTenant(tenant) {
		return Account{}, engine.Errorf(engine.CodeInvalid, "invalid tenant id")
	}
	email := NormalizeEmail(na.Email)
	if email == "" {
		return Account{}, engine.Errorf(engine.CodeInvalid, "email must be a plain address like name@example.com")
	}
	if !na.Role.Valid() {
		return Account{}, engine.Errorf(engine.CodeInvalid, "role must be owner, admin or staff")
	}
	if err := checkName(na.Name); err != nil {
		return Account{}, err
	}
	now := s.now().UTC()
	rec := accountRecord{ID: gateway.NewID("acc_"), Email: email, Name: strings.TrimSpace(na.Name), Role: na.Role,
		Generation: 1, Created: now, Updated: now}
	if na.Password != "" {
		h, err := s.newPasswordHash(na.Password, &rec)
		if err != nil {
			return Account{}, err
		}
		rec.PasswordHash = h
	}
	// The email index is created first, create-only: of two accounts
	// created with one email, exactly one gets it.
	if _, err := s.records.PutRecord(ctx, tenant, kindAccountEmail, email, []byte(rec.ID), 0); err != nil {
		if errors.Is(err, persistence.ErrConflict) {
			return Account{}, errEmailTaken
		}
		return Account{}, fmt.Errorf("create email index: %w", err)
	}
	if _, err := s.putJSON(ctx, tenant, kindAccount, rec.ID, &rec, 0); err != nil {
		_ = s.records.DeleteRecord(ctx, tenant, kindAccountEmail, email, persistence.AnyVersion)
		return Account{}, fmt.Errorf("create account: %w", err)
	}
	return rec.public(tenant), nil
}

// newPasswordHash checks pw against the policy for rec and hashes it.
func (s *Service) newPasswordHash(pw string, rec *accountRecord) (string, error) {
	err := s.cfg.Policy.Check(pw, password.Account{Email: rec.Email, SecondFactor: len(rec.TOTP) > 0, Words: nameWords(rec.Name)})
	if err != nil {
		var pe *password.PolicyError
		if errors.As(err, &pe) {
			return "", &policyError{pe}
		}
		return "", err
	}
	return s.cfg.Passwords.Hash(pw)
}

// policyError is a refused password: invalid, with the policy's stable
// reason code shown beside the engine code.
type policyError struct{ pe *password.PolicyError }

func (e *policyError) Error() string { return e.pe.Message }

func nameWords(name string) []string {
	var out []string
	for _, w := range strings.Fields(name) {
		if utf8.RuneCountInString(w) >= 4 {
			out = append(out, w)
		}
	}
	return out
}

// Get returns the account id of tenant.
func (s *Service) Get(ctx context.Context, tenant, id string) (Account, error) {
	rec, err := s.account(ctx, tenant, id)
	if err != nil {
		return Account{}, err
	}
	return rec.public(tenant), nil
}

// account reads an account record; a missing one is not_found.
func (s *Service) account(ctx context.Context, tenant, id string) (accountRecord, error) {
	var rec accountRecord
	if !validID(id) {
		return rec, engine.Errorf(engine.CodeNotFound, "no such account")
	}
	_, err := s.getJSON(ctx, tenant, kindAccount, id, &rec)
	if errors.Is(err, persistence.ErrNotFound) {
		return rec, engine.Errorf(engine.CodeNotFound, "no such account")
	}
	return rec, err
}

// AccountByEmail finds the tenant's account with email (in any case).
func (s *Service) AccountByEmail(ctx context.Context, tenant, email string) (Account, bool, error) {
	a, ok, err := s.accountByEmail(ctx, tenant, NormalizeEmail(email))
	if err != nil || !ok {
		return Account{}, false, err
	}
	return a.public(tenant), true, nil
}

// accountByEmail finds the account with the normalised email.
func (s *Service) accountByEmail(ctx context.Context, tenant, email string) (accountRecord, bool, error) {
	if email == "" || !persistence.ValidTenant(tenant) {
		return accountRecord{}, false, nil
	}
	idx, err := s.records.GetRecord(ctx, tenant, kindAccountEmail, email)
	if errors.Is(err, persistence.ErrNotFound) {
		return accountRecord{}, false, nil
	}
	if err != nil {
		return accountRecord{}, false, err
	}
	rec, err := s.account(ctx, tenant, string(idx.Value))
	var ee *engine.Error
	if errors.As(err, &ee) && ee.Code == engine.CodeNotFound {
		return accountRecord{}, false, nil
	}
	if err != nil {
		return accountRecord{}, false, err
	}
	return rec, rec.Email == email, nil
}

func validID(id string) bool {
	if !strings.HasPrefix(id, "acc_") || len(id) != 30 {
		return false
	}
	for _, c := range id[4:] {
		if !(c >= 'a' && c <= 'z') && !(c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// List returns the tenant's accounts in id order.
func (s *Service) List(ctx context.Context, tenant string) ([]Account, error) {
	recs, err := s.allAccounts(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(recs))
	for i := range recs {
		out = append(out, recs[i].public(tenant))
	}
	return out, nil
}

func (s *Service) allAccounts(ctx context.Context, tenant string) ([]accountRecord, error) {
	rs, err := s.records.ListRecords(ctx, tenant, kindAccount, "", "", 0)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]accountRecord, 0, len(rs))
	for _, r := range rs {
		var a accountRecord
		if err := jsonUnmarshal(r.Value, &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Change is a change to an account; nil fields stay as they are.
type Change struct {
	Email    *string `json:"email,omitempty"`
	Name     *string `json:"name,omitempty"`
	Role     *Role   `json:"role,omitempty"`
	Disabled *bool   `json:"disabled,omitempty"`
	Password *string `json:"password,omitempty"`
}

// Update applies ch to the account, as actor (for the audit log). A
// change of role, password or disabled state ends every session of the
// account, and closes their WebSockets.
func (s *Service) Update(ctx context.Context, tenant, id, actor string, ch Change) (Account, error) {
	old, err := s.account(ctx, tenant, id)
	if err != nil {
		return Account{}, err
	}
	var newEmail string
	if ch.Email != nil {
		if newEmail = NormalizeEmail(*ch.Email); newEmail == "" {
			return Account{}, engine.Errorf(engine.CodeInvalid, "email must be a plain address like name@example.com")
		}
		if newEmail == old.Email {
			newEmail = ""
		}
	}
	if ch.Role != nil && !ch.Role.Valid() {
		return Account{}, engine.Errorf(engine.CodeInvalid, "role must be owner, admin or staff")
	}
	if ch.Name != nil {
		if err := checkName(*ch.Name); err != nil {
			return Account{}, err
		}
	}
	if newEmail != "" {
		if _, err := s.records.PutRecord(ctx, tenant, kindAccountEmail, newEmail, []byte(id), 0); err != nil {
			if errors.Is(err, persistence.ErrConflict) {
				return Account{}, errEmailTaken
			}
			return Account{}, fmt.Errorf("create email index: %w", err)
		}
	}
	var before accountRecord
	rec, err := update(ctx, s, tenant, kindAccount, id, func(a *accountRecord) error {
		before = *a
		endSessions := false
		if newEmail != "" {
			a.Email = newEmail
			a.OIDC = nil // a pinned identity belonged to the old address
		}
		if ch.Name != nil {
			a.Name = strings.TrimSpace(*ch.Name)
		}
		if ch.Role != nil && *ch.Role != a.Role {
			a.Role = *ch.Role
			endSessions = true
		}
		if ch.Disabled != nil && *ch.Disabled != a.Disabled {
			a.Disabled = *ch.Disabled
			endSessions = endSessions || a.Disabled
		}
		if ch.Password != nil {
			h, err := s.newPasswordHash(*ch.Password, a)
			if err != nil {
				return err
			}
			a.PasswordHash = h
			endSessions = true
		}
		if endSessions {
			a.Generation++
		}
		a.Updated = s.now().UTC()
		return nil
	})
	if err != nil {
		if newEmail != "" {
			_ = s.records.DeleteRecord(ctx, tenant, kindAccountEmail, newEmail, persistence.AnyVersion)
		}
		return Account{}, err
	}
	if newEmail != "" {
		if err := s.records.DeleteRecord(ctx, tenant, kindAccountEmail, before.Email, persistence.AnyVersion); err != nil {
			s.log.Warn("delete old email index", "tenant", tenant, "account", id, "err", err)
		}
	}
	if rec.Generation != before.Generation {
		s.endSessions(ctx, tenant, id)
	}
	target := "account:" + id
	if rec.Role != before.Role {
		s.audit(ctx, tenant, AuditEvent{Actor: actor, Action: ActionRoleChanged, Target: target,
			Detail: map[string]string{"from": string(before.Role), "to": string(rec.Role)}})
	}
	if rec.Disabled != before.Disabled {
		if rec.Disabled {
			s.audit(ctx, tenant, AuditEvent{Actor: actor, Action: ActionAccountDisabled, Target: target})
		} else {
			s.audit(ctx, tenant, AuditEvent{Actor: actor, Action: ActionAdminAction, Target: target,
				Detail: map[string]string{"change": "account_enabled"}})
		}
	}
	if ch.Password != nil {
		s.audit(ctx, tenant, AuditEvent{Actor: actor, Action: ActionPasswordChanged, Target: target})
	}
	if rec.Email != before.Email || rec.Name != before.Name {
		s.audit(ctx, tenant, AuditEvent{Actor: actor, Action: ActionAdminAction, Target: target,
			Detail: map[string]string{"change": "account_details"}})
	}
	return rec.public(tenant), nil
}

// Delete deletes the account, ends its sessions and closes their
// WebSockets.
func (s *Service) Delete(ctx context.Context, tenant, id, actor string) error {
	for range maxCASRetries {
		if !validID(id) {
			return engine.Errorf(engine.CodeNotFound, "no such account")
		}
		r, err := s.records.GetRecord(ctx, tenant, kindAccount, id)
		if errors.Is(err, persistence.ErrNotFound) {
			return engine.Errorf(engine.CodeNotFound, "no such account")
		}
		if err != nil {
			return err
		}
		var rec accountRecord
		if err := jsonUnmarshal(r.Value, &rec); err != nil {
			return err
		}
		if err := s.records.DeleteRecord(ctx, tenant, kindAccount, id, r.Version); err != nil {
			if errors.Is(err, persistence.ErrConflict) {
				continue
			}
			return fmt.Errorf("delete account: %w", err)
		}
		if err := s.records.DeleteRecord(ctx, tenant, kindAccountEmail, rec.Email, persistence.AnyVersion); err != nil {
			s.log.Warn("delete email index", "tenant", tenant, "account", id, "err", err)
		}
		s.endSessions(ctx, tenant, id)
		s.audit(ctx, tenant, AuditEvent{Actor: actor, Action: ActionAccountDeleted, Target: "account:" + id})
		if s.cfg.OnDeleted != nil {
			// What the account held elsewhere: OAuth grants, calendar
			// connections (revoked at the provider), their WebSockets.
			if err := s.cfg.OnDeleted(ctx, tenant, id, actor); err != nil {
				s.log.Error("clean up after deleting an account", "tenant", tenant, "account", id, "err", err)
			}
		}
		return nil
	}
	return fmt.Errorf("delete account: %w", persistence.ErrConflict)
}

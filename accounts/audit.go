package accounts

import (
	"context"
	"time"

	"github.com/slotd/slotd/security/audit"
)

// Audit actions the service emits; the strings are security/audit's.
const (
	ActionSignIn           = "sign_in"
	ActionSignInFailed     = "sign_in_failed"
	ActionSignOut          = "sign_out"
	ActionPasswordChanged  = "password_changed"
	ActionMFAEnabled       = "mfa_enabled"
	ActionMFADisabled      = "mfa_disabled"
	ActionRecoveryCodeUsed = "recovery_code_used"
	ActionAccountCreated   = "account_created"
	ActionAccountDisabled  = "account_disabled"
	ActionAccountDeleted   = "account_deleted"
	ActionRoleChanged      = "role_changed"
	ActionAdminAction      = "admin_action"
)

// AuditEvent is one security event for a tenant's audit log. It never
// carries a secret: no password, code, token or session id.
type AuditEvent struct {
	Time   time.Time
	Actor  string // "account:acc_…", "operator"; "" (unauthenticated) for failed sign-ins
	Action string
	Target string            // "account:acc_…" or ""
	Detail map[string]string // keys [a-z][a-z0-9_]*
}

// AuditSink stores audit events in the tenant's tamper-evident log
// (security/audit, through a small adapter in the wiring).
type AuditSink interface {
	Record(ctx context.Context, tenant string, e AuditEvent) error
}

// audit records e; a failure to record is logged, not returned: a full
// audit log must not lock people out, and the log line keeps the event.
func (s *Service) audit(ctx context.Context, tenant string, e AuditEvent) {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	if e.Actor == "" {
		e.Actor = "unauthenticated"
	}
	if s.cfg.Audit == nil {
		s.log.Debug("audit", "tenant", tenant, "action", e.Action, "actor", e.Actor, "target", e.Target)
		return
	}
	if err := s.cfg.Audit.Record(ctx, tenant, e); err != nil {
		s.log.Error("audit event not recorded", "tenant", tenant, "action", e.Action, "actor", e.Actor,
			"target", e.Target, "err", err)
	}
}

// AuditLog adapts the tenants' tamper-evident log (security/audit) to an
// AuditSink.
func AuditLog(l *audit.Log) AuditSink { return auditLog{l} }

type auditLog struct{ l *audit.Log }

func (a auditLog) Record(ctx context.Context, tenant string, e AuditEvent) error {
	_, _, err := a.l.Append(ctx, tenant, audit.Entry{Time: e.Time, Actor: e.Actor, Action: audit.Action(e.Action),
		Target: e.Target, Detail: e.Detail})
	return err
}

package accounts

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

// Managing a tenant's accounts. The gateway has already checked PermAdmin
// on the tenant in the path; here the finer rule: owners (and operators)
// manage every account, admins manage staff accounts only and can make
// nobody more than staff. A tenant always keeps an enabled owner. Delegated
// (OAuth, scope-limited) principals may not manage accounts at all.

var errNotAllowed = engine.Errorf(engine.CodeForbidden, "not allowed")

// actorRole is the role the principal acts with in tenant.
func (s *Service) actorRole(ctx context.Context, p gateway.Principal, tenant string) (Role, error) {
	if p.Scopes != nil {
		return "", errNotAllowed
	}
	if p.Perm == gateway.PermOperator {
		return RoleOwner, nil
	}
	if p.Tenant != tenant {
		return "", errNotAllowed
	}
	a, err := s.account(ctx, tenant, p.Subject)
	if err != nil || a.Disabled {
		return "", errNotAllowed
	}
	return a.Role, nil
}

func mayManage(actor, target Role) bool {
	return actor == RoleOwner || (actor == RoleAdmin && target == RoleStaff)
}

func (s *Service) adminRequest(w http.ResponseWriter, r *http.Request) (gateway.Principal, Role, bool) {
	p, _ := gateway.PrincipalFrom(r.Context())
	role, err := s.actorRole(r.Context(), p, r.PathValue("tenant"))
	if err != nil {
		s.writeError(w, err)
		return p, "", false
	}
	return p, role, true
}

// AccountList is the answer of GET /v1/tenants/{tenant}/accounts.
type AccountList struct {
	Accounts []Account `json:"accounts"`
}

func (s *Service) handleListAccounts(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.adminRequest(w, r); !ok {
		return
	}
	list, err := s.List(r.Context(), r.PathValue("tenant"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AccountList{Accounts: list})
}

func (s *Service) handleGetAccount(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.adminRequest(w, r); !ok {
		return
	}
	a, err := s.Get(r.Context(), r.PathValue("tenant"), r.PathValue("account"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Service) handleCreateAccount(w http.ResponseWriter, r *http.Request) {
	p, role, ok := s.adminRequest(w, r)
	if !ok {
		return
	}
	var in NewAccount
	if err := decode(w, r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	if in.Role == "" {
		in.Role = RoleStaff
	}
	if in.Role.Valid() && !mayManage(role, in.Role) {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "admins may create staff accounts only"))
		return
	}
	tenant := r.PathValue("tenant")
	a, err := s.CreateAccount(r.Context(), tenant, in)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.audit(r.Context(), tenant, AuditEvent{Actor: actor(p), Action: ActionAccountCreated, Target: "account:" + a.ID,
		Detail: map[string]string{"role": string(a.Role)}})
	w.Header().Set("Location", "/v1/tenants/"+tenant+"/accounts/"+a.ID)
	writeJSON(w, http.StatusCreated, a)
}

func (s *Service) handleUpdateAccount(w http.ResponseWriter, r *http.Request) {
	p, role, ok := s.adminRequest(w, r)
	if !ok {
		return
	}
	var ch Change
	if err := decode(w, r, &ch); err != nil {
		s.writeError(w, err)
		return
	}
	ctx, tenant, id := r.Context(), r.PathValue("tenant"), r.PathValue("account")
	target, err := s.account(ctx, tenant, id)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if !mayManage(role, target.Role) || (ch.Role != nil && ch.Role.Valid() && !mayManage(role, *ch.Role)) {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "admins may manage staff accounts only"))
		return
	}
	losesOwner := target.Role == RoleOwner && !target.Disabled &&
		((ch.Role != nil && *ch.Role != RoleOwner) || (ch.Disabled != nil && *ch.Disabled))
	if losesOwner {
		if err := s.keepAnOwner(ctx, tenant, id); err != nil {
			s.writeError(w, err)
			return
		}
	}
	a, err := s.Update(ctx, tenant, id, actor(p), ch)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Service) handleDeleteAccount(w http.ResponseWriter, r *http.Request) {
	p, role, ok := s.adminRequest(w, r)
	if !ok {
		return
	}
	ctx, tenant, id := r.Context(), r.PathValue("tenant"), r.PathValue("account")
	target, err := s.account(ctx, tenant, id)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if !mayManage(role, target.Role) {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "admins may manage staff accounts only"))
		return
	}
	if target.Role == RoleOwner && !target.Disabled {
		if err := s.keepAnOwner(ctx, tenant, id); err != nil {
			s.writeError(w, err)
			return
		}
	}
	if err := s.Delete(ctx, tenant, id, actor(p)); err != nil {
		s.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// keepAnOwner refuses to take away the last enabled owner other than
// except. (Two owners demoting each other at the same instant can still
// both succeed; an operator can then name a new owner.)
func (s *Service) keepAnOwner(ctx context.Context, tenant, except string) error {
	all, err := s.allAccounts(ctx, tenant)
	if err != nil {
		return err
	}
	for _, a := range all {
		if a.ID != except && a.Role == RoleOwner && !a.Disabled {
			return nil
		}
	}
	return engine.Errorf(engine.CodeConflict, "a tenant needs an enabled owner: make another account owner first")
}

func (s *Service) handleGetPolicy(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.adminRequest(w, r); !ok {
		return
	}
	p, err := s.policy(r.Context(), r.PathValue("tenant"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Policy{RequireMFA: p.RequireMFA, OIDCDomains: append([]string{}, p.OIDCDomains...)})
}

func (s *Service) handlePutPolicy(w http.ResponseWriter, r *http.Request) {
	p, role, ok := s.adminRequest(w, r)
	if !ok {
		return
	}
	if role != RoleOwner {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "only owners change the account policy"))
		return
	}
	var in Policy
	if err := decode(w, r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	tp := tenantPolicy{RequireMFA: in.RequireMFA}
	for _, d := range in.OIDCDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if NormalizeEmail("x@"+d) == "" || !strings.Contains(d, ".") {
			s.writeError(w, engine.Errorf(engine.CodeInvalid, "oidc_domains: %q is not a domain", d))
			return
		}
		tp.OIDCDomains = append(tp.OIDCDomains, d)
	}
	tenant := r.PathValue("tenant")
	if _, err := s.putJSON(r.Context(), tenant, kindPolicy, policyKey, &tp, persistence.AnyVersion); err != nil {
		s.writeError(w, err)
		return
	}
	s.audit(r.Context(), tenant, AuditEvent{Actor: actor(p), Action: ActionAdminAction,
		Detail: map[string]string{"change": "account_policy", "require_mfa": strconv.FormatBool(tp.RequireMFA),
			"oidc_domains": strings.Join(tp.OIDCDomains, ",")}})
	writeJSON(w, http.StatusOK, Policy{RequireMFA: tp.RequireMFA, OIDCDomains: append([]string{}, tp.OIDCDomains...)})
}

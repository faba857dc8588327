package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/ory/fosite"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/persistence"
)

// RevokeGrant revokes one grant of tenant: its tokens stop working at once
// and OnRevoke closes its WebSockets.
func (s *Server) RevokeGrant(ctx context.Context, tenant, id string) error {
	err := s.store.revokeGrant(withTenant(ctx, tenant), tenant, id)
	if errors.Is(err, fosite.ErrNotFound) {
		return engine.Errorf(engine.CodeNotFound, "no such grant")
	}
	return err
}

// RevokeClientGrants revokes every grant of a client (an owner revoking an
// app's access) and returns how many were live.
func (s *Server) RevokeClientGrants(ctx context.Context, tenant, clientID string) (int, error) {
	return s.revokeWhere(ctx, tenant, func(g *grantRecord) bool { return g.ClientID == clientID })
}

// RevokeSubject revokes every grant an account gave (or, for an app, that
// the client holds): for account deletion, disabling or a role change.
func (s *Server) RevokeSubject(ctx context.Context, tenant, subject string) (int, error) {
	return s.revokeWhere(ctx, tenant, func(g *grantRecord) bool { return g.Subject == subject })
}

func (s *Server) revokeWhere(ctx context.Context, tenant string, match func(*grantRecord) bool) (int, error) {
	ctx = withTenant(ctx, tenant)
	gs, err := s.store.listGrants(ctx, tenant, func(g *grantRecord) bool { return !g.Revoked && match(g) })
	if err != nil {
		return 0, err
	}
	for _, g := range gs {
		if err := s.store.revokeGrant(ctx, tenant, g.ID); err != nil {
			return 0, err
		}
	}
	return len(gs), nil
}

// Grants lists tenant's live grants.
func (s *Server) Grants(ctx context.Context, tenant string) ([]Grant, error) {
	gs, err := s.store.listGrants(withTenant(ctx, tenant), tenant, func(g *grantRecord) bool { return !g.Revoked })
	if err != nil {
		return nil, err
	}
	out := []Grant{}
	for _, g := range gs {
		out = append(out, g.view())
	}
	return out, nil
}

// --- administration routes (gateway.PermAdmin on the path's tenant) ---

// admin returns the path's tenant and the caller, refusing a scoped
// principal: an app's token never administers apps. (The gateway refuses
// it too, as these routes name no scope; this keeps it so without that.)
func (s *Server) admin(w http.ResponseWriter, r *http.Request) (string, gateway.Principal, bool) {
	p, ok := gateway.PrincipalFrom(r.Context())
	tenant := r.PathValue("tenant")
	if !ok || p.Scopes != nil || !p.Can(tenant, gateway.PermAdmin) {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "not allowed"))
		return "", p, false
	}
	return tenant, p, true
}

func (s *Server) createClient(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.admin(w, r)
	if !ok {
		return
	}
	var spec ClientSpec
	if err := decodeJSON(w, r, &spec); err != nil {
		s.writeError(w, err)
		return
	}
	v, err := s.RegisterClient(r.Context(), tenant, p.Subject, spec)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.log.Info("oauth: client registered", "tenant", tenant, "client", v.ID, "by", p.Subject, "scopes", v.Scopes)
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request) {
	tenant, _, ok := s.admin(w, r)
	if !ok {
		return
	}
	cs, err := s.Clients(r.Context(), tenant)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": cs})
}

func (s *Server) getClient(w http.ResponseWriter, r *http.Request) {
	tenant, _, ok := s.admin(w, r)
	if !ok {
		return
	}
	c, _, err := s.lookupClient(r.Context(), tenant, r.PathValue("client"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c.view())
}

func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.admin(w, r)
	if !ok {
		return
	}
	id := r.PathValue("client")
	if err := s.DeleteClient(r.Context(), tenant, id); err != nil {
		s.writeError(w, err)
		return
	}
	s.log.Info("oauth: client deleted", "tenant", tenant, "client", id, "by", p.Subject)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) revokeClientGrants(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.admin(w, r)
	if !ok {
		return
	}
	id := r.PathValue("client")
	if _, _, err := s.lookupClient(r.Context(), tenant, id); err != nil {
		s.writeError(w, err)
		return
	}
	n, err := s.RevokeClientGrants(r.Context(), tenant, id)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.log.Info("oauth: app access revoked", "tenant", tenant, "client", id, "grants", n, "by", p.Subject)
	writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) {
	tenant, _, ok := s.admin(w, r)
	if !ok {
		return
	}
	gs, err := s.Grants(r.Context(), tenant)
	if err != nil {
		s.writeError(w, err)
		return
	}
	slices.SortFunc(gs, func(a, b Grant) int { return a.CreatedAt.Compare(b.CreatedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"grants": gs})
}

func (s *Server) revokeGrantRoute(w http.ResponseWriter, r *http.Request) {
	tenant, p, ok := s.admin(w, r)
	if !ok {
		return
	}
	id := r.PathValue("grant")
	if err := s.RevokeGrant(r.Context(), tenant, id); err != nil {
		s.writeError(w, err)
		return
	}
	s.log.Info("oauth: grant revoked by admin", "tenant", tenant, "grant", id, "by", p.Subject)
	w.WriteHeader(http.StatusNoContent)
}

// --- JSON helpers, in the gateway's error form ---

const maxBody = 64 << 10

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return engine.Errorf(engine.CodeInvalid, "request body: %v", err)
	}
	if dec.More() {
		return engine.Errorf(engine.CodeInvalid, "request body has data after the JSON object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err as the gateway does: {"error":{"code","message"}};
// anything but an *engine.Error is logged and shown as internal.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	var ee *engine.Error
	if !errors.As(err, &ee) {
		s.log.Error("oauth: internal error", "err", err)
		ee = engine.Errorf(engine.CodeInternal, "internal error")
	}
	writeJSON(w, gateway.HTTPStatus(ee.Code), map[string]any{"error": ee})
}

// Sweep deletes tenant's dead grants — revoked, or with every code and
// token expired — with their records, and returns how many. Lookups
// already refuse what it deletes: it only reclaims space, and may run at
// any time (a periodic job per tenant).
func (s *Server) Sweep(ctx context.Context, tenant string) (int, error) {
	ctx = withTenant(ctx, tenant)
	now := s.cfg.Now()
	dead, err := s.store.listGrants(ctx, tenant, func(g *grantRecord) bool {
		if g.Revoked {
			return true
		}
		for _, t := range g.Tokens {
			if t.Expires.IsZero() || !t.Expires.Before(now) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, g := range dead {
		// Only the grant as it was read: one that gained a token since
		// is live again, and a conflict leaves it for the next sweep.
		err := s.cfg.Records.DeleteRecord(ctx, tenant, kindGrant, g.ID, g.version)
		if errors.Is(err, persistence.ErrConflict) || errors.Is(err, persistence.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("delete grant: %w", err)
		}
		s.store.deleteTokens(ctx, tenant, g.Tokens)
		n++
	}
	return n, nil
}

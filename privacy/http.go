package privacy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// Routes returns the privacy API for gateway.Config.Routes:
//
//	POST /v1/tenants/{tenant}/privacy/export-customer  {"email": …}  → CustomerExport
//	GET  /v1/tenants/{tenant}/privacy/export                         → TenantExport
//	POST /v1/tenants/{tenant}/privacy/erase            {"email": …}  → Receipt
//
// Each needs PermAdmin on the tenant in the path (the tenant's owners and
// admins, or the operator), checked by the gateway before the handler
// runs, and names no scope, so delegated (OAuth) tokens are refused: data
// subjects' requests are handled by people, not apps.
func (s *Service) Routes() []gateway.ExtraRoute {
	route := func(pattern string, h http.HandlerFunc) gateway.ExtraRoute {
		return gateway.ExtraRoute{Route: gateway.Route{Pattern: pattern, Perm: gateway.PermAdmin}, Handler: h}
	}
	return []gateway.ExtraRoute{
		route("POST /v1/tenants/{tenant}/privacy/export-customer", s.handleExportCustomer),
		route("GET /v1/tenants/{tenant}/privacy/export", s.handleExportTenant),
		route("POST /v1/tenants/{tenant}/privacy/erase", s.handleErase),
	}
}

// emailRequest is the body of export-customer and erase.
type emailRequest struct {
	Email string `json:"email"`
}

func (s *Service) handleExportCustomer(w http.ResponseWriter, r *http.Request) {
	tenant, actor, ok := s.principal(w, r)
	if !ok {
		return
	}
	var req emailRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	out, err := s.ExportCustomer(r.Context(), tenant, req.Email, actor)
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="customer-export.json"`)
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) handleExportTenant(w http.ResponseWriter, r *http.Request) {
	tenant, actor, ok := s.principal(w, r)
	if !ok {
		return
	}
	out, err := s.ExportTenant(r.Context(), tenant, actor)
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="tenant-export.json"`)
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) handleErase(w http.ResponseWriter, r *http.Request) {
	tenant, actor, ok := s.principal(w, r)
	if !ok {
		return
	}
	var req emailRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	rec, err := s.Erase(r.Context(), tenant, req.Email, actor)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// principal returns the tenant of the request and who is acting. The
// gateway has checked that the principal may administer that tenant; a
// request that reaches here without one is refused all the same.
func (s *Service) principal(w http.ResponseWriter, r *http.Request) (tenant, actor string, ok bool) {
	p, ok := gateway.PrincipalFrom(r.Context())
	tenant = r.PathValue("tenant")
	if !ok || !p.Can(tenant, gateway.PermAdmin) || (p.Scopes != nil) {
		s.writeError(w, engine.Errorf(engine.CodeForbidden, "not allowed"))
		return "", "", false
	}
	actor = p.Subject
	if actor == "" {
		actor = p.Kind
	}
	return tenant, actor, true
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return engine.Errorf(engine.CodeTooLarge, "request body too large")
		}
		return engine.Errorf(engine.CodeInvalid, "request body must be a JSON object like {\"email\": \"…\"}")
	}
	if _, err := dec.Token(); err != io.EOF {
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

// writeError answers in the gateway's error form. Errors that are not an
// *engine.Error are internal: logged, and their text is not shown.
func (s *Service) writeError(w http.ResponseWriter, err error) {
	var ee *engine.Error
	switch {
	case errors.As(err, &ee):
		if ee.Code == engine.CodeInternal {
			s.cfg.Logger.Error("privacy request failed", "err", err)
		}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		ee = engine.Errorf(engine.CodeUnavailable, "the request timed out; it may still complete: retry it")
	default:
		s.cfg.Logger.Error("privacy request failed", "err", err)
		ee = engine.Errorf(engine.CodeInternal, "internal error")
	}
	writeJSON(w, gateway.HTTPStatus(ee.Code), struct {
		Error *engine.Error `json:"error"`
	}{ee})
}

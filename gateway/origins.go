package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
)

// KindOrigins is the directory kind of a tenant's WebSocket origin
// allow-list, keyed by tenant id. It is configuration, not personal data.
const KindOrigins = "origins"

// MaxTenantOrigins is the most origins one tenant may allow.
const MaxTenantOrigins = 32

// Origins is a tenant's WebSocket origin allow-list: the body of
// PUT /v1/tenants/{tenant}/origins and the answer of GET and PUT.
type Origins struct {
	// AllowedOrigins are the web origins besides slotd's own (and the
	// server-wide Config.OriginPatterns) whose pages may open WebSockets
	// bound to this tenant: "https://book.example.com",
	// "https://*.example.com", "http://localhost:3000". Lowercased.
	AllowedOrigins []string `json:"allowed_origins"`
}

// NormalizeOrigin checks one allowed origin and returns it lowercased. An
// origin is scheme://host[:port] with scheme http or https, host a DNS
// name (whose first label may be "*", for any subdomain), an IPv4 address
// or a bracketed IPv6 address; no path, user, query or other wildcard.
// The narrow grammar keeps a tenant from allowing every origin ("*") by
// mistake.
func NormalizeOrigin(o string) (string, error) {
	bad := func(why string) (string, error) {
		return "", engine.Errorf(engine.CodeInvalid, "allowed origin %q: %s; want scheme://host[:port], e.g. https://book.example.com or https://*.example.com", truncate(o, 80), why)
	}
	if len(o) > 280 {
		return bad("too long")
	}
	o = strings.ToLower(o)
	scheme, hostport, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return bad("the scheme must be http or https")
	}
	host, port := hostport, ""
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		host, port = hostport[:i], hostport[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return bad("bad port")
		}
	}
	switch {
	case strings.HasPrefix(host, "["):
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if err != nil || !strings.HasSuffix(host, "]") || !a.Is6() || a.Zone() != "" {
			return bad("bad IPv6 address")
		}
	case !validDNSName(strings.TrimPrefix(host, "*.")):
		return bad("bad host")
	}
	return o, nil
}

// validDNSName reports whether s is a DNS name of letters, digits and
// hyphens (or an IPv4 address).
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// tenantOrigins returns tenant's allowed origins (none if it never set any).
func (s *Server) tenantOrigins(ctx context.Context, tenant string) ([]string, error) {
	b, err := s.cfg.Directory.GetDirectory(ctx, KindOrigins, tenant)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read allowed origins of %s: %w", tenant, err)
	}
	var o Origins
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decode allowed origins of %s: %w", tenant, err)
	}
	return o.AllowedOrigins, nil
}

// originPatterns are the origins whose pages may open a WebSocket bound to
// tenant ("" for one not bound yet): besides the request's own host, the
// server-wide Config.OriginPatterns and the tenant's allowed origins.
// Requests without an Origin header (not from a browser) need none.
func (s *Server) originPatterns(ctx context.Context, r *http.Request, tenant string) ([]string, error) {
	if tenant == "" || r.Header.Get("Origin") == "" || !persistence.ValidTenant(tenant) {
		return s.cfg.OriginPatterns, nil
	}
	own, err := s.tenantOrigins(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := slices.Clip(s.cfg.OriginPatterns)
	for _, o := range own {
		// The handshake matches patterns with path.Match: an IPv6
		// address's brackets must not read as a character class.
		out = append(out, strings.NewReplacer("[", `\[`, "]", `\]`).Replace(o))
	}
	return out, nil
}

func (s *Server) getOrigins(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	tenant := r.PathValue("tenant")
	if _, err := s.tenantRecord(ctx, tenant); err != nil {
		s.writeError(w, err)
		return
	}
	list, err := s.tenantOrigins(ctx, tenant)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Origins{AllowedOrigins: nonNil(list)})
}

func (s *Server) putOrigins(w http.ResponseWriter, r *http.Request) {
	var req Origins
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if len(req.AllowedOrigins) > MaxTenantOrigins {
		s.writeError(w, engine.Errorf(engine.CodeInvalid, "at most %d allowed origins", MaxTenantOrigins))
		return
	}
	list := make([]string, 0, len(req.AllowedOrigins))
	for _, o := range req.AllowedOrigins {
		n, err := NormalizeOrigin(o)
		if err != nil {
			s.writeError(w, err)
			return
		}
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	tenant := r.PathValue("tenant")
	if _, err := s.tenantRecord(ctx, tenant); err != nil {
		s.writeError(w, err)
		return
	}
	b, _ := json.Marshal(Origins{AllowedOrigins: list})
	if err := s.cfg.Directory.PutDirectory(ctx, KindOrigins, tenant, b); err != nil {
		s.writeError(w, fmt.Errorf("store allowed origins of %s: %w", tenant, err))
		return
	}
	writeJSON(w, http.StatusOK, Origins{AllowedOrigins: list})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

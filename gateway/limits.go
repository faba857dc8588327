package gateway

import (
	"math"
	"net/http"
	"strconv"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/slotd/slotd/engine"
)

// Rate is a token bucket: PerSec calls a second on average, in bursts of
// up to Burst. A PerSec of 0 turns the limit off.
type Rate struct {
	PerSec float64
	Burst  int // at least 1 when PerSec > 0
}

// RateLimits bound how fast callers may go, per client address, per
// credential and per tenant. An HTTP request, a WebSocket handshake and a
// WebSocket message each cost one call; every bucket that applies must have
// a token for the call to go ahead (and none is spent when one refuses).
// They come on top of the per-connection message limit (Config.MsgRate).
// Refusals are 429 rate_limited with Retry-After over HTTP, and a
// rate_limited error frame on a WebSocket. The operator (PermOperator) is
// the deployment's own credential: it spends no credential or tenant
// budget. The zero value limits nothing.
type RateLimits struct {
	// IP: per client address (IPv6 by /64 prefix), every call but health
	// checks. The address is the TCP peer's, or the proxy's
	// X-Forwarded-For with Config.TrustProxy.
	IP Rate
	// Token: per credential (Principal.Grant, or the principal's kind and
	// subject when it has none), every authenticated call. Public booking
	// links are not credentials.
	Token Rate
	// Tenant: per tenant, every call bound to one (path, principal or
	// booking link), whoever makes it.
	Tenant Rate
	// ExemptLoopback spares loopback addresses the IP limit: they are
	// processes on the same host (a local proxy whose forwarded addresses
	// are not trusted would otherwise make all clients one; load tests).
	ExemptLoopback bool
	// MaxKeys bounds the buckets kept for each of IP, Token and Tenant,
	// least recently used out first, so that memory stays bounded however
	// many addresses call; 0: 10000. An evicted bucket starts full again.
	MaxKeys int
}

// limiters are the gateway's shared token buckets: nil fields are off.
type limiters struct {
	ip, token, tenant *keyedLimiter
	exemptLoopback    bool
}

func newLimiters(rl RateLimits) *limiters {
	if rl.MaxKeys <= 0 {
		rl.MaxKeys = 10000
	}
	return &limiters{
		ip:             newKeyedLimiter(rl.IP, rl.MaxKeys),
		token:          newKeyedLimiter(rl.Token, rl.MaxKeys),
		tenant:         newKeyedLimiter(rl.Tenant, rl.MaxKeys),
		exemptLoopback: rl.ExemptLoopback,
	}
}

// keyedLimiter is one token bucket per key, at most max of them.
type keyedLimiter struct {
	r       Rate
	buckets *lru.Cache[string, *rate.Limiter]
}

func newKeyedLimiter(r Rate, max int) *keyedLimiter {
	if r.PerSec <= 0 {
		return nil
	}
	if r.Burst < 1 {
		r.Burst = 1
	}
	c, err := lru.New[string, *rate.Limiter](max)
	if err != nil {
		panic(err) // max > 0: cannot happen
	}
	return &keyedLimiter{r: r, buckets: c}
}

func (k *keyedLimiter) bucket(key string) *rate.Limiter {
	if b, ok := k.buckets.Get(key); ok {
		return b
	}
	b := rate.NewLimiter(rate.Limit(k.r.PerSec), k.r.Burst)
	if prev, ok, _ := k.buckets.PeekOrAdd(key, b); ok {
		return prev
	}
	return b
}

// limitKey names one bucket; a nil limiter or an empty key is no bucket.
type limitKey struct {
	l   *keyedLimiter
	key string
	who string // for the refusal message: "address", "token", "tenant"
}

// take spends one token from each bucket, or none: it returns what refused
// and how long until it would allow the call.
func take(now time.Time, keys ...limitKey) (who string, wait time.Duration, ok bool) {
	var taken [3]*rate.Reservation
	n := 0
	for _, k := range keys {
		if k.l == nil || k.key == "" {
			continue
		}
		res := k.l.bucket(k.key).ReserveN(now, 1)
		d := res.DelayFrom(now)
		if !res.OK() {
			d = time.Hour
		}
		if d > 0 {
			res.CancelAt(now)
			for _, t := range taken[:n] {
				t.CancelAt(now)
			}
			return k.who, d, false
		}
		if n < len(taken) {
			taken[n] = res
			n++
		}
	}
	return "", 0, true
}

// rateLimited is the refusal of a call over a limit.
func rateLimited(who string, wait time.Duration) *engine.Error {
	return engine.Errorf(engine.CodeRateLimited, "too many requests for this %s; retry in %d s", who, retryAfter(wait))
}

// retryAfter is wait in whole seconds, at least 1.
func retryAfter(wait time.Duration) int {
	s := math.Ceil(wait.Seconds())
	if s < 1 {
		return 1
	}
	if s > 86400 {
		return 86400
	}
	return int(s)
}

// writeRateLimited answers 429 rate_limited with Retry-After.
func (s *Server) writeRateLimited(w http.ResponseWriter, who string, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
	s.writeError(w, rateLimited(who, wait))
}

// principalBucket is the token bucket key of p: its credential, or "" for
// the public principal of a booking link and for the operator.
func principalBucket(p Principal) string {
	switch {
	case p.Kind == "public" || p.Kind == "" || p.Perm == PermOperator:
		return ""
	case p.Grant != "":
		return "g:" + p.Grant
	}
	return "p:" + p.Kind + ":" + p.Subject
}

// tenantBucket is the bucket key of tenant for calls by p: none for the
// operator.
func tenantBucket(p Principal, tenant string) string {
	if p.Perm == PermOperator {
		return ""
	}
	return tenant
}

// ipBucket is the bucket key of a client address: IPv6 addresses by /64,
// the smallest block one subscriber usually holds; none for a loopback
// address when those are exempt.
func (l *limiters) ipBucket(ip string) string {
	a, ok := parseAddr(ip)
	if !ok {
		return ip
	}
	if l.exemptLoopback && a.IsLoopback() {
		return ""
	}
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}

// allowIP spends one call of r's client address; false means it answered
// 429. Health checks are never limited: load balancers poll them.
func (s *Server) allowIP(w http.ResponseWriter, r *http.Request) bool {
	if s.limits.ip == nil || isHealthCheck(r) {
		return true
	}
	who, wait, ok := take(time.Now(), limitKey{s.limits.ip, s.limits.ipBucket(s.ClientIP(r)), "address"})
	if !ok {
		s.writeRateLimited(w, who, wait)
	}
	return ok
}

// allowCaller spends one call of p's credential and of tenant; false
// means it answered 429.
func (s *Server) allowCaller(w http.ResponseWriter, p Principal, tenant string) bool {
	who, wait, ok := take(time.Now(),
		limitKey{s.limits.token, principalBucket(p), "token"},
		limitKey{s.limits.tenant, tenantBucket(p, tenant), "tenant"})
	if !ok {
		s.writeRateLimited(w, who, wait)
	}
	return ok
}

// allowTenant spends one call of tenant (a booking link's); false means it
// answered 429.
func (s *Server) allowTenant(w http.ResponseWriter, tenant string) bool {
	return s.allowCaller(w, Principal{}, tenant)
}

// allowMessage spends one call of the connection's address, credential
// and tenant for a message it received.
func (c *conn) allowMessage() *engine.Error {
	l := c.s.limits
	if l.ip == nil && l.token == nil && l.tenant == nil {
		return nil
	}
	c.mu.Lock()
	p, tenant := c.principal, c.tenant
	if !c.authed {
		p, tenant = Principal{}, ""
	}
	c.mu.Unlock()
	who, wait, ok := take(time.Now(),
		limitKey{l.ip, l.ipBucket(c.ip), "address"},
		limitKey{l.token, principalBucket(p), "token"},
		limitKey{l.tenant, tenantBucket(p, tenant), "tenant"})
	if !ok {
		return rateLimited(who, wait)
	}
	return nil
}

package accounts

import (
	"context"
	"errors"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/slotd/slotd/persistence"
)

// Sign-in throttling has two parts:
//
//   - Per account: a record under the tenant, keyed by the hash of the
//     email typed (so unknown emails are throttled exactly like known ones,
//     and every instance sees the same count). After FreeFailures failures,
//     each further one makes the next attempt wait BaseDelay·2^(n−free),
//     up to MaxDelay. A success clears it.
//   - Per IP address: a token bucket in memory (IPBurst, one token per
//     IPInterval) that only failures draw from, so an office behind one
//     address signing in correctly is never slowed.

// throttleRecord counts an email's recent failures.
type throttleRecord struct {
	Failures int       `json:"failures"`
	Until    time.Time `json:"until"` // no attempt before this
}

func throttleKey(email string) string { return sha256Hex("slotd/accounts/throttle/v1/", email) }

// accountWait reports how long sign-in for email must wait; 0 when it may
// go on.
func (s *Service) accountWait(ctx context.Context, tenant, email string) (time.Duration, error) {
	var t throttleRecord
	_, err := s.getJSON(ctx, tenant, kindThrottle, throttleKey(email), &t)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if d := t.Until.Sub(s.now()); d > 0 {
		return d, nil
	}
	return 0, nil
}

// accountFailed counts a failure for email.
func (s *Service) accountFailed(ctx context.Context, tenant, email string) {
	key := throttleKey(email)
	for range maxCASRetries {
		var t throttleRecord
		ver, err := s.getJSON(ctx, tenant, kindThrottle, key, &t)
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			ver = 0
		case err != nil:
			s.log.Warn("read sign-in throttle", "tenant", tenant, "err", err)
			return
		}
		t.Failures++
		t.Until = s.now().UTC().Add(s.backoff(t.Failures))
		_, err = s.putJSON(ctx, tenant, kindThrottle, key, &t, ver)
		if errors.Is(err, persistence.ErrConflict) {
			continue
		}
		if err != nil {
			s.log.Warn("write sign-in throttle", "tenant", tenant, "err", err)
		}
		return
	}
}

// backoff is the wait after the n-th consecutive failure.
func (s *Service) backoff(n int) time.Duration {
	over := n - s.cfg.FreeFailures
	if over < 0 {
		return 0
	}
	f := float64(s.cfg.BaseDelay) * math.Pow(2, float64(over))
	if f >= float64(s.cfg.MaxDelay) {
		return s.cfg.MaxDelay
	}
	return time.Duration(f)
}

// accountSucceeded clears email's failures.
func (s *Service) accountSucceeded(ctx context.Context, tenant, email string) {
	if err := s.records.DeleteRecord(ctx, tenant, kindThrottle, throttleKey(email), persistence.AnyVersion); err != nil {
		s.log.Warn("clear sign-in throttle", "tenant", tenant, "err", err)
	}
}

func (s *Service) ipLimiter(ip string) *rate.Limiter {
	if l, ok := s.ips.Get(ip); ok {
		return l
	}
	l := rate.NewLimiter(rate.Every(s.cfg.IPInterval), s.cfg.IPBurst)
	// Two requests may race to add one; either limiter is fine.
	if prev, ok, _ := s.ips.PeekOrAdd(ip, l); ok {
		return prev
	}
	return l
}

// ipWait reports how long the address must wait before another attempt.
func (s *Service) ipWait(ip string) time.Duration {
	l := s.ipLimiter(ip)
	now := s.now()
	tokens := l.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(s.cfg.IPInterval))
}

// ipFailed draws a token for a failure from ip.
func (s *Service) ipFailed(ip string) {
	s.ipLimiter(ip).AllowN(s.now(), 1)
}

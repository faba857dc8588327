package integrations

import (
	"context"
	"errors"
	"fmt"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/audit"
)

// A Result is what disconnecting one connection did.
type Result struct {
	Connection Connection
	Revocation Revocation
	// RevokeErr says why Revocation is RevokeFailed or Unreadable. The credential was
	// deleted regardless; tell the user to remove slotd's access at the provider.
	RevokeErr error
}

// Disconnect revokes the connection's credential at its provider, where the provider offers
// revocation, then deletes the connection and its credential. The error is about the
// deletion only (or a connection that does not exist); the revocation's outcome is in the
// Result. It is safe to call again after a failure: a credential already revoked counts as
// done, and the deletion is idempotent.
func (s *Service) Disconnect(ctx context.Context, tenant, id, actor string) (Result, error) {
	rec, _, err := s.get(ctx, tenant, id)
	if err != nil {
		return Result{}, err
	}
	return s.disconnect(ctx, tenant, rec, actor)
}

func (s *Service) disconnect(ctx context.Context, tenant string, rec record, actor string) (Result, error) {
	res := Result{Connection: rec.Connection}
	cred, err := s.open(tenant, rec)
	if err != nil {
		res.Revocation, res.RevokeErr = Unreadable, err
	} else {
		res.Revocation, res.RevokeErr = s.revoke(ctx, rec.Connection, cred)
	}
	// Revoke first, delete second: a crash in between leaves a revoked credential behind
	// (deleted on the next try), never a deleted one still valid at the provider.
	if err := s.records.DeleteRecord(ctx, tenant, KindConnection, rec.ID, persistence.AnyVersion); err != nil {
		return res, fmt.Errorf("integrations: delete connection %s: %w", rec.ID, err)
	}
	if res.RevokeErr != nil {
		s.log.Warn("calendar credential deleted but not revoked at the provider",
			"tenant", tenant, "connection", rec.ID, "provider", string(rec.Provider),
			"revocation", string(res.Revocation), "err", res.RevokeErr)
	}
	s.record(ctx, tenant, audit.Entry{Actor: actor, Action: audit.ActionIntegrationDisconnected,
		Target: "integration:" + rec.ID, Detail: map[string]string{
			"provider": string(rec.Provider), "account": rec.Account, "revocation": string(res.Revocation)}})
	return res, nil
}

func (s *Service) revoke(ctx context.Context, c Connection, cred Credential) (Revocation, error) {
	r := s.revokers[c.Provider]
	if r == nil {
		return NotSupported, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rev, err := r.Revoke(ctx, c, cred)
	if err != nil && rev != Unreadable {
		rev = RevokeFailed
	}
	return rev, err
}

// DisconnectAccount disconnects every connection of tenant that account made: for an
// account's deletion. It carries on past a failing connection and returns every result, and
// the deletion errors joined.
func (s *Service) DisconnectAccount(ctx context.Context, tenant, account, actor string) ([]Result, error) {
	return s.disconnectWhere(ctx, tenant, actor, func(c Connection) bool { return c.Account == account })
}

// DisconnectTenant disconnects every connection of tenant: for a downgrade to a plan without
// integrations (see AccountLifecycle.PlanDowngraded, which also forbids new ones) or the
// tenant's deletion.
func (s *Service) DisconnectTenant(ctx context.Context, tenant, actor string) ([]Result, error) {
	return s.disconnectWhere(ctx, tenant, actor, func(Connection) bool { return true })
}

func (s *Service) disconnectWhere(ctx context.Context, tenant, actor string, match func(Connection) bool) ([]Result, error) {
	var recs []record
	err := s.all(ctx, tenant, func(rec record, _ uint64) error {
		if match(rec.Connection) {
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var (
		out  []Result
		errs []error
	)
	for _, rec := range recs {
		res, err := s.disconnect(ctx, tenant, rec, actor)
		out = append(out, res)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

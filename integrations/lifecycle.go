package integrations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// SessionEnder ends every session or token of an account and returns the grant ids
// (gateway.Principal.Grant) of the credentials it ended, so that WebSockets opened with them
// can be closed. Package accounts (browser sessions, WebSocket tokens) and package oauth
// (access and refresh tokens of the apps the account authorised) each implement it.
type SessionEnder interface {
	EndAccount(ctx context.Context, tenant, account string) (grants []string, err error)
}

// GrantCloser closes the WebSockets opened with a grant (*gateway.Server).
type GrantCloser interface {
	CloseGrant(grant string) int
}

// AccountLifecycle is what happens to an account's access when the account goes away: when it
// is deleted, every session and token it holds ends, the WebSockets they opened are closed,
// and every calendar it connected is disconnected (revoked at the provider where possible,
// our credentials deleted); when the tenant's plan loses integrations, every connection of the
// tenant is disconnected and new ones are refused. It is the hook accounts and billing call.
type AccountLifecycle struct {
	Integrations *Service
	Sessions     []SessionEnder
	Sockets      GrantCloser // nil: no gateway in this process
	Logger       *slog.Logger
}

// A LifecycleReport says what an AccountLifecycle call did.
type LifecycleReport struct {
	Disconnected  []Result
	GrantsEnded   int
	SocketsClosed int
}

// AccountDeleted ends the account's sessions and tokens, closes their WebSockets, and
// disconnects its calendar connections, in that order: the account can do nothing more
// (reconnect a calendar, say) while its connections are being removed. It carries on past
// failures and returns them joined; calling it again finishes what failed.
func (l *AccountLifecycle) AccountDeleted(ctx context.Context, tenant, account, actor string) (LifecycleReport, error) {
	var (
		rep  LifecycleReport
		errs []error
	)
	for _, e := range l.Sessions {
		grants, err := e.EndAccount(ctx, tenant, account)
		if err != nil {
			errs = append(errs, fmt.Errorf("end sessions: %w", err))
		}
		rep.GrantsEnded += len(grants)
		if l.Sockets != nil {
			for _, g := range grants {
				rep.SocketsClosed += l.Sockets.CloseGrant(g)
			}
		}
	}
	if l.Integrations != nil {
		res, err := l.Integrations.DisconnectAccount(ctx, tenant, account, actor)
		rep.Disconnected = res
		if err != nil {
			errs = append(errs, err)
		}
	}
	l.logged(tenant, "account deleted", rep)
	return rep, errors.Join(errs...)
}

// PlanDowngraded forbids new connections for the tenant and disconnects every existing one
// (revoked where possible, credentials deleted). Sessions stay: the people still use slotd,
// without integrations. Forbidding first closes the race with a concurrent Connect (see
// Service.Connect).
func (l *AccountLifecycle) PlanDowngraded(ctx context.Context, tenant, actor string) (LifecycleReport, error) {
	var rep LifecycleReport
	if err := l.Integrations.SetEnabled(ctx, tenant, false); err != nil {
		return rep, err
	}
	res, err := l.Integrations.DisconnectTenant(ctx, tenant, actor)
	rep.Disconnected = res
	l.logged(tenant, "plan downgraded", rep)
	return rep, err
}

func (l *AccountLifecycle) logged(tenant, what string, rep LifecycleReport) {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	failed := 0
	for _, r := range rep.Disconnected {
		if r.RevokeErr != nil {
			failed++
		}
	}
	log.Info(what, "tenant", tenant, "connections_disconnected", len(rep.Disconnected),
		"revocations_failed", failed, "grants_ended", rep.GrantsEnded, "websockets_closed", rep.SocketsClosed)
}

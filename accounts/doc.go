// Package accounts owns the people who run a tenant: their accounts
// (owner, admin, staff), how they sign in (password, TOTP second factor,
// recovery codes, OpenID Connect with Google or Microsoft), their browser
// sessions, and the short-lived tokens that let a signed-in browser open
// the staff WebSocket. End customers are data subjects, not accounts.
//
// It plugs into the gateway through three seams: Routes (its HTTP API, each
// route with the permission it needs), AuthenticateRequest (the session
// cookie, with CSRF checks, as gateway.Config.Sessions) and WSTokens (a
// gateway.Authenticator for the WebSocket "auth" message).
//
// The threats it addresses, and where:
//
//   - Stolen database or backup: passwords are Argon2id hashes
//     (security/password), session ids, WebSocket tokens, sign-in challenges
//     and recovery codes are stored only as SHA-256 hashes (they are 256 and
//     80 random bits: a fast hash is enough), and TOTP secrets are sealed with
//     AES-256-GCM (security/secrets) bound to the tenant and account.
//   - Online guessing: per-account exponential backoff kept in the record
//     store (so every instance sees it) and a per-IP token bucket; one
//     generic failure for unknown account, wrong password and wrong code,
//     and a dummy hash for unknown accounts so timing tells nothing either.
//   - Replayed second-factor codes: the last accepted TOTP time step is kept
//     on the account and moved by compare-and-swap, so a code (and any older
//     one) is accepted once; recovery codes are removed when used, by the
//     same compare-and-swap.
//   - Session theft and fixation: 256-bit random ids in a __Host- cookie
//     (HttpOnly, Secure, SameSite=Lax, Path=/), a new id at every sign-in,
//     idle and absolute timeouts, and an account generation counter that
//     ends every session at once when the account is disabled, deleted, its
//     role or its password changes; the WebSockets opened from those sessions
//     are closed through the gateway (Principal.Grant is the session's hash).
//   - Cross-site request forgery: state-changing cookie requests need a
//     token derived from the session id (HMAC), and requests that the
//     browser marks cross-site (Sec-Fetch-Site, Origin) are refused; sign-in
//     itself refuses cross-site requests (login CSRF).
//   - Identity provider mix-ups: OpenID Connect uses the authorization code
//     flow with PKCE (S256), a state bound to the browser by a cookie and
//     used once, and a nonce checked in the ID token, whose signature,
//     issuer, audience and expiry go-oidc verifies. It signs in existing
//     accounts only (unless the tenant allows a domain), matched by a
//     verified email and then pinned to the provider's subject.
package accounts

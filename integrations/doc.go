// Package integrations owns a tenant's connections to external calendars (Google Calendar,
// Microsoft 365 / Outlook, iCloud and other CalDAV servers): who connected which calendar
// account, with which scopes, and the credential slotd keeps to reach it. It keeps the
// promises the design makes about those credentials (invariant 6) and about what happens to
// them when the account that made them goes away.
//
// The threats it addresses, and how:
//
//   - A stolen database or backup. Credentials (an OAuth refresh token, or a user name and an
//     app-specific password) are stored only sealed with AES-256-GCM by security/secrets: a
//     key derived per record from the master key, which is never in the database, with the
//     tenant and the connection id bound as additional authenticated data and the key id
//     stored beside the ciphertext. A sealed credential copied onto another connection, or
//     into another tenant, does not open.
//   - Credentials in logs. Credential redacts itself under every fmt verb; errors about a
//     provider name the status and the provider's error code, never the request or the
//     token; audit entries record the provider and the outcome only.
//   - Access that outlives its reason. Deleting an account, or downgrading the tenant's plan
//     to one without integrations, disconnects every connection it made: the credential is
//     revoked at the provider where the provider offers revocation, and deleted from our store
//     in every case ([Service.Disconnect], [AccountLifecycle]). Revocation comes first, so
//     a crash in between leaves a revoked credential to delete on the next try, never a
//     deleted credential that is still valid at the provider.
//   - Key rotation. [Service.RotateKeys] re-seals every credential under the keyring's active
//     key with compare-and-swap, so `slotd keys rotate` can run while slotd serves, and a
//     credential replaced meanwhile (a rotated refresh token) is re-read, never clobbered.
//
// # Revocation by provider
//
//   - Google: the refresh token is revoked at https://oauth2.googleapis.com/revoke (a form
//     POST of token=…; 200 on success, 400 with "invalid_token" for a token already expired or
//     revoked, which counts as done). Revoking a refresh token ends the whole grant, and its
//     access tokens.
//   - Microsoft identity platform: there is no endpoint that revokes one refresh token. The
//     only revocation, Microsoft Graph's revokeSignInSessions, ends every session of the user
//     in every application and needs a far broader permission than a calendar integration
//     should hold. slotd deletes its copy (Revocation NotSupported); the user can remove
//     slotd's access at https://myapps.microsoft.com, and an unused refresh token expires
//     after 90 days.
//   - iCloud (and other CalDAV servers with app-specific passwords): Apple offers no API to
//     revoke an app-specific password; the user revokes it at https://appleid.apple.com
//     (Sign-In and Security, App-Specific Passwords). slotd deletes its copy (Revocation
//     NotSupported). Generic CalDAV passwords likewise.
//
// If a revocation that the provider supports fails (network, provider error), the stored
// credential is still deleted: keeping a secret the owner asked us to drop is the worse
// failure. The failure is returned in [Result], logged and written to the audit trail, so that
// the caller can tell the user to remove the access at the provider.
//
// # Data minimisation
//
// From the calendars themselves slotd keeps busy intervals only (invariant 7): a sync imports
// start and end of each busy period through engine.ImportBusy, and nothing of the events'
// titles, attendees or descriptions. This package stores no calendar data at all.
package integrations

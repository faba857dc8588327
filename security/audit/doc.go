// Package audit keeps each tenant's security log (sign-ins and failures, second-factor changes,
// token grants and revocations, role changes, exports, erasures, key rotations, admin actions)
// append-only and tamper-evident, so that after an incident the log can be trusted to say what
// happened, and any attempt to rewrite it shows.
//
// The threats it addresses:
//
//   - Someone with write access to the database (an attacker, or an insider covering tracks)
//     alters, deletes, reorders or inserts entries. Each tenant's log is a Merkle tree
//     (RFC 6962, through golang.org/x/mod/sumdb/tlog, the Go checksum database's log): every
//     entry's hash is a leaf, the stored interior hashes and the root commit to all of them, and
//     the root is signed (Ed25519, golang.org/x/mod/sumdb/note) with a key that is not in the
//     database. [Log.Verify] recomputes every hash from the entries and reports the first index
//     where the stored log departs from what was signed.
//   - Truncation. The latest signed checkpoint names the log's size, so dropping the newest
//     entries shows. Rolling the whole log back to an older state, checkpoint included, can only
//     be caught against a checkpoint kept elsewhere: [Log.Append] returns each signed checkpoint
//     and [Log.Verify] accepts a trusted one, proving the current log extends it (a Merkle
//     consistency proof). Keep the checkpoint from each verification run outside the database.
//   - Signing over tampering. Before each append, Append checks that the stored tree still
//     hashes to the signed root, so a tampered log is never re-signed by the next entry.
//   - Log injection. Entries are canonical JSON, and every text field is stored with control
//     characters, line and paragraph separators and bidirectional-text controls escaped
//     (`\n` becomes the two characters `\x0a`), so a user name like "bob\n2025-01-01 admin
//     granted" or an ANSI escape cannot forge a line or repaint a terminal when the log is
//     printed. Values are escaped rather than refused, so an attacker cannot suppress the record
//     of a failed sign-in by putting a newline in the user name.
//   - Secrets in the log. Detail keys that name a secret (password, token, secret, key,
//     credential, cookie, …) and values that look like one (password hashes, bearer tokens,
//     JWTs, PEM blocks) are refused with a *RedactionError: a bug, caught by tests, not a
//     silent leak.
//
// # Storage
//
// A [Store] keeps, per tenant: each entry's canonical JSON by index, the tree's stored hashes
// (tlog.StoredHashes: about two per entry), and the latest signed checkpoint. Append writes all
// three for one entry atomically, conditional on the log's size, so two slotd instances
// appending for one tenant cannot both win.
//
// # Retention
//
// Entries older than the retention period (default 180 days) are pruned by [Log.Prune], which
// deletes entry bodies only and keeps every hash, so the tree, the signed root and the proofs
// stay verifiable. Each prune first appends a retention_prune entry saying up to which index
// bodies are gone; Verify accepts a missing body only below the index named by the latest such
// entry, so a deletion dressed up as retention still shows. Every entry carries a random salt,
// so the leaf hash kept after its body is gone reveals nothing about the entry.
package audit

// Package auditstore keeps the tenants' audit logs (package security/audit) in slotd's record
// store (persistence.RecordStore), so that they live in the same database as the rest of a
// tenant's data (Pebble, PostgreSQL, each tenant in its home region) without a schema of their
// own. It implements audit.Store; the audit package does all hashing, signing and checking.
//
// # Records
//
// Per tenant, with fixed-width decimal keys so that byte order is index order:
//
//	audit_body    key = entry index   value = the entry's canonical JSON
//	audit_hash    key = entry index   value = the tree hashes stored with that entry (32 bytes each)
//	audit_head    key = "head"        value = {size, signed checkpoint}: the commit point
//	audit_intent  key = "next"        value = the append in progress, or "none"
//
// # Why an append is atomic with per-record compare-and-swap only
//
// audit.Store.Append must store an entry's body, its hashes and the new checkpoint in one
// atomic write, conditional on the log's size. The record store offers compare-and-swap on
// one record at a time, not transactions over several, so an append is made atomic in the
// way of a write-ahead intent that anyone can roll forward:
//
//  1. Claim. The appender writes the complete append (index n, body, hashes, new checkpoint)
//     into the tenant's intent record, by compare-and-swap on the version at which it read the
//     intent as settled, and only after reading the head at size n. Of several appenders, one
//     wins the claim; the others get audit.ErrConflict and audit.Log retries them.
//  2. Roll forward. The body and hash records of index n are written, then the head is
//     replaced by {n+1, checkpoint} by compare-and-swap on the head's version. This head
//     swap is the commit point: readers trust the head only, and never read past it.
//  3. Settle. The intent is marked settled (compare-and-swap again).
//
// Anyone who finds an unsettled intent, because its writer crashed or is slow, performs
// steps 2 and 3 for it before appending its own entry. This is safe because:
//
//   - While an intent is unsettled nobody can claim another, so the only entry that can be
//     committed at index n is the one in the intent. Every writer of the body and hash
//     records of index n writes those same bytes, so a slow or repeated write clobbers
//     nothing, even one that lands after the commit.
//   - The head changes only by compare-and-swap from the version read while the head had size
//     n; after the commit its version has moved on, so a late roller's head swap fails.
//   - The intent record is never deleted, only replaced, so its version only grows: a claim
//     cannot succeed against an intent that was settled and claimed again meanwhile (no ABA).
//   - Claiming at the version at which the intent was read as settled, after reading the head,
//     means the head cannot have moved between that read and the claim: the head moves only
//     by rolling an unsettled intent forward, and any new intent would have changed the
//     version the claim expects.
//
// A consequence: an Append that fails after its claim (a crash, a canceled context) may still
// be committed by the next appender. The entry records an event that did happen, so the log
// errs towards recording it.
//
// Records of index n or more (beyond the head) are not part of the log. Len reports them,
// except those of an unsettled intent, so that audit.Log.Verify calls entries written past
// the signed checkpoint by anyone else "unsigned"; and an append refuses to claim an index
// that already has a record, so that it never overwrites what an attacker left there.
//
// # Tenants
//
// The record store cannot list tenants; New takes a function that does (the directory's
// tenant list), and Tenants keeps those that have a head or any entry.
package auditstore

// Package privacy owns the rights of the people tenants book: access to
// and portability of their data (GDPR Art. 15 and 20, Service.ExportCustomer
// and Service.ExportTenant) and erasure (Art. 17, Service.Erase), and the
// at-rest protection that makes erasure reach every copy (Codec).
//
// # Pseudonyms and sealing
//
// Each end customer of a tenant has a pseudonym, engine.Customer.Subject: a
// random id, the same on all their bookings. Codec, as the registry's
// actors.Codec, assigns it to every Book before the engine sees it (from an
// index of HMAC(tenant salt, normalized email) → pseudonym), and seals the
// customer's name, email and phone with secrets.SubjectKeys before any
// event or snapshot is stored: under a key of that pseudonym's own, bound
// to the tenant, the pseudonym and the booking. The journal, snapshots and
// every backup of them hold the pseudonym and ciphertext, never the
// customer in the clear. In memory (the actor's state, the API) customers
// are in the clear as before.
//
// # Erasure by crypto-shredding
//
// Service.Erase (a tenant owner's or admin's request) applies
// engine.EraseSubject through the tenant's actor, so that the live state and
// every replay show the customer's bookings as {Subject, Erased: true} with
// their times, resources and statuses intact; records the erasure in the
// audit log; destroys the pseudonym's key, leaving a tombstone so that no
// key is ever made for it again; and deletes the index entry. From then on
// no stored copy of the customer can be opened, by anyone, master keys or
// not, and nothing stored links the email to the pseudonym. An instance
// that has not read the erasure yet cannot bring the customer back: its
// write meets the tombstone, reads the journal and is decided again
// (actors.ErrBehindJournal), and what returns personal data reads the
// latest state (actors.Registry.ReadLatest) first. A customer who books
// again gets a new pseudonym.
//
// # Where the keys live, and backups
//
// Subject keys, the index and the index salts are records (kinds
// KindSubjectKey, KindSubjectIndex, KindSubjectSalt) in the
// persistence.RecordStore given to NewCodec, never in the journal. Erasure
// is only as final as the deletion of those records: a backup of that store
// taken before an erasure still holds the key. So give them a store of their
// own (a separate Pebble directory or database) whose backups expire within
// the erasure deadline (30 days, say), while journals and snapshots may be
// kept as long as the business needs: after the deadline every copy of an
// erased customer in them is unreadable. With the records in the main
// store, the main store's backups need that short retention.
//
// # Limits
//
//   - Journal entries and snapshots written before the codec was configured
//     hold customers in the clear and stay so on disk. They still load (each
//     such customer gets the pseudonym of their email), exports and erasure
//     find them, and an erased customer is erased in the state and in every
//     snapshot from then on; but the old bytes remain until the journal is
//     compacted, which slotd does not do.
//   - What people type in free text (a cancellation reason) is not sealed.
//   - Booking details already delivered (feeds to staff apps, emails, logs
//     outside slotd) are beyond reach.
package privacy

// Package password stores and checks account passwords so that a leak of the account table does
// not hand out the passwords, and so that the passwords people choose resist online guessing.
//
// The threats it addresses:
//
//   - Offline cracking after a database leak. [Hasher.Hash] uses Argon2id, a memory-hard function,
//     at the OWASP Password Storage Cheat Sheet parameters (m=19 MiB, t=2, p=1), with a 16-byte
//     random salt per password and a 32-byte output, encoded as a PHC string. Every guess costs an
//     attacker 19 MiB of memory and two passes over it, which defeats GPU and ASIC parallelism.
//   - Weak legacy hashes. [Hasher.Verify] accepts bcrypt hashes from imported accounts and
//     Argon2 hashes with older parameters, and reports needsRehash so that the caller re-hashes
//     with the current parameters at the next successful sign-in, while it has the password.
//   - Timing side channels. Hash outputs are compared in constant time, and
//     [Hasher.VerifyDummy] lets a sign-in for an unknown account spend the same time as one for a
//     known account, so response times do not reveal which accounts exist.
//   - Denial of service through stored hashes. An imported hash names its own cost; costs above
//     the limits in [Options] are refused before any work is done, and the parser never panics.
//   - Guessable passwords. [Policy.Check] follows NIST SP 800-63B and OWASP ASVS 5 (V6): a long
//     minimum length (15, or 8 with a second factor), a generous maximum (128), no composition
//     rules, paste and spaces allowed, and a check against a bundled list of 10,000 common
//     passwords and against words from the account's context (email, product name).
//
// Passwords are normalised to Unicode NFKC before they are counted, checked or hashed (NIST SP
// 800-63B §5.1.1.2), so the same password typed on two keyboards that produce different code
// point sequences still matches.
package password

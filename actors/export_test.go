package actors

// MailboxLen reports how many messages wait in the mailbox of the tenant's
// live actor (0 if none is live), so that tests can tell when commands have
// queued up behind a blocked actor instead of guessing with sleeps.
func (r *Registry) MailboxLen(tenant string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.live.Peek(tenant)
	if !ok {
		return 0
	}
	return a.mailbox.len()
}

// FollowDecodeTries is followDecodeTries, for tests.
const FollowDecodeTries = followDecodeTries

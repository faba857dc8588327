package postgres

// SetChooseSeat replaces the projection's seat choice, to play a buggy
// projection. Call it before using s.
func SetChooseSeat(s *Store, choose func(capacity int32, used []int32) (int32, bool)) {
	s.chooseSeat = choose
}

//go:build race

package engine_test

// raceEnabled reports whether the race detector is on: the property test
// runs fewer sequences under it.
const raceEnabled = true

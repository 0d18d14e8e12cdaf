//go:build race

package integration

// raceOn reports whether the tests run with the race detector.
const raceOn = true

//go:build !race

package mqtt

// raceEnabled: the race detector is on, and goroutine stacks are larger.
const raceEnabled = false

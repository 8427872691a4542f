//go:build race

package simnet

// raceEnabled reports a race-detector build, which runs several times
// slower: the idle grace is longer and the large tests smaller.
const raceEnabled = true

package simnet

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"
)

// SeedEnv is the environment variable that overrides every Network's seed,
// like the -simnet.seed flag (the flag wins when both are set).
const SeedEnv = "TCPINC_SIM_SEED"

var seedFlag = flag.String("simnet.seed", "", "replay simulated networks with this seed (also "+SeedEnv+")")

// seedOverride returns the seed forced by the -simnet.seed flag or the
// TCPINC_SIM_SEED environment variable, if any.
func seedOverride() (seed uint64, source string, ok bool, err error) {
	for _, c := range []struct{ v, src string }{
		{*seedFlag, "-simnet.seed"},
		{os.Getenv(SeedEnv), SeedEnv},
	} {
		if c.v == "" {
			continue
		}
		s, err := strconv.ParseUint(c.v, 0, 64)
		if err != nil {
			return 0, c.src, false, fmt.Errorf("simnet: bad %s %q: %v", c.src, c.v, err)
		}
		return s, c.src, true, nil
	}
	return 0, "", false, nil
}

// resolveSeed picks the seed of a network: an override from the flag or
// the environment, else the configured seed, else a fresh random one.
func resolveSeed(configured uint64) (uint64, string, error) {
	if s, src, ok, err := seedOverride(); ok || err != nil {
		return s, src, err
	}
	if configured != 0 {
		return configured, "Config.Seed", nil
	}
	s := rand.Uint64()
	for s == 0 {
		s = rand.Uint64()
	}
	return s, "random", nil
}

// Streams derived from a network's seed; each consumer gets its own so
// that adding randomness in one place does not shift decisions elsewhere.
const (
	streamLinkAtoB uint64 = iota + 1
	streamLinkBtoA
	streamStackA
	streamStackB
	streamData
)

// lockedSource is a goroutine-safe math/rand (v1) Source and io.Reader
// built on a seeded ChaCha8, for gVisor's RandSource and SecureRNG
// options (ISNs, ephemeral ports, timestamp offsets).
type lockedSource struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func newLockedSource(seed, stream uint64) *lockedSource {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
		key[8+i] = byte(stream >> (8 * i))
	}
	return &lockedSource{r: rand.NewChaCha8(key)}
}

func (s *lockedSource) Int63() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.r.Uint64() >> 1)
}

func (s *lockedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Uint64()
}

// Seed is part of math/rand.Source; reseeding is not supported.
func (s *lockedSource) Seed(int64) {}

func (s *lockedSource) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Read(p)
}

var _ io.Reader = (*lockedSource)(nil)

// dataStream returns a reproducible pseudo-random byte stream for test
// payloads.
func dataStream(seed, stream uint64) io.Reader {
	return newLockedSource(seed, streamData<<32|stream)
}

// replayHint is the sentence appended to failures.
func replayHint(seed uint64) string {
	return fmt.Sprintf("simnet seed %d (replay: -simnet.seed=%d or %s=%d)", seed, seed, SeedEnv, seed)
}

// realTimeout bounds every blocking helper in wall-clock time, so that a
// wedged simulation fails instead of hanging the test binary.
const realTimeout = 2 * time.Minute

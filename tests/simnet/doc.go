// Package simnet is an in-process simulated network for testing the divert
// engine against real TCP stacks and a hostile path.
//
// # Model
//
// A Network has two hosts, A and B. Each is a gVisor netstack (real TCP:
// SACK, congestion control, retransmission, TIME-WAIT...) with one NIC on a
// channel link endpoint, MTU Config.MTU (default 1500), no segmentation or
// checksum offload, and the addresses 10.99.0.1/24 + fd00::1/64 (A) and
// 10.99.0.2/24 + fd00::2/64 (B). Nothing leaves the process.
//
// A packet from A to B travels:
//
//	A's stack ─(TapEmitted)→ engine A, Process(Outbound)
//	  ─(TapSent)→ NAT (A's side) → option stripping → MSS clamping
//	  → resegmenting box (split / coalesce) → loss → duplication
//	  → reordering → delay and jitter
//	  ─(TapDelivered)→ engine B, Process(Inbound)
//	  ─(TapReceived)→ B's stack
//
// and the reverse for B to A (the NAT translating back just before
// TapDelivered). A nil engine passes packets unchanged; packets that are
// not TCP bypass engines (a divert filter captures TCP only) and
// middleboxes, but not loss, duplication, reordering or delay. Packets
// an engine injects go by their Dir: Outbound onto its host's link,
// Inbound into its own stack. Each packet buffer has spare capacity
// (Config.BufferCap, default MTU+256) so engines can grow packets;
// packets over the MTU are dropped on the link (Stats Oversize) unless
// Config.AllowOversize. Every packet an engine rewrites (Modified) or
// injects must parse and carry correct checksums, else the test fails at
// once rather than stalling on a silent drop in the receiving stack.
//
// # Time
//
// Everything runs on one simulated clock: both stacks (stack.Options.Clock,
// so retransmission, TLP, RACK, delayed-ACK and TIME-WAIT timers), the
// link (serialization at LinkConfig.Bandwidth, default 1 Gbit/s; delay;
// jitter; reorder and coalesce holds) and the engines (the now passed to
// Process and compared with NextDeadline). One driver goroutine owns the
// link and the engines. It loops: drain the stacks' outbound queues
// through the engines onto the link, deliver the link packets due now
// through the engines into the stacks, call engines whose NextDeadline has
// come, fire due stack timers. When there is nothing to do at the current
// instant, simulated time jumps: at once to the next link event or engine
// deadline, but to the next stack timer only after the network has stayed
// idle for Config.IdleGrace of real time (2ms; 5ms under the race
// detector), because gVisor processes segments on its own goroutines and
// an ACK may still be on its way out. After such an idle jump, timers fire
// with a 1ms tick granularity (like kernel jiffies), and while no packet
// moves, further timer jumps wait only a tenth of the grace. Every clock
// reading advances the clock by 1ns, as a real clock moves while code
// runs: no two transmissions are simultaneous (gVisor's RACK misjudges
// segments sent at the same instant as lost).
//
// So data moves at CPU speed, a 1s retransmission timeout costs about 2ms
// of real time, and a clean transfer sees no spurious retransmission. The
// price: CPU time spent in the stacks or the test's goroutines is free in
// simulated time, so a starved goroutine can look very slow to TCP (a
// zero-window probe may back off for simulated minutes). Assert on
// simulated durations only with generous bounds.
//
// # Determinism
//
// Every random decision comes from the seed: per link direction a PCG
// stream decides loss, duplication, reordering, jitter, split points and
// coalescing; the stacks' random sources (ISNs, ephemeral ports) and the
// test payloads are seeded ChaCha8 streams. Same seed and same packet
// sequence give the same decisions. The packet sequence itself can vary
// between runs, since gVisor and the test's connections run on their own
// goroutines and the batching of packets depends on scheduling; a failure
// found with a seed is therefore very likely, not certain, to replay.
// The seed is logged whenever a test using the network fails; replay it
// with -simnet.seed=N or TCPINC_SIM_SEED=N (either overrides Config.Seed
// for every network in the run).
//
// # Use
//
//	n := simnet.New(t, simnet.Config{
//		EngineA: engA, EngineB: engB,
//		AtoB: simnet.LinkConfig{Loss: 0.05, Reorder: 0.05},
//		BtoA: simnet.LinkConfig{StripOptions: []simnet.OptionStrip{{Kind: 69}}},
//		Capture: true,
//	})
//	n.Transfer(t, simnet.TransferSpec{AtoB: 1 << 20, BtoA: 1 << 20})
//	if n.WireContains(secret) { t.Error("plaintext on the wire") }
//
// or, for an application-level protocol, a, b := n.MustPair(t, false)
// (or n.Listen(simnet.B, port) and n.Dial(simnet.A, addr)) give net.Conns.
// Everything is torn down by t.Cleanup.
package simnet

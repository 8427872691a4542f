package platform_darwin

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/redirect"
)

func newTestHook(t *testing.T, p core.Policy) *redirect.Hook {
	t.Helper()
	h, err := redirect.NewHook(redirect.HookConfig{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// tcpSeg builds a segment the way a kernel sends it, in a buffer with room
// for the hook's option.
func tcpSeg(t *testing.T, src, dst netip.AddrPort, seq, ack uint32, flags packet.Flags, tos uint8, payload []byte) []byte {
	t.Helper()
	var opts []byte
	if flags.Has(packet.SYN) {
		opts = macSYNOptions()
	}
	b, err := packet.AppendTCP(make([]byte, 0, 1600), packet.Segment{Src: src, Dst: dst, Seq: seq, Ack: ack,
		Flags: flags, Window: 65535, Options: opts, Payload: payload, TOS: tos, ID: uint16(seq)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// looped makes a segment look as lo0's BPF shows it (partial checksum of
// checksum offload), keeping the buffer's spare capacity.
func looped(b []byte) []byte {
	p, _ := packet.Parse(b)
	p.TCP().SetChecksum(0xbeef)
	return b
}

func enoIn(t *testing.T, pkt []byte) eno.Options {
	t.Helper()
	p, err := packet.Parse(pkt)
	if err != nil {
		t.Fatal(err)
	}
	o, err := eno.ScanOptions(p.Options())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPipelineHandshake runs a wire leg's handshake through the
// reflection path of host A against a peer B whose kernel segments pass a
// second hook (as a tcpinc host in divert or redirect mode would), and
// checks both ends agree that ENO is on.
func TestPipelineHandshake(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b netip.AddrPort
		ecn  uint8
	}{
		{"ipv4", cli4, srv4, 0},
		{"ipv6 ECN", cli6, srv6, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(5000, 0)
			ha := newTestHook(t, core.DefaultPolicy())
			hb := newTestHook(t, core.DefaultPolicy())
			r := &reflector{hook: ha, mark: DefaultMark}

			// A's kernel SYN, marked, reflected: gains ENO, loses the mark.
			syn, res, done, key := r.process(looped(tcpSeg(t, tc.a, tc.b, 1000, 0, packet.SYN, DefaultMark, nil)), now)
			if res != reflectInject || done || key != (legKey{tc.a, tc.b}) {
				t.Fatalf("SYN: res %d done %v key %v", res, done, key)
			}
			assertWire(t, syn, 0)
			if o := enoIn(t, syn); o.NumENO != 1 || len(o.ENO) < 3 {
				t.Fatalf("SYN without a SYN-form ENO option: %+v", o)
			}
			// The second copy lo0's tap may show is dropped.
			if _, res, _, _ := r.process(looped(tcpSeg(t, tc.a, tc.b, 1000, 0, packet.SYN, DefaultMark, nil)), now.Add(time.Millisecond)); res != reflectDuplicate {
				t.Fatalf("duplicate SYN: res %d", res)
			}

			// B receives it, and its kernel answers; B's hook adds ENO.
			hb.Process(bytes.Clone(syn), redirect.Inbound, now)
			synack, v := hb.Process(tcpSeg(t, tc.b, tc.a, 7000, 1001, packet.SYN|packet.ACK, 0, nil), redirect.Outbound, now)
			if v.Action != redirect.Modified {
				t.Fatalf("B's hook did not answer ENO: %+v", v)
			}
			// A snoops the SYN-ACK from the real interface.
			if _, k, ok := snoop(ha, bytes.Clone(synack), now); !ok || k != (legKey{tc.a, tc.b}) {
				t.Fatalf("snoop: %v %v", k, ok)
			}
			// A's kernel ACK and first data (Init1) carry ENO (45 02) until B
			// answers with a non-SYN segment.
			for i, s := range [][]byte{
				tcpSeg(t, tc.a, tc.b, 1001, 7001, packet.ACK, DefaultMark|tc.ecn, nil),
				tcpSeg(t, tc.a, tc.b, 1001, 7001, packet.ACK|packet.PSH, DefaultMark|tc.ecn, []byte("Init1...")),
			} {
				out, res, _, _ := r.process(looped(s), now.Add(time.Duration(i+1)*time.Second))
				if res != reflectInject {
					t.Fatalf("segment %d: res %d", i, res)
				}
				assertWire(t, out, tc.ecn)
				if o := enoIn(t, out); o.NumENO != 1 || len(o.ENO) != 2 {
					t.Fatalf("segment %d: want the non-SYN ENO option, got %+v", i, o)
				}
				hb.Process(bytes.Clone(out), redirect.Inbound, now)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			oa, err := ha.Wait(ctx, tc.a, tc.b)
			if err != nil || !oa.Enabled {
				t.Fatalf("A: %+v %v", oa, err)
			}
			ob, err := hb.Wait(ctx, tc.b, tc.a)
			if err != nil || !ob.Enabled {
				t.Fatalf("B: %+v %v", ob, err)
			}
			if !bytes.Equal(oa.Result.Transcript(), ob.Result.Transcript()) || oa.Result.Role() == ob.Result.Role() {
				t.Fatal("A and B disagree on the negotiation")
			}
			// B's first non-SYN segment, snooped: the hook is done with A's leg.
			if done, _, _ := snoop(ha, tcpSeg(t, tc.b, tc.a, 7001, 1009, packet.ACK|packet.PSH, 0, []byte("Init2")), now); !done {
				t.Error("hook not done after the peer's first non-SYN segment")
			}
		})
	}
}

// TestPipelinePlainPeer: a server without tcpinc answers without ENO; the
// leg is plain, the hook is done at the SYN-ACK (so the socket is
// unmarked at once), and the ACK is re-injected untouched but unmarked.
func TestPipelinePlainPeer(t *testing.T) {
	now := time.Unix(5000, 0)
	ha := newTestHook(t, core.DefaultPolicy())
	r := &reflector{hook: ha, mark: DefaultMark}
	if _, res, _, _ := r.process(looped(tcpSeg(t, cli4, srv4, 1000, 0, packet.SYN, DefaultMark, nil)), now); res != reflectInject {
		t.Fatal("SYN not injected")
	}
	done, _, _ := snoop(ha, tcpSeg(t, srv4, cli4, 9000, 1001, packet.SYN|packet.ACK, 0, nil), now)
	if !done {
		t.Error("hook not done after a SYN-ACK without ENO")
	}
	ack, res, _, _ := r.process(looped(tcpSeg(t, cli4, srv4, 1001, 9001, packet.ACK, DefaultMark, nil)), now)
	if res != reflectInject {
		t.Fatal("ACK not injected")
	}
	assertWire(t, ack, 0)
	if o := enoIn(t, ack); o.NumENO != 0 {
		t.Error("ENO added on a plain leg")
	}
	o, err := ha.Wait(context.Background(), cli4, srv4)
	if err != nil || o.Enabled {
		t.Fatalf("outcome %+v %v", o, err)
	}
}

// TestPipelinePolicyOff: with encryption disabled the SYN is sent as the
// kernel made it (unmarked) and the hook is done at once.
func TestPipelinePolicyOff(t *testing.T) {
	ha := newTestHook(t, core.Policy{})
	r := &reflector{hook: ha, mark: DefaultMark}
	out, res, done, _ := r.process(looped(tcpSeg(t, cli4, srv4, 1000, 0, packet.SYN, DefaultMark, nil)), time.Unix(1, 0))
	if res != reflectInject || !done {
		t.Fatalf("res %d done %v", res, done)
	}
	assertWire(t, out, 0)
	if enoIn(t, out).NumENO != 0 {
		t.Error("ENO offered with the policy off")
	}
}

func TestPipelineRejects(t *testing.T) {
	r := &reflector{hook: newTestHook(t, core.DefaultPolicy()), mark: DefaultMark}
	unmarked := tcpSeg(t, cli4, srv4, 1000, 0, packet.SYN, 0, nil)
	if _, res, _, _ := r.process(unmarked, time.Unix(1, 0)); res != reflectBad {
		t.Error("unmarked segment reflected")
	}
	if _, res, _, _ := r.process([]byte{0x45, 0, 0}, time.Unix(1, 0)); res != reflectBad {
		t.Error("garbage reflected")
	}
	if _, _, ok := snoop(r.hook, []byte{0x60}, time.Unix(1, 0)); ok {
		t.Error("garbage snooped")
	}
}

// assertWire checks a packet is ready for the wire: parses, checksums
// valid, mark gone, the ECN bits kept.
func assertWire(t *testing.T, b []byte, ecn uint8) {
	t.Helper()
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.TCP().Checksum() != p.TCPChecksum() {
		t.Error("TCP checksum not valid")
	}
	if ip := p.IPv4(); ip != nil {
		if !ip.VerifyChecksum() || ip.TOS() != ecn {
			t.Errorf("IPv4 header checksum %v, TOS %#x", ip.VerifyChecksum(), ip.TOS())
		}
	} else if tcls := p.IPv6().TrafficClass(); tcls != ecn {
		t.Errorf("traffic class %#x", tcls)
	}
}

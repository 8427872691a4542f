package platform_windows

import (
	"net/netip"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core"
)

func TestConfigDefaults(t *testing.T) {
	c, err := (&Config{}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Workers != 1 || c.QueueLength != 8192 || c.QueueTime != 2*time.Second || c.QueueSize != 8<<20 ||
		c.BatchBytes != 512<<10 || c.Engine.Cache == nil || c.Log == nil {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []Config{
		{Workers: -1}, {Workers: MaxWorkers + 1}, {Priority: 30001}, {Priority: -30001},
		{Policy: core.Policy{ExcludeAddrs: []netip.Prefix{{}}}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// TestQueueParams: the values handed to WinDivertSetParam stay inside
// the driver's documented ranges.
func TestQueueParams(t *testing.T) {
	for _, c := range []struct {
		in   Config
		want [3]uint64
	}{
		{Config{QueueLength: 8192, QueueTime: 2 * time.Second, QueueSize: 8 << 20}, [3]uint64{8192, 2000, 8 << 20}},
		{Config{QueueLength: 1, QueueTime: time.Millisecond, QueueSize: 1}, [3]uint64{32, 100, 65535}},
		{Config{QueueLength: 1 << 20, QueueTime: time.Hour, QueueSize: 1 << 40}, [3]uint64{16384, 16000, 32 << 20}},
	} {
		ps := c.in.queueParams()
		for i, want := range c.want {
			if ps[i].v != want || ps[i].p != Param(i) {
				t.Errorf("%+v: param %d = %d, want %d", c.in, ps[i].p, ps[i].v, want)
			}
		}
	}
}

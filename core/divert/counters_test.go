package divert

import "testing"

func TestCountersAdd(t *testing.T) {
	var sum Counters
	a := Counters{ConnsEncrypted: 2, Injected: 1}
	a.Packets[Inbound] = 3
	a.PlainReasons[1] = 4
	sum.Add(a)
	sum.Add(a)
	if sum.ConnsEncrypted != 4 || sum.Injected != 2 || sum.Packets[Inbound] != 6 || sum.PlainReasons[1] != 8 || sum.Packets[Outbound] != 0 {
		t.Fatalf("sum = %+v", sum)
	}
}

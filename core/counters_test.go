package core_test

import (
	"strings"
	"testing"

	. "tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/eno"
)

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"ConnsTableFull":      "conns_table_full",
		"RecvENOBUFS":         "recv_enobufs",
		"AbortFINWithoutFINp": "abort_fin_without_finp",
		"DropForgedRST":       "drop_forged_rst",
		"Packets":             "packets",
		"SessionIDs":          "session_ids",
		"HTTPServer":          "http_server",
		"Injected0":           "injected0",
		"inbound":             "inbound",
		"no-common-tep":       "no_common_tep",
	} {
		if got := SnakeCase(in); got != want {
			t.Errorf("SnakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFlatten(t *testing.T) {
	type inner struct {
		Packets     [2]uint64
		ConnsPlain  uint64
		unexported  uint64
		Name        string
		Delta       int
		Negative    int
		DropUnknown uint32
	}
	type outer struct {
		Engine   inner
		Queued   uint64
		Injected [2]uint64
	}
	v := outer{Engine: inner{Packets: [2]uint64{1, 2}, ConnsPlain: 3, unexported: 9, Name: "x", Delta: 4, Negative: -1, DropUnknown: 5},
		Queued: 6, Injected: [2]uint64{7, 8}}
	names := func(path string, i int) string {
		if path == "engine_packets" {
			return []string{"Outbound", "Inbound"}[i]
		}
		return ""
	}
	got := Flatten(&v, names)
	want := map[string]uint64{
		"engine_packets_outbound": 1, "engine_packets_inbound": 2, "engine_conns_plain": 3,
		"engine_delta": 4, "engine_drop_unknown": 5, "queued": 6, "injected_0": 7, "injected_1": 8,
	}
	if len(got) != len(want) {
		t.Errorf("Flatten = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("Flatten[%q] = %d, want %d", k, got[k], w)
		}
	}
}

func TestFlattenDivertCounters(t *testing.T) {
	// Every engine counter gets a distinct, stable name.
	var c divert.Counters
	c.ConnsEncrypted = 1
	c.PlainReasons[eno.Reason(1)] = 2
	got := Flatten(c, nil)
	if got["conns_encrypted"] != 1 {
		t.Errorf("conns_encrypted = %d", got["conns_encrypted"])
	}
	if got["plain_reasons_1"] != 2 {
		t.Errorf("plain_reasons_1 = %d (map %v)", got["plain_reasons_1"], got)
	}
	for k := range got {
		if k != SnakeCase(k) || strings.Contains(k, "__") {
			t.Errorf("counter name %q is not snake_case", k)
		}
	}
}

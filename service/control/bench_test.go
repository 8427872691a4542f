package control

import (
	"net/netip"
	"testing"
)

// BenchmarkLookupRoundTrip measures one lookup request and reply over
// the Unix socket (what tcpincapi.QueryConn costs after Dial).
func BenchmarkLookupRoundTrip(b *testing.B) {
	on := true
	path := serveAs(b, &fullHandler{enabled: &on}, Peer{UID: 0, Admin: true}, access{adminGID: -1})
	cl, err := Dial(path)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	l, r := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:80")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cl.Lookup(l, r); err != nil {
			b.Fatal(err)
		}
	}
}

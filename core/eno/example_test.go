package eno_test

import (
	"fmt"

	"tcpinc.dev/tcpinc/core/eno"
)

// Two packet engines, one per host, drive a Tracker per connection. The
// bytes Send appends go into the outgoing segment's TCP options.
func ExampleTracker() {
	cfgA := &eno.Config{TEPs: []eno.TEP{eno.TEPTcpcryptP256, eno.TEPTcpcryptCurve25519}}
	cfgB := &eno.Config{TEPs: []eno.TEP{eno.TEPTcpcryptCurve25519}}
	a, b := eno.NewTracker(cfgA), eno.NewTracker(cfgB)

	syn, _ := a.Send(nil, eno.Segment{SYN: true})
	b.Recv(eno.Segment{SYN: true, Options: syn})
	synAck, _ := b.Send(nil, eno.Segment{SYN: true, ACK: true})
	a.Recv(eno.Segment{SYN: true, ACK: true, Options: synAck})
	ack, evA := a.Send(nil, eno.Segment{ACK: true})
	vB := b.Recv(eno.Segment{ACK: true, Options: ack})

	res, _ := a.Result()
	fmt.Printf("SYN % x\nSYN-ACK % x\nACK % x\n", syn, synAck, ack)
	fmt.Println("A:", evA, "B:", vB.Event)
	fmt.Printf("A is %v, TEP %v, transcript %x\n", res.Role(), res.TEP(), res.Transcript())
	_, err := a.SessionID(nil)
	fmt.Println("session ID before the TEP sets it:", err)
	// Output:
	// SYN 45 04 21 23
	// SYN-ACK 45 04 01 23
	// ACK 45 02
	// A: enabled B: enabled
	// A is A, TEP TCPCRYPT_ECDHE_Curve25519, transcript 4504212345040123
	// session ID before the TEP sets it: eno: not negotiated yet
}

func ExampleSuboptions() {
	// 90 a3 <17 bytes> 21: a resumption suboption that is not last.
	contents := []byte{0x90, 0xa3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 0x21}
	it := eno.Suboptions(contents)
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		fmt.Printf("%#02x TEP %v v=%v data %d bytes\n", s.Byte, s.TEP(), s.V(), len(s.Data))
	}
	fmt.Println("err:", it.Err())
	// Output:
	// 0xa3 TEP TCPCRYPT_ECDHE_Curve25519 v=true data 17 bytes
	// 0x21 TEP TCPCRYPT_ECDHE_P256 v=false data 0 bytes
	// err: <nil>
}

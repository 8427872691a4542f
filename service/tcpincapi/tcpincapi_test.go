package tcpincapi

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/control/controltest"
)

// fake answers lookups for one encrypted connection (enc), one being
// negotiated, and nothing else.
type fake struct {
	mu   sync.Mutex
	enc  control.LookupParams
	asks []control.LookupParams
}

func (f *fake) Status() (control.StatusReply, error) { return control.StatusReply{}, nil }
func (f *fake) Conns() ([]control.ConnJSON, error)   { return nil, nil }
func (f *fake) Lookup(p control.LookupParams) (control.LookupReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asks = append(f.asks, p)
	r := control.LookupReply{Local: p.Local, Remote: p.Remote, Tracked: true}
	switch {
	case p == f.enc:
		r.State, r.ENOEnabled, r.SessionID, r.Role, r.RoleBit = "encrypted", true, "2301020304", "B", 1
		r.NegTEP, r.TEP, r.SelfGOpt, r.PeerGOpt = 0x23, "TCPCRYPT_ECDHE_Curve25519", 1, 0
		r.SelfName, r.PeerName, r.AEAD, r.AEADID, r.Mode = "012301020304", "002301020304", "AEAD_AES_128_GCM", 1, "divert"
	case p.Remote == "192.0.2.1:1":
		r.State, r.Errno, r.Reason = "negotiating", control.ErrnoNotConn, "still negotiating"
	default:
		r.Tracked, r.State, r.Errno, r.Reason = false, "untracked", control.ErrnoInval, "not tracked"
	}
	return r, nil
}

func serve(t *testing.T, h control.Handler) string {
	path := controltest.SockPath(t)
	controltest.Serve(t, path, h)
	return path
}

func TestQueryConnAndRawConn(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := &fake{enc: control.LookupParams{Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()}}
	cl := &Client{Socket: serve(t, f)}

	info, err := cl.QueryConn(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.SessionID, []byte{0x23, 1, 2, 3, 4}) || info.Role != RoleB || info.NegTEP != 0x23 || info.SelfGOpt != 1 ||
		!bytes.Equal(info.SelfName, []byte{1, 0x23, 1, 2, 3, 4}) || !bytes.Equal(info.PeerName, []byte{0, 0x23, 1, 2, 3, 4}) ||
		info.AEADID != 1 || info.Mode != "divert" || info.Local.String() != f.enc.Local {
		t.Errorf("info %+v", info)
	}

	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	info2, err := cl.QueryRawConn(rc)
	if err != nil || !bytes.Equal(info2.SessionID, info.SessionID) {
		t.Errorf("QueryRawConn: %+v %v", info2, err)
	}
}

func TestErrnos(t *testing.T) {
	cl := &Client{Socket: serve(t, &fake{})}
	local := netip.MustParseAddrPort("192.0.2.9:5")
	_, err := cl.Query(local, netip.MustParseAddrPort("192.0.2.1:1"))
	var e *Error
	if !errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.EINVAL) || !errors.As(err, &e) || e.State != "negotiating" {
		t.Errorf("negotiating: %v", err)
	}
	_, err = cl.Query(local, netip.MustParseAddrPort("192.0.2.2:2"))
	if !errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("untracked: %v", err)
	}
	// IPv4-mapped addresses are asked as IPv4.
	f := &fake{}
	cl = &Client{Socket: serve(t, f)}
	cl.Query(netip.MustParseAddrPort("[::ffff:192.0.2.9]:5"), netip.MustParseAddrPort("192.0.2.2:2"))
	if len(f.asks) != 1 || f.asks[0].Local != "192.0.2.9:5" {
		t.Errorf("asked %+v", f.asks)
	}
	// No daemon.
	cl = &Client{Socket: filepath.Join(t.TempDir(), "none.sock")}
	var ue *control.UnreachableError
	if _, err := cl.Query(local, local); !errors.As(err, &ue) {
		t.Errorf("no daemon: %v", err)
	}
}

package control

import (
	"encoding/json"
	"log/slog"
	"testing"
)

// FuzzHandle feeds arbitrary request lines to the server: it never
// panics, always answers in the envelope, and never lets an
// unprivileged caller change state.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"method":"status"}`,
		`{"v":1,"method":"lookup","params":{"local":"10.0.0.1:1","remote":"[fd00::1]:2"}}`,
		`{"v":1,"method":"disable"}`,
		`{"v":1,"method":"reload","params":null}`,
		`{"v":2,"method":"conns"}`,
		`{"v":1,"method":"lookup","params":"x"}`,
		`[]`,
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, line []byte, admin bool) {
		on := true
		h := &fullHandler{enabled: &on}
		s := &session{h: h, acc: &access{adminGID: -1}, peer: Peer{UID: 1000, Admin: admin}, log: slog.New(slog.DiscardHandler), stats: &stats{}}
		resp := s.handle(line)
		if resp.V != ProtocolVersion {
			t.Fatalf("response version %d", resp.V)
		}
		if resp.OK == (resp.Error != "") {
			t.Fatalf("ok %v with error %q", resp.OK, resp.Error)
		}
		if resp.OK && !json.Valid(resp.Result) {
			t.Fatalf("invalid result %q", resp.Result)
		}
		if !admin && (!on || h.reloaded != 0) {
			t.Fatal("an unprivileged caller changed state")
		}
	})
}

package main

import (
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/service/control"
)

// A tcpincd that runs without capture says why on the state line.
func TestWriteStatusCaptureUnavailable(t *testing.T) {
	var b strings.Builder
	writeStatus(&b, &control.StatusReply{Version: "1", Mode: "auto", CaptureError: "starting the auto capture backend: WinDivert has no signed arm64 driver"})
	if !strings.Contains(b.String(), "state:       capture unavailable: starting the auto capture backend: WinDivert has no signed arm64 driver\n") {
		t.Errorf("status:\n%s", b.String())
	}
	b.Reset()
	writeStatus(&b, &control.StatusReply{Version: "1", Running: true, CaptureError: ""})
	if strings.Contains(b.String(), "unavailable") || !strings.Contains(b.String(), "state:       running") {
		t.Errorf("status:\n%s", b.String())
	}
}

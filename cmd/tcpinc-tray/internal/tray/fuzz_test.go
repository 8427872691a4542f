package tray

import (
	"errors"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzCompute: whatever text tcpincd or the system returns in an error
// or as the reason it cannot capture, and whatever counts, the view stays
// within its limits: a tooltip that Windows can hold, notice lines no
// wider than NoticeWidth, valid UTF-8 wherever the input was; and a
// daemon that cannot capture is never shown as off, on or encrypted.
func FuzzCompute(f *testing.F) {
	f.Add("tcpincd: permission denied: enable and disable change tcpincd's state; run as root or as a member of group tcpinc", "", "", 3, 5, true, true)
	f.Add("", "Could not open a terminal: no terminal emulator found", "", 0, 0, false, true)
	f.Add("connecting to tcpincd at C:\\ProgramData\\tcpinc\\tcpincd.sock: winapi error #10047", "", "", -1, 1<<30, true, false)
	f.Add("", "", "starting the auto capture backend: WinDivert has no signed arm64 driver", 0, 0, false, false)
	f.Fuzz(func(t *testing.T, errText, notice, captureErr string, enc, plain int, enabled, running bool) {
		var err error
		if errText != "" {
			err = errors.New(errText)
		}
		st := Status{Enabled: enabled, Running: running, Encrypted: enc, Plain: plain, Conns: enc + plain, CaptureError: captureErr}
		v := Compute(st, err, notice, "/run/tcpinc/tcpincd.sock")
		if n := len(utf16.Encode([]rune(v.Tooltip))); n > MaxTooltip {
			t.Fatalf("tooltip of %d UTF-16 units", n)
		}
		for i, l := range v.NoticeLines {
			if n := utf8.RuneCountInString(l); n > NoticeWidth {
				t.Fatalf("notice line %d has %d runes", i, n)
			}
		}
		if v.Icon != v.State.Icon() {
			t.Fatalf("icon %v for state %v", v.Icon, v.State)
		}
		if err != nil && (v.State != StateError || v.ToggleEnabled) {
			t.Fatalf("error view in state %v, toggle enabled %v", v.State, v.ToggleEnabled)
		}
		if captureErr != "" && v.State != StateError {
			t.Fatalf("capture error %q shown in state %v", captureErr, v.State)
		}
		valid := utf8.ValidString(errText) && utf8.ValidString(notice) && utf8.ValidString(captureErr)
		if valid && (!utf8.ValidString(v.Tooltip) || !utf8.ValidString(v.Notice)) {
			t.Fatalf("invalid UTF-8 from valid input: %q / %q", v.Tooltip, v.Notice)
		}
	})
}

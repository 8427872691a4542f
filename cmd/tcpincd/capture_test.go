package main

import (
	"strings"
	"testing"
)

func TestWindowsCaptureUnsupported(t *testing.T) {
	if err := windowsCaptureUnsupported("amd64"); err != nil {
		t.Errorf("amd64: %v", err)
	}
	err := windowsCaptureUnsupported("arm64")
	if err == nil || !strings.Contains(err.Error(), "WinDivert has no signed arm64 driver") {
		t.Errorf("arm64: %v, want the reason docs/windows-msi.md promises", err)
	}
}

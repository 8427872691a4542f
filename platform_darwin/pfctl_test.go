package platform_darwin

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/core"
)

// fakePF returns a pf driver wired to testdata/fakepfctl with a fresh
// state directory holding Apple's default main ruleset.
func fakePF(t *testing.T) (*pf, string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake pfctl is a POSIX shell script")
	}
	dir := t.TempDir()
	fake, err := filepath.Abs(filepath.Join("testdata", "fakepfctl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKEPF_DIR", dir)
	write(t, filepath.Join(dir, "main.nat"), appleNAT)
	write(t, filepath.Join(dir, "main.rules"), appleFilter)
	return &pf{path: fake, log: slog.New(slog.DiscardHandler), tokenPath: filepath.Join(dir, "run", "pf.token")}, dir
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// start does what Backend.New does with pf.
func start(t *testing.T, p *pf, text string) {
	t.Helper()
	p.recoverStale()
	if err := p.enable(); err != nil {
		t.Fatal(err)
	}
	if err := p.loadAnchor(text); err != nil {
		t.Fatal(err)
	}
	if err := p.hook(); err != nil {
		t.Fatal(err)
	}
}

// stop does what Backend.Close does with pf.
func stop(t *testing.T, p *pf) {
	t.Helper()
	p.flushAnchor()
	if err := p.unhook(); err != nil {
		t.Fatal(err)
	}
	if err := p.release(); err != nil {
		t.Fatal(err)
	}
}

func TestPFStartStop(t *testing.T) {
	p, dir := fakePF(t)
	text := Rules{ProxyPort: 7391, Group: DefaultGroup, Mark: DefaultMark, Policy: core.DefaultPolicy()}.AnchorText()
	start(t, p, text)

	if tok := strings.TrimSpace(read(t, p.tokenPath)); tok == "" || !strings.Contains(read(t, filepath.Join(dir, "tokens")), tok) {
		t.Fatalf("reference token not saved: %q", tok)
	}
	if read(t, filepath.Join(dir, "anchor-tcpinc.rules")) != text {
		t.Error("anchor not loaded")
	}
	wantNAT, wantRules := HookMain(appleNAT, appleFilter)
	if read(t, filepath.Join(dir, "main.nat")) != wantNAT || read(t, filepath.Join(dir, "main.rules")) != wantRules {
		t.Error("main ruleset not hooked")
	}

	stop(t, p)
	if read(t, filepath.Join(dir, "main.nat")) != appleNAT || read(t, filepath.Join(dir, "main.rules")) != appleFilter {
		t.Errorf("main ruleset not restored:\n%s%s", read(t, filepath.Join(dir, "main.nat")), read(t, filepath.Join(dir, "main.rules")))
	}
	if read(t, filepath.Join(dir, "anchor-tcpinc.rules")) != "" || read(t, filepath.Join(dir, "anchor-tcpinc.nat")) != "" {
		t.Error("anchor not flushed")
	}
	if strings.TrimSpace(read(t, filepath.Join(dir, "tokens"))) != "" {
		t.Error("reference token not released")
	}
	if _, err := os.Stat(p.tokenPath); !errors.Is(err, os.ErrNotExist) {
		t.Error("token file left behind")
	}
	// Never a flush of everything or of states (they ignore -a).
	for l := range strings.Lines(read(t, filepath.Join(dir, "calls"))) {
		if strings.Contains(l, "-F all") || strings.Contains(l, "-F states") || strings.Contains(l, "-F info") {
			t.Errorf("dangerous flush: %s", l)
		}
	}
}

// TestPFCrashRecovery: a run dies without stopping; the next start gives
// the dead run's token back, replaces the anchor and does not hook twice.
func TestPFCrashRecovery(t *testing.T) {
	p, dir := fakePF(t)
	start(t, p, "# first run\n")
	oldTok := strings.TrimSpace(read(t, p.tokenPath))

	p2 := &pf{path: p.path, log: p.log, tokenPath: p.tokenPath}
	start(t, p2, "# second run\n")
	toks := strings.Fields(read(t, filepath.Join(dir, "tokens")))
	if len(toks) != 1 || toks[0] == oldTok {
		t.Errorf("tokens after recovery %v (old %s): the crashed run's reference is not released", toks, oldTok)
	}
	if read(t, filepath.Join(dir, "anchor-tcpinc.rules")) != "# second run\n" {
		t.Error("anchor not replaced")
	}
	wantNAT, wantRules := HookMain(appleNAT, appleFilter)
	if read(t, filepath.Join(dir, "main.nat")) != wantNAT || read(t, filepath.Join(dir, "main.rules")) != wantRules {
		t.Errorf("main ruleset hooked twice or lost:\n%s%s", read(t, filepath.Join(dir, "main.nat")), read(t, filepath.Join(dir, "main.rules")))
	}
	stop(t, p2)
	if read(t, filepath.Join(dir, "main.nat")) != appleNAT {
		t.Error("not restored after recovery")
	}
	// A token file whose token died with a reboot is dropped quietly.
	write(t, p2.tokenPath, "999999\n")
	p2.recoverStale()
	if _, err := os.Stat(p2.tokenPath); !errors.Is(err, os.ErrNotExist) {
		t.Error("stale token file kept")
	}
}

// TestPFErrors: a failing filter load leaves the main ruleset as it was
// (the translation rules already loaded are put back) and the error says
// what to do.
func TestPFErrors(t *testing.T) {
	p, dir := fakePF(t)
	t.Setenv("FAKEPF_FAIL", "-R -f -")
	t.Setenv("FAKEPF_ERR", "pfctl: DIOCXBEGIN: Device busy")
	err := p.hook()
	var pe *errPF
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "another program is changing pf") {
		t.Fatalf("error %v", err)
	}
	if read(t, filepath.Join(dir, "main.nat")) != appleNAT || read(t, filepath.Join(dir, "main.rules")) != appleFilter {
		t.Error("main ruleset left half changed")
	}

	t.Setenv("FAKEPF_FAIL", "-E")
	t.Setenv("FAKEPF_ERR", "pfctl: /dev/pf: Permission denied")
	if err := p.enable(); err == nil || !strings.Contains(err.Error(), "must run as root") {
		t.Errorf("enable as non-root: %v", err)
	}
	t.Setenv("FAKEPF_ERR", "pfctl: DIOCSTARTREF: Operation not permitted")
	if err := p.enable(); err == nil || !strings.Contains(err.Error(), "System Integrity Protection") {
		t.Errorf("enable under a restriction: %v", err)
	}
	t.Setenv("FAKEPF_FAIL", "-a tcpinc -f -")
	t.Setenv("FAKEPF_ERR", "stdin:7: syntax error")
	if err := p.loadAnchor("bad"); err == nil || !strings.Contains(err.Error(), "sw_vers") {
		t.Errorf("syntax error: %v", err)
	}
}

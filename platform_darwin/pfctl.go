package platform_darwin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// pfctlPath is Apple's pfctl. The service drives pf through it rather
// than through DIOCADDRULE: struct pf_rule is large, private and changes
// between macOS releases, while pfctl's language is stable and is what
// the user sees with pfctl -a tcpinc -s rules.
const pfctlPath = "/sbin/pfctl"

// pfctlTimeout bounds one pfctl run; pfctl only ever waits for the pf
// lock, so a hang means another program holds it.
const pfctlTimeout = 15 * time.Second

// pf manages the service's footprint in pf: the reference token that
// keeps pf enabled, the anchor, and the two hook lines in the main
// ruleset.
//
// It only runs pfctl, so it is OS-neutral code: the tests drive it with a
// fake pfctl (testdata/fakepfctl) on any OS.
type pf struct {
	path      string // pfctl; "" means pfctlPath
	log       *slog.Logger
	tokenPath string // the reference token of the running service, for the next start after a crash
	token     string
}

// errPF wraps every failure to change pf with what the user can do.
type errPF struct {
	op     string
	stderr string
	err    error
}

func (e *errPF) Error() string {
	msg := strings.TrimSpace(e.stderr)
	hint := pfHint(msg)
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("tcpinc: pf: %s: %s%s", e.op, msg, hint)
}

func (e *errPF) Unwrap() error { return e.err }

// pfHint turns pfctl's complaints into what to do about them.
func pfHint(stderr string) string {
	s := strings.ToLower(stderr)
	switch {
	case strings.Contains(s, "permission denied"):
		return " (tcpincd must run as root: sudo tcpincd run, or install the launchd daemon)"
	case strings.Contains(s, "operation not permitted"):
		return " (pf refused a change as root: System Integrity Protection, a configuration profile or a security product restricts pf on this Mac; see docs/macos.md)"
	case strings.Contains(s, "device busy") || strings.Contains(s, "resource busy"):
		return " (another program is changing pf at the same time, or owns it exclusively; stop it or retry)"
	case strings.Contains(s, "syntax error"):
		return " (this pfctl does not accept tcpinc's rules; report it with the output of sw_vers)"
	}
	return ""
}

// run runs pfctl with args and stdin, returning stdout and stderr.
func (p *pf) run(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pfctlTimeout)
	defer cancel()
	path := p.path
	if path == "" {
		path = pfctlPath
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	p.log.Debug("pfctl", "args", strings.Join(args, " "), "err", err, "stderr", strings.TrimSpace(errb.String()))
	if err != nil {
		return out.String(), errb.String(), &errPF{op: "pfctl " + strings.Join(args, " "), stderr: errb.String(), err: err}
	}
	return out.String(), errb.String(), nil
}

// tokenRE finds the reference token pfctl -E prints ("Token : 1234").
var tokenRE = regexp.MustCompile(`(?m)^Token\s*:\s*([0-9]+)\s*$`)

// enable takes a reference on pf (pfctl -E): pf stays enabled while any
// holder has one, so the service neither turns off a pf someone else
// uses nor depends on pf.conf enabling it.
func (p *pf) enable() error {
	out, errOut, err := p.run("", "-E")
	if err != nil {
		return err
	}
	m := tokenRE.FindStringSubmatch(errOut + "\n" + out)
	if m == nil {
		return &errPF{op: "pfctl -E", stderr: "no reference token in pfctl's output: " + strings.TrimSpace(errOut+out), err: errors.New("no token")}
	}
	p.token = m[1]
	if err := os.MkdirAll(filepath.Dir(p.tokenPath), 0o755); err != nil {
		return fmt.Errorf("tcpinc: pf: saving the reference token: %w", err)
	}
	if err := os.WriteFile(p.tokenPath, []byte(p.token+"\n"), 0o600); err != nil {
		return fmt.Errorf("tcpinc: pf: saving the reference token: %w", err)
	}
	return nil
}

// release gives the reference back (pfctl -X); pf turns off only if no
// one else holds one.
func (p *pf) release() error {
	if p.token == "" {
		return nil
	}
	_, _, err := p.run("", "-X", p.token)
	p.token = ""
	_ = os.Remove(p.tokenPath)
	return err
}

// recoverStale undoes what a crashed run left: its reference token and
// its anchor's rules. The hooks stay (they are re-inserted idempotently).
func (p *pf) recoverStale() {
	if b, err := os.ReadFile(p.tokenPath); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			if _, _, err := p.run("", "-X", tok); err != nil {
				// The token died with the process or a reboot: normal.
				p.log.Debug("pf: releasing a stale reference token", "err", err)
			} else {
				p.log.Info("pf: released the reference token of a previous run that did not stop cleanly")
			}
		}
		_ = os.Remove(p.tokenPath)
	}
	p.flushAnchor()
}

// loadAnchor replaces the anchor's tables, translation and filter rules
// in one pfctl transaction.
func (p *pf) loadAnchor(text string) error {
	_, _, err := p.run(text, "-a", AnchorName, "-f", "-")
	return err
}

// flushAnchor empties the anchor: rules, translation rules and tables.
// Never "-F all" or "-F states": pfctl ignores -a for states and would
// drop every connection of the host.
func (p *pf) flushAnchor() {
	for _, what := range []string{"rules", "nat", "Tables"} {
		if _, _, err := p.run("", "-a", AnchorName, "-F", what); err != nil {
			p.log.Debug("pf: flushing the anchor", "what", what, "err", err)
		}
	}
}

// mainRules reads the main ruleset's translation and filter rules.
func (p *pf) mainRules() (nat, filter string, err error) {
	if nat, _, err = p.run("", "-s", "nat"); err != nil {
		return "", "", err
	}
	if filter, _, err = p.run("", "-s", "rules"); err != nil {
		return "", "", err
	}
	return nat, filter, nil
}

// hook inserts the anchor calls into the main ruleset, changing nothing
// else (see HookMain), and checks the result.
func (p *pf) hook() error {
	nat, filter, err := p.mainRules()
	if err != nil {
		return err
	}
	if Hooked(nat, filter) && strings.HasPrefix(nat, natHook) {
		return nil
	}
	if others := foreignAnchors(nat + filter); len(others) > 0 {
		p.log.Info("pf: other products have rules in pf; tcpinc's anchor is evaluated before them", "anchors", strings.Join(others, ", "))
	}
	hn, hf := HookMain(nat, filter)
	if err := p.loadMain(hn, hf, nat); err != nil {
		return err
	}
	nat2, filter2, err := p.mainRules()
	if err != nil {
		return err
	}
	if !Hooked(nat2, filter2) {
		return &errPF{op: "hooking the anchor into the main ruleset", stderr: "the hook lines did not appear in pfctl -s nat / -s rules", err: errors.New("hook missing")}
	}
	if u1, u2 := UnhookMain(nat2, filter2); u1 != nat || u2 != filter {
		p.log.Warn("pf: the main ruleset changed beyond tcpinc's two hook lines while loading; check pfctl -s nat and pfctl -s rules",
			"before_nat", nat, "before_rules", filter, "after_nat", nat2, "after_rules", filter2)
	}
	return nil
}

// unhook removes the anchor calls, leaving the rest of the main ruleset.
func (p *pf) unhook() error {
	nat, filter, err := p.mainRules()
	if err != nil {
		return err
	}
	if !strings.Contains(nat+filter, `"`+AnchorName+`"`) {
		return nil
	}
	un, uf := UnhookMain(nat, filter)
	return p.loadMain(un, uf, nat)
}

// loadMain loads the main ruleset's translation rules (-N) and filter
// rules (-R, scrub included) from text, leaving options, other anchors'
// contents and states alone. Each pfctl run is one pf transaction; if the
// second fails, the first is undone with oldNAT, so the main ruleset is
// never left half changed.
func (p *pf) loadMain(nat, filter, oldNAT string) error {
	if _, _, err := p.run(nat, "-N", "-f", "-"); err != nil {
		return err
	}
	_, _, err := p.run(filter, "-R", "-f", "-")
	if err != nil && nat != oldNAT {
		if _, _, rerr := p.run(oldNAT, "-N", "-f", "-"); rerr != nil {
			return errors.Join(err, fmt.Errorf("restoring the translation rules: %w", rerr))
		}
	}
	return err
}

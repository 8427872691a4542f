//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Modes are the capture modes every case runs in.
var modes = []string{"divert", "redirect"}

// env is prepared once, by the first test that needs it.
var env struct {
	once sync.Once
	skip string // why every test skips (not root, no namespaces)
	err  error  // why every test fails (the build failed)
	root string // the module's directory
	dir  string // temporary directory holding the binaries

	tcpincd, tcpinc, load string
	// unavailable says why a mode cannot be tested ("" when it can).
	unavailable map[string]string
	// noSSH says why the ssh case cannot run ("" when it can).
	noSSH string
	// config is an empty configuration file, given to tcpincd with
	// --config when it has that flag, so that a configuration installed
	// on the machine cannot change what the tests see ("" otherwise).
	config string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env.dir != "" {
		os.RemoveAll(env.dir)
	}
	os.Exit(code)
}

// setup skips the test when the machine cannot run it and returns once
// the binaries are built.
func setup(t *testing.T) {
	t.Helper()
	env.once.Do(prepare)
	if env.skip != "" {
		t.Skip(env.skip)
	}
	if env.err != nil {
		t.Fatal(env.err)
	}
}

// requireMode skips the test when tcpincd cannot run in mode.
func requireMode(t *testing.T, mode string) {
	t.Helper()
	if r := env.unavailable[mode]; r != "" {
		t.Skip(r)
	}
}

func prepare() {
	if testing.Short() {
		env.skip = "end-to-end tests skipped in -short mode"
		return
	}
	if os.Geteuid() != 0 {
		env.skip = "needs root: the end-to-end tests create network namespaces and run tcpincd in them (run make test as root)"
		return
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		env.skip = "needs network namespaces (CONFIG_NET_NS)"
		return
	}
	root, err := moduleRoot()
	if err != nil {
		env.err = err
		return
	}
	env.root = root
	removeStaleNamespaces()

	// Install what is missing (Debian packages, as root). The ssh case
	// runs only where OpenSSH installs.
	deps := filepath.Join(root, "scripts", "deps.sh")
	if out, err := exec.Command(deps, "ip:iproute2", "ss:iproute2", "nft:nftables", "tcpdump:tcpdump",
		"curl:curl", "python3:python3", "iperf3:iperf3", "iptables:iptables").CombinedOutput(); err != nil {
		env.err = fmt.Errorf("installing the test programs with scripts/deps.sh: %v\n%s", err, out)
		return
	}
	if out, err := exec.Command(deps, "/usr/sbin/sshd:openssh-server", "ssh:openssh-client", "ssh-keygen:openssh-client", "scp:openssh-client").CombinedOutput(); err != nil {
		env.noSSH = fmt.Sprintf("OpenSSH is not installable here: %v: %s", err, bytes.TrimSpace(out))
	}

	env.dir, err = os.MkdirTemp("", "tcie-bin-")
	if err != nil {
		env.err = err
		return
	}
	if err := buildBinaries(root, env.dir); err != nil {
		env.err = err
		return
	}
	env.tcpincd = filepath.Join(env.dir, "tcpincd")
	env.tcpinc = filepath.Join(env.dir, "tcpinc")
	env.load = filepath.Join(env.dir, "tcpinc-load")
	env.unavailable = detectModes(env.tcpincd)
	if help, _ := exec.Command(env.tcpincd, "run", "--help").CombinedOutput(); bytes.Contains(help, []byte("--config")) {
		env.config = filepath.Join(env.dir, "empty.toml")
		if err := os.WriteFile(env.config, nil, 0o644); err != nil {
			env.err = err
		}
	}
}

// buildBinaries builds tcpincd, tcpinc and tcpinc-load from this tree
// into dir. TCPINC_E2E_BIN names a directory whose tcpincd and tcpinc
// are used instead (to test other builds, such as installed ones).
func buildBinaries(root, dir string) error {
	pkgs := []string{"./cmd/tcpincd", "./cmd/tcpinc", "./tests/e2e/cmd/tcpinc-load"}
	if other := os.Getenv("TCPINC_E2E_BIN"); other != "" {
		for _, name := range []string{"tcpincd", "tcpinc"} {
			if err := os.Symlink(filepath.Join(other, name), filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("TCPINC_E2E_BIN: %w", err)
			}
		}
		pkgs = pkgs[2:]
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, serr := os.Stat(goBin); serr != nil {
			goBin = "/usr/local/go/bin/go"
		}
	}
	build := exec.Command(goBin, append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// detectModes asks the built tcpincd which capture modes it offers: the
// --mode line of 'tcpincd run --help' names them.
func detectModes(tcpincd string) map[string]string {
	out, _ := exec.Command(tcpincd, "run", "--help").CombinedOutput()
	var line string
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--mode") {
			line = l
		}
	}
	un := make(map[string]string)
	for _, m := range modes {
		switch {
		case line == "":
			un[m] = "tcpincd run --help lists no --mode flag"
		case !strings.Contains(line, m):
			un[m] = fmt.Sprintf("tcpincd has no %s mode yet (tcpincd run --help: %q)", m, strings.TrimSpace(line))
		case strings.Contains(line, m+" is not implemented"):
			un[m] = fmt.Sprintf("%s mode is not implemented in tcpincd yet (tcpincd run --help: %q)", m, strings.TrimSpace(line))
		}
	}
	return un
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

// removeStaleNamespaces deletes the tcie-*-<pid> namespaces of earlier
// runs whose process is gone (a run killed before its cleanup), and ends
// the processes still inside them (daemons and servers of that run).
func removeStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for l := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "tcie-") {
			continue
		}
		name := f[0]
		pid, err := strconv.Atoi(name[strings.LastIndexByte(name, '-')+1:])
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for p := range strings.FieldsSeq(string(pids)) {
				if n, err := strconv.Atoi(p); err == nil {
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", name).Run()
		fmt.Fprintf(os.Stderr, "e2e: removed namespace %s left by an earlier run (pid %d is gone)\n", name, pid)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

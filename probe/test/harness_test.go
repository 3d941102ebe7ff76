package probetest

import (
	"bufio"
	"fmt"
	"math/rand"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/policy"
)

// TestDecideAgreesWithGo feeds the same requests to probe/build/decide-harness (the probe's decide.c) and
// to core/policy's Go Decide: fixed corner cases and random paths over the glob-corner policy must agree.
func TestDecideAgreesWithGo(t *testing.T) {
	bin := compile(t, "globs.yaml")
	c, err := policy.Load(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.bin")
	harness := filepath.Join(dir, "decide-harness")
	src := filepath.Join(repoRoot, "probe")
	if out, err := exec.Command("gcc", "-O2", "-o", harness, filepath.Join(src, "harness", "decide-harness.c"),
		filepath.Join(src, "src", "decide.c"), filepath.Join(src, "src", "sha256.c")).CombinedOutput(); err != nil {
		t.Fatalf("building the harness: %v\n%s", err, out)
	}
	writeFile(t, pol, bin)

	var reqs []req
	file := func(p, acc, prog string) {
		a := map[string]uint8{"read": policy.AccessRead, "write": policy.AccessWrite, "rw": policy.AccessRead | policy.AccessWrite}[acc]
		reqs = append(reqs, req{fmt.Sprintf("file\tread\t%s\t%s\t-\t%s", p, acc, prog),
			policy.Request{Category: policy.File, Op: "read", Path: p, Access: a, Program: prog}})
	}
	execReq := func(p string) {
		reqs = append(reqs, req{fmt.Sprintf("exec\texec\t%s\t-\t-\t/bin/sh", p),
			policy.Request{Category: policy.Exec, Op: "exec", Path: p, Program: "/bin/sh"}})
	}
	netReq := func(addr, dir, proto string) {
		q := policy.Request{Category: policy.Network, Op: "connect", Program: "/bin/x"}
		q.Access = map[string]uint8{"outbound": policy.Outbound, "inbound": policy.Inbound}[dir]
		q.Protocol = map[string]uint8{"tcp": policy.ProtoTCP, "udp": policy.ProtoUDP, "-": policy.ProtoAny}[proto]
		if p, ok := strings.CutPrefix(addr, "unix:"); ok {
			q.Unix, q.Path = true, p
		} else {
			ap := netip.MustParseAddrPort(addr)
			q.Addr, q.Port = ap.Addr(), ap.Port()
		}
		reqs = append(reqs, req{fmt.Sprintf("network\tconnect\t%s\t%s\t%s\t/bin/x", addr, dir, proto), q})
	}
	for _, p := range []string{"/", "/etc/shadow", "/etc/shadowx", "/etc/ssl/private/key.pem", "/usr/bin/bash", "/usr/bin/sh",
		"/usr/bin/x/sh", "/var/log/a.log", "/var/log/a.log/b", "/a/b", "/a/x/b", "/a/x/y/b", "/a/bb", "/home/u/.ssh/id",
		"/home/u/.ssh", "/dev/tty1", "/dev/ttyS0", "/dev/sdd", "/dev/sda", "/x/ay/b", "/x/ay/z", "/root", "/root/a/b",
		"/tmp", "/tmp/x", "/tmpx", "/srv/anything"} {
		for _, acc := range []string{"read", "write", "rw"} {
			for _, prog := range []string{"/usr/bin/cp", "/bin/cp"} {
				file(p, acc, prog)
			}
		}
		execReq(p)
	}
	for _, a := range []string{"10.1.2.3:443", "10.1.2.3:444", "11.0.0.1:443", "[2001:db8::1]:8050", "[::ffff:10.0.0.1]:8000",
		"192.0.2.1:53", "unix:/run/docker.sock", "unix:/run/x/y.sock"} {
		for _, d := range []string{"outbound", "inbound"} {
			for _, pr := range []string{"tcp", "udp"} {
				netReq(a, d, pr)
			}
		}
	}
	for _, n := range []int{101, 165, 0, 39} {
		reqs = append(reqs, req{fmt.Sprintf("syscall\tsyscall\t%d\t-\t-\t/bin/x", n),
			policy.Request{Category: policy.Syscall, Op: "syscall", Syscall: uint32(n), Program: "/bin/x"}})
	}
	rng := rand.New(rand.NewSource(1))
	parts := []string{"a", "b", "x", "ay", "z", "etc", "root", "tmp", "usr", "bin", "sh", "bash", ".ssh", "home", "u", "dev", "tty1", "sdd", "log", "a.log"}
	for i := 0; i < 3000; i++ {
		var sb strings.Builder
		for n := 1 + rng.Intn(5); n > 0; n-- {
			sb.WriteString("/" + parts[rng.Intn(len(parts))])
		}
		file(sb.String(), []string{"read", "write", "rw"}[rng.Intn(3)], "/usr/bin/cp")
		execReq(sb.String())
	}

	var in strings.Builder
	for _, r := range reqs {
		in.WriteString(r.line + "\n")
	}
	// with the key hash tables (as the probe runs) and with the binary search (the fallback)
	for _, env := range []string{"", "CRS_HARNESS_NOINDEX=1"} {
		t.Run("index"+map[string]string{"": "=hash", "CRS_HARNESS_NOINDEX=1": "=binary-search"}[env], func(t *testing.T) {
			cmd := exec.Command(harness, pol)
			if env != "" {
				cmd.Env = append(cmd.Environ(), env)
			}
			cmd.Stdin = strings.NewReader(in.String())
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("harness: %v", err)
			}
			compareAnswers(t, string(out), reqs, c)
		})
	}
}

type req struct {
	line string
	q    policy.Request
}

func compareAnswers(t *testing.T, out string, reqs []req, c *policy.Compiled) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	i, bad, matched := 0, 0, 0
	for sc.Scan() {
		if i >= len(reqs) {
			t.Fatalf("harness printed more lines than requests")
		}
		f := strings.Split(sc.Text(), "\t")
		d := c.Decide(reqs[i].q)
		rule, _ := strconv.Atoi(f[len(f)-1])
		if rule >= 0 {
			matched++
		}
		if f[0] != d.Action.String() || rule != d.Rule {
			bad++
			if bad < 20 {
				t.Errorf("%q: C says %s %d, Go says %s %d", reqs[i].line, f[0], rule, d.Action, d.Rule)
			}
		}
		i++
	}
	if i != len(reqs) {
		t.Fatalf("harness answered %d of %d requests", i, len(reqs))
	}
	if matched < len(reqs)/4 {
		t.Errorf("only %d of %d requests matched a rule: the corpus does not exercise the rules", matched, len(reqs))
	}
}

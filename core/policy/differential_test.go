package policy

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	diffSeed     = flag.Uint64("diff.seed", 1, "seed of the differential test's generator")
	diffPolicies = flag.Int("diff.policies", 120, "random policies in the differential test")
	diffRequests = flag.Int("diff.requests", 1500, "requests per policy in the differential test")
)

var (
	harnessOnce sync.Once
	harnessPath string
	harnessErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if harnessPath != "" {
		os.RemoveAll(filepath.Dir(harnessPath))
	}
	os.Exit(code)
}

// decideHarness builds the probe's decide-harness from probe/ with the probe's own build script
// (probe/build.sh, what `make probe` runs) into a temporary folder, once per test binary.
func decideHarness(t *testing.T) string {
	t.Helper()
	harnessOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			harnessErr = err
			return
		}
		dir, err := os.MkdirTemp("", "crs-harness-")
		if err != nil {
			harnessErr = err
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "probe/build.sh"), dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			harnessErr = fmt.Errorf("building the decide-harness with probe/build.sh: %v\n%s", err, out)
			return
		}
		harnessPath = filepath.Join(dir, "decide-harness")
	})
	if harnessErr != nil {
		t.Fatal(harnessErr)
	}
	return harnessPath
}

// harnessRequest reads one line of the harness protocol (docs/compiled-policy.md) into a Request.
func harnessRequest(line string) (Request, error) {
	f := strings.Split(line, "\t")
	if len(f) != 6 {
		return Request{}, fmt.Errorf("want 6 fields: %q", line)
	}
	q := Request{Op: f[1], Program: f[5]}
	switch f[0] {
	case "file":
		q.Category = File
	case "network":
		q.Category = Network
	case "exec":
		q.Category = Exec
	case "syscall":
		q.Category = Syscall
	}
	q.Access = map[string]uint8{"read": 1, "outbound": 1, "write": 2, "inbound": 2, "rw": 3}[f[3]]
	q.Protocol = map[string]uint8{"tcp": ProtoTCP, "udp": ProtoUDP}[f[4]]
	switch q.Category {
	case File, Exec:
		q.Path = f[2]
	case Network:
		if err := parseNetSubject(f[2], &q); err != nil {
			return q, err
		}
		if q.Unix {
			q.Path = strings.TrimPrefix(f[2], "unix:") // as given: the harness does not clean it
		}
	case Syscall:
		n, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return q, err
		}
		q.Syscall = uint32(n)
	}
	return q, nil
}

// TestDifferentialDecide feeds the Go Decide and the probe's C decide (through probe/build's
// decide-harness) the same compiled policies and requests, and fails on any disagreement.
func TestDifferentialDecide(t *testing.T) {
	harness := decideHarness(t)
	rng := rand.New(rand.NewPCG(*diffSeed, 0x5eed))
	type pol struct {
		name string
		yaml []byte
	}
	var pols []pol
	for _, f := range append(corpus(t, "testdata/good"), examplePolicies(t)...) {
		data, _ := os.ReadFile(f)
		pols = append(pols, pol{filepath.Base(f), data})
	}
	for i := 0; i < *diffPolicies; i++ {
		pols = append(pols, pol{fmt.Sprintf("random-%d", i), []byte(randomPolicy(rng, i))})
	}
	dir := t.TempDir()
	total := 0
	matched := map[Category]int{} // requests decided by a rule (not a default), per category
	for _, pl := range pols {
		p, fs := Parse(pl.name, pl.yaml)
		if HasErrors(fs) {
			t.Fatalf("%s: the generator made an invalid policy:\n%s\n%s", pl.name, dump(fs), pl.yaml)
		}
		b, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Load(b)
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "p.bin")
		if err := os.WriteFile(bin, b, 0o644); err != nil {
			t.Fatal(err)
		}
		reqs := requestsFor(rng, p, *diffRequests)
		cmd := exec.Command(harness, bin)
		cmd.Stdin = strings.NewReader(strings.Join(reqs, "\n") + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: decide-harness: %v: %s", pl.name, err, stderr.String())
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		fails := 0
		for i := 0; sc.Scan(); i++ {
			if i >= len(reqs) {
				t.Fatalf("%s: the harness answered more lines than it was asked", pl.name)
			}
			q, err := harnessRequest(reqs[i])
			if err != nil {
				t.Fatalf("%s: request %q: %v", pl.name, reqs[i], err)
			}
			d := c.Decide(q)
			if d.Rule >= 0 {
				matched[q.Category]++
			}
			want := fmt.Sprintf("%s\t%d", d.Action, d.Rule)
			if sc.Text() != want {
				fails++
				if fails <= 10 {
					t.Errorf("%s: request %q: C says %q, Go says %q", pl.name, reqs[i], sc.Text(), want)
				}
			}
			total++
		}
		if fails > 0 {
			t.Fatalf("%s: %d disagreements; policy:\n%s", pl.name, fails, pl.yaml)
		}
		if total == 0 {
			t.Fatal("no answers from the harness")
		}
	}
	if total < len(pols)*(*diffRequests)/2 {
		t.Fatalf("only %d requests compared", total)
	}
	for _, cat := range []Category{File, Network, Exec, Syscall} {
		if matched[cat] < total/50 {
			t.Errorf("only %d of %d requests were decided by a %s rule: the generator misses the rules", matched[cat], total, cat)
		}
	}
	t.Logf("%d policies, %d requests (decided by a rule: %v): Go and C agree", len(pols), total, matched)
}

// ---- the generator ----

var (
	atoms    = []string{"etc", "shadow", "passwd", "bin", "sh", "bash", "usr", "lib", "a", "b", "x.log", "ssl", "root", "tmp", "app", "data", ".ssh", "id_rsa", "-", "]", "[", "a b", "é"}
	globBits = []string{"*", "?", "[abc]", "[a-c]", "[!a-c]", "[^x]", "[]a]", "\\*", "\\?", "*sh", "a*", "*.log", "x?", "[.]*", "[!.]*", "\\[x]", "[a-]", "*a*b"}
	programs = []string{"/usr/bin/curl", "/bin/sh", "/usr/sbin/nginx", "/usr/bin/python3.11", "/app/server", "/bin/bash", "-", "/usr/bin/x*y"}
	progGlob = []string{"/usr/bin/*", "/bin/sh", "/usr/sbin/nginx", "/**", "/usr/*/python3.?", "/app/**", "/bin/[bd]ash", "/usr/bin/x\\*y"}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func randomGlob(rng *rand.Rand) string {
	for {
		n := 1 + rng.IntN(4)
		var comps []string
		for i := 0; i < n; i++ {
			switch r := rng.IntN(10); {
			case r < 5:
				comps = append(comps, pick(rng, atoms))
			case r < 8:
				comps = append(comps, pick(rng, atoms)+pick(rng, globBits))
			default:
				comps = append(comps, "**")
			}
		}
		g := "/" + strings.Join(comps, "/")
		if prob, _ := checkGlob(g); prob == "" && !strings.ContainsAny(g, "\t\n") {
			return g
		}
	}
}

func quote(s string) string { return strconv.Quote(s) }

func randomPrefix(rng *rand.Rand) string {
	switch rng.IntN(8) {
	case 0:
		return "0.0.0.0/0"
	case 1:
		return "::/0"
	case 2:
		a := netip.AddrFrom16(netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}).As16())
		return netip.PrefixFrom(a, 96+rng.IntN(33)).Masked().String()
	case 3, 4:
		a := netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		return netip.PrefixFrom(a, rng.IntN(33)).Masked().String()
	case 5:
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), rng.IntN(129)).Masked().String()
	case 6:
		return fmt.Sprintf("10.%d.%d.%d", rng.IntN(4), rng.IntN(4), rng.IntN(4))
	}
	return fmt.Sprintf("2001:db8::%x", rng.IntN(8))
}

func randomPort(rng *rand.Rand) string {
	switch rng.IntN(5) {
	case 0:
		return strconv.Itoa(pick(rng, []int{0, 1, 22, 25, 53, 80, 443, 65535}))
	case 1:
		lo := rng.IntN(65536)
		return fmt.Sprintf("\"%d-%d\"", lo, lo+rng.IntN(65536-lo))
	case 2:
		lo := rng.IntN(1000)
		return fmt.Sprintf("\"%d-%d\"", lo, lo+rng.IntN(50))
	}
	return strconv.Itoa(rng.IntN(65536))
}

func randomPolicy(rng *rand.Rand, i int) string {
	var b strings.Builder
	acts := []string{"allow", "deny", "alert"}
	fmt.Fprintf(&b, "apiVersion: crs-ci/v1\nkind: RuntimePolicy\nmetadata: {name: random-%d}\nspec:\n", i)
	fmt.Fprintf(&b, "  mode: %s\n", pick(rng, []string{"enforce", "audit", "off"}))
	fmt.Fprintf(&b, "  defaults: {file: %s, network: %s, exec: %s, syscall: %s}\n", pick(rng, acts), pick(rng, acts), pick(rng, acts), pick(rng, acts))
	b.WriteString("  lists:\n    shared: [")
	for k := 0; k < 1+rng.IntN(3); k++ {
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(randomGlob(rng)))
	}
	b.WriteString("]\n  rules:\n")
	nrules := 1 + rng.IntN(25)
	for r := 0; r < nrules; r++ {
		fmt.Fprintf(&b, "    - name: r%d\n      action: %s\n", r, pick(rng, acts))
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&b, "      program: %s\n", quote(pick(rng, progGlob)))
		}
		switch rng.IntN(4) {
		case 0, 1:
			cat := pick(rng, []string{"file", "exec"})
			var paths []string
			for k := 0; k < 1+rng.IntN(4); k++ {
				paths = append(paths, quote(randomGlob(rng)))
			}
			if rng.IntN(5) == 0 {
				paths = append(paths, `"@shared"`)
			}
			fmt.Fprintf(&b, "      %s:\n        paths: [%s]\n", cat, strings.Join(paths, ", "))
			if cat == "file" && rng.IntN(2) == 0 {
				fmt.Fprintf(&b, "        access: [%s]\n", pick(rng, []string{"read", "write", "read, write"}))
			}
		case 2:
			fmt.Fprintf(&b, "      network:\n        direction: %s\n", pick(rng, []string{"outbound", "inbound", "any"}))
			if rng.IntN(2) == 0 {
				fmt.Fprintf(&b, "        protocol: %s\n", pick(rng, []string{"tcp", "udp", "any"}))
			}
			if rng.IntN(5) == 0 {
				fmt.Fprintf(&b, "        unix: [%s, %s]\n", quote(randomGlob(rng)), quote("/run/"+pick(rng, []string{"*.sock", "docker.sock", "a/**"})))
				break
			}
			if rng.IntN(3) > 0 {
				var as []string
				for k := 0; k < 1+rng.IntN(4); k++ {
					as = append(as, quote(randomPrefix(rng)))
				}
				fmt.Fprintf(&b, "        addresses: [%s]\n", strings.Join(as, ", "))
			}
			if rng.IntN(3) > 0 {
				var ps []string
				for k := 0; k < 1+rng.IntN(4); k++ {
					ps = append(ps, randomPort(rng))
				}
				fmt.Fprintf(&b, "        ports: [%s]\n", strings.Join(ps, ", "))
			}
		case 3:
			var ns []string
			for k := 0; k < 1+rng.IntN(5); k++ {
				ns = append(ns, pick(rng, syscallTable).Name)
			}
			fmt.Fprintf(&b, "      syscall: {names: [%s]}\n", strings.Join(ns, ", "))
		}
	}
	return b.String()
}

// instantiate returns a path the glob matches (or nearly: random choices may miss), to hit rules often.
func instantiate(rng *rand.Rand, g string) string {
	var out []string
	for _, c := range strings.Split(strings.TrimPrefix(g, "/"), "/") {
		if c == "**" {
			for k := rng.IntN(3); k > 0; k-- {
				out = append(out, pick(rng, atoms))
			}
			continue
		}
		var s strings.Builder
		for i := 0; i < len(c); i++ {
			switch c[i] {
			case '*':
				s.WriteString(pick(rng, []string{"", "a", "sh", "xyz", "."}))
			case '?':
				s.WriteByte(pick(rng, []byte("a.x1]-")))
			case '[':
				end, prob := classEnd(c, i)
				if prob != "" {
					s.WriteByte('[')
					continue
				}
				s.WriteByte(pick(rng, []byte("abcdx.]-^!")))
				i = end
			case '\\':
				if i+1 < len(c) {
					i++
				}
				s.WriteByte(c[i])
			default:
				s.WriteByte(c[i])
			}
		}
		if s.Len() == 0 {
			s.WriteString("e")
		}
		out = append(out, s.String())
	}
	p := "/" + strings.Join(out, "/")
	return p
}

func requestsFor(rng *rand.Rand, p *Policy, n int) []string {
	var globs, unix, sysnames []string
	var prefixes []netip.Prefix
	for _, r := range p.Rules {
		switch {
		case r.Category == Network && len(r.Paths) > 0:
			unix = append(unix, r.Paths...)
		case r.Category == File || r.Category == Exec:
			globs = append(globs, r.Paths...)
		}
		prefixes = append(prefixes, r.Prefixes...)
		sysnames = append(sysnames, r.Syscalls...)
	}
	subjectPath := func(from []string) string {
		switch {
		case len(from) > 0 && rng.IntN(4) > 0:
			s := instantiate(rng, pick(rng, from))
			switch rng.IntN(6) {
			case 0:
				s += pick(rng, []string{"x", "/y", "/a/b"})
			case 1:
				if i := strings.LastIndexByte(s, '/'); i > 0 {
					s = s[:i]
				}
			}
			return path.Clean(s) // subjects are normalised, as the probe normalises them
		case rng.IntN(3) == 0:
			return "/"
		}
		return instantiate(rng, randomGlob(rng))
	}
	reqs := make([]string, 0, n)
	for len(reqs) < n {
		prog := pick(rng, programs)
		if rng.IntN(4) == 0 {
			prog = instantiate(rng, pick(rng, progGlob))
		}
		switch rng.IntN(4) {
		case 0:
			reqs = append(reqs, strings.Join([]string{"file", pick(rng, []string{"read", "write", "unlink", "rename", "chmod"}),
				subjectPath(globs), pick(rng, []string{"read", "write", "rw", "-"}), "-", prog}, "\t"))
		case 1:
			reqs = append(reqs, strings.Join([]string{"exec", "exec", subjectPath(globs), "-", "-", prog}, "\t"))
		case 2:
			var subj string
			if rng.IntN(5) == 0 {
				subj = "unix:" + subjectPath(unix)
			} else {
				subj = randomAddrPort(rng, prefixes)
			}
			dir := pick(rng, []string{"outbound", "inbound", "-"})
			op := map[string]string{"outbound": "connect", "inbound": "bind", "-": "connect"}[dir]
			reqs = append(reqs, strings.Join([]string{"network", op, subj, dir, pick(rng, []string{"tcp", "udp", "-"}), prog}, "\t"))
		case 3:
			nr := rng.IntN(470)
			if rng.IntN(2) == 0 {
				e := pick(rng, syscallTable)
				if len(sysnames) > 0 && rng.IntN(2) == 0 {
					e, _ = lookupSyscall(pick(rng, sysnames))
				}
				nr = e.X86_64
				if nr < 0 {
					nr = e.Aarch64
				}
			}
			reqs = append(reqs, strings.Join([]string{"syscall", "syscall", strconv.Itoa(nr), "-", "-", prog}, "\t"))
		}
	}
	return reqs
}

// randomAddrPort returns IP:PORT or [IPv6]:PORT, often at the edges of the policy's ranges.
func randomAddrPort(rng *rand.Rand, prefixes []netip.Prefix) string {
	port := pick(rng, []int{0, 1, 22, 25, 53, 80, 443, 465, 587, 8080, 65535, rng.IntN(65536)})
	var a netip.Addr
	switch {
	case len(prefixes) > 0 && rng.IntN(3) > 0:
		r := prefixRange(pick(rng, prefixes))
		edge := r[rng.IntN(2)]
		switch rng.IntN(3) {
		case 1:
			edge, _ = inc16(edge)
		case 2:
			edge = dec16(edge)
		}
		a = netip.AddrFrom16(edge)
	case rng.IntN(2) == 0:
		a = netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	default:
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		a = netip.AddrFrom16(b)
	}
	if a.Is4In6() && rng.IntN(2) == 0 {
		a = a.Unmap() // both spellings of an IPv4 address
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

func dec16(a [16]byte) [16]byte {
	for i := 15; i >= 0; i-- {
		a[i]--
		if a[i] != 0xff {
			return a
		}
	}
	return a
}

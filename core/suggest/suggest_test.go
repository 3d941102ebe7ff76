package suggest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/events"
	"github.com/crs-ci/crs-ci/core/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// streams are the event streams the suggestion tests learn from.
var streams = map[string][]string{
	"audit-web":   {"../events/testdata/audit-web.jsonl"},
	"interleaved": {"../events/testdata/interleaved.log"},
	"both":        {"../events/testdata/audit-web.jsonl", "../events/testdata/interleaved.log"},
	"recorded":    {"../events/testdata/recorded/bookworm-audit.jsonl"},
}

func observe(t testing.TB, files ...string) *Observed {
	t.Helper()
	o := NewObserved("amd64")
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		st, err := events.ReadAll(r, filepath.Base(f), o.Add)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		o.Input.Add(st)
	}
	return o
}

func compile(t testing.TB, name string, src []byte) *policy.Compiled {
	t.Helper()
	p, fs := policy.Parse(name, src)
	if policy.HasErrors(fs) {
		var b bytes.Buffer
		policy.WriteFindings(&b, fs, src)
		t.Fatalf("suggested policy does not validate:\n%s\n%s", b.String(), src)
	}
	bin, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.Load(bin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// replay decides every event of files with c and fails on any that is not allowed.
func replay(t *testing.T, c *policy.Compiled, files ...string) int {
	t.Helper()
	n := 0
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = events.ReadAll(r, f, func(e *events.Event) error {
			for _, q := range Requests(e, "amd64") {
				n++
				if ok, d := allowedBy(c, q); !ok {
					return fmt.Errorf("%s %s by %s: %s (rule %q)", e.Op, e.Subject(), e.Program, d.Action, d.RuleName)
				}
			}
			return nil
		})
		r.Close()
		if err != nil {
			t.Fatalf("replaying %s: %v", f, err)
		}
	}
	return n
}

// TestSuggestReplay is the acceptance test: for every stream, plain and strict, the suggestion
// validates with core/policy, and replaying every event through its compiled form allows it.
func TestSuggestReplay(t *testing.T) {
	for name, files := range streams {
		for _, strict := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/strict=%v", name, strict), func(t *testing.T) {
				o := observe(t, files...)
				s, err := Suggest(o, Options{Name: name, Strict: strict})
				if err != nil {
					t.Fatal(err)
				}
				c := compile(t, name+".yaml", s.YAML)
				_, fs := policy.Parse(name+".yaml", s.YAML)
				for _, f := range fs {
					if f.Severity != "info" {
						t.Errorf("suggested policy has a %s: %s: %s", f.Severity, f.Code, f.Message)
					}
				}
				if n := replay(t, c, files...); n == 0 {
					t.Fatal("no events replayed")
				}
				for _, cat := range categories {
					want := "allow"
					if strict {
						want = "deny"
					}
					for _, r := range s.Rules {
						if r.Category == cat {
							want = "deny"
						}
					}
					if cat == "syscall" && len(o.Unnamed) > 0 {
						want = "allow"
					}
					if s.Defaults[cat] != want {
						t.Errorf("default %s = %s, want %s", cat, s.Defaults[cat], want)
					}
				}
			})
		}
	}
}

// TestStrictNearMisses: a strict suggestion allows nothing beyond what was seen — each near miss of
// an observed call (a sibling file, another program, another port or address, another access) is denied.
func TestStrictNearMisses(t *testing.T) {
	o := observe(t, streams["audit-web"]...)
	s, err := Suggest(o, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	c := compile(t, "strict.yaml", s.YAML)
	nginx := "/usr/sbin/nginx"
	file := func(p, prog string, acc uint8) policy.Request {
		return policy.Request{Category: policy.File, Op: "read", Path: p, Access: acc, Program: prog}
	}
	ip := func(a string, port uint16, dir uint8, prog string) policy.Request {
		return policy.Request{Category: policy.Network, Op: "connect", Addr: netip.MustParseAddr(a), Port: port, Access: dir, Program: prog}
	}
	nr, _ := policy.SyscallNumber("ptrace", "amd64")
	getrandom, _ := policy.SyscallNumber("getrandom", "amd64")
	tests := []struct {
		name string
		q    policy.Request
		want bool
	}{
		{"observed read", file("/usr/share/nginx/html/index.html", nginx, policy.AccessRead), true},
		{"sibling file", file("/usr/share/nginx/html/secret.html", nginx, policy.AccessRead), false},
		{"other program", file("/usr/share/nginx/html/index.html", "/usr/bin/curl", policy.AccessRead), false},
		{"write where only read was seen", file("/etc/nginx/nginx.conf", nginx, policy.AccessWrite), false},
		{"observed write", file("/var/log/nginx/error.log", nginx, policy.AccessWrite), true},
		{"observed connect", ip("10.0.3.7", 5432, policy.Outbound, nginx), true},
		{"neighbour address", ip("10.0.3.9", 5432, policy.Outbound, nginx), false},
		{"other port", ip("10.0.3.7", 5433, policy.Outbound, nginx), false},
		{"inbound on an outbound address", ip("10.0.3.7", 5432, policy.Inbound, nginx), false},
		{"observed bind", ip("0.0.0.0", 8080, policy.Inbound, nginx), true},
		{"bind on another port", ip("0.0.0.0", 8081, policy.Inbound, nginx), false},
		{"unix socket not seen", policy.Request{Category: policy.Network, Op: "connect", Unix: true, Path: "/run/docker.sock", Access: policy.Outbound, Program: nginx}, false},
		{"observed unix socket", policy.Request{Category: policy.Network, Op: "connect", Unix: true, Path: "/run/php/php-fpm.sock", Access: policy.Outbound, Program: nginx}, true},
		{"exec not seen", policy.Request{Category: policy.Exec, Op: "exec", Path: "/bin/bash", Program: nginx}, false},
		{"observed exec", policy.Request{Category: policy.Exec, Op: "exec", Path: "/bin/sh", Program: nginx}, true},
		{"syscall not seen", policy.Request{Category: policy.Syscall, Op: "syscall", Syscall: uint32(nr), Program: nginx}, false},
		{"observed syscall", policy.Request{Category: policy.Syscall, Op: "syscall", Syscall: uint32(getrandom), Program: nginx}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, d := allowedBy(c, tt.q); got != tt.want {
				t.Errorf("allowed = %v (%s, rule %q), want %v", got, d.Action, d.RuleName, tt.want)
			}
		})
	}
}

func TestGroupPaths(t *testing.T) {
	m := func(ps ...string) map[string]int64 {
		out := map[string]int64{}
		for _, p := range ps {
			out[p]++
		}
		return out
	}
	tests := []struct {
		name  string
		paths map[string]int64
		pr    protection
		want  []string
	}{
		{"few files stay exact", m("/etc/nginx/a.conf", "/etc/nginx/b.conf"), readProtection,
			[]string{"/etc/nginx/a.conf", "/etc/nginx/b.conf"}},
		{"three files make a star", m("/srv/www/a", "/srv/www/b", "/srv/www/c", "/srv/x"), readProtection,
			[]string{"/srv/www/*", "/srv/x"}},
		{"two subdirectories and six paths make a double star",
			m("/usr/lib/a/1", "/usr/lib/a/2", "/usr/lib/b/1", "/usr/lib/b/2", "/usr/lib/c", "/usr/lib/d"), readProtection,
			[]string{"/usr/lib/**"}},
		{"never a double star at the first level",
			m("/opt/a/1", "/opt/a/2", "/opt/b/1", "/opt/b/2", "/opt/c", "/opt/d"), readProtection,
			[]string{"/opt/a/1", "/opt/a/2", "/opt/b/1", "/opt/b/2", "/opt/c", "/opt/d"}},
		{"no star over /etc/shadow", m("/etc/hosts", "/etc/passwd", "/etc/group"), readProtection,
			[]string{"/etc/group", "/etc/hosts", "/etc/passwd"}},
		{"no glob over a secrets directory", m("/root/.cache/a", "/root/.cache/b", "/root/.cache/c"), readProtection,
			[]string{"/root/.cache/a", "/root/.cache/b", "/root/.cache/c"}},
		{"writes: no double star over the probe's files",
			m("/usr/lib/a/1", "/usr/lib/a/2", "/usr/lib/b/1", "/usr/lib/b/2", "/usr/lib/c", "/usr/lib/d"), writeProtection,
			[]string{"/usr/lib/a/1", "/usr/lib/a/2", "/usr/lib/b/1", "/usr/lib/b/2", "/usr/lib/c", "/usr/lib/d"}},
		{"glob characters in names are escaped", m("/data/a*b", "/data/c?d", "/data/[e]"), readProtection,
			[]string{"/data/*"}},
		{"glob characters escaped when exact", m("/data/a*b", `/data/back\slash`), readProtection,
			[]string{`/data/a\*b`, `/data/back\\slash`}},
		{"relative paths kept exact", m("relative/x", "/"), readProtection, []string{"/", "relative/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, it := range groupPaths(tt.paths, false, tt.pr) {
				got = append(got, it.v)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("groupPaths = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGroupAddrs(t *testing.T) {
	in := map[string]int64{"10.0.3.7:5432": 1, "10.0.3.8:5432": 2, "10.0.4.1:443": 1, "[2001:db8::1]:443": 1,
		"[2001:db8::2]:443": 1, "0.0.0.0:8080": 1, "[::]:8080": 1}
	var got []string
	for _, g := range groupAddrs(in, false) {
		got = append(got, fmt.Sprintf("%s=%d", prefixString(g.prefix), g.count))
	}
	want := "0.0.0.0=1 10.0.3.0/24=3 10.0.4.1=1 ::=1 2001:db8::/64=2"
	if strings.Join(got, " ") != want {
		t.Errorf("groupAddrs = %q, want %q", strings.Join(got, " "), want)
	}
	got = nil
	for _, g := range groupAddrs(in, true) {
		got = append(got, prefixString(g.prefix))
	}
	if len(got) != len(in) {
		t.Errorf("strict groupAddrs = %q: want one group per address", got)
	}
}

// broadStream writes a stream whose reads, connects and execs are too many to list.
func broadStream(t *testing.T) string {
	var b strings.Builder
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&b, `{"ts":"2026-11-27T10:00:00Z","pid":1,"program":"/usr/bin/find","op":"read","path":"/d%d/f%d","action":"allow","rule":"","mode":"audit","policy":"p"}`+"\n", i, i)
		fmt.Fprintf(&b, `{"ts":"2026-11-27T10:00:00Z","pid":1,"program":"/usr/bin/curl","op":"connect","addr":"10.%d.%d.1:443","action":"allow","rule":"","mode":"audit","policy":"p"}`+"\n", i/200, i%200)
	}
	fmt.Fprintf(&b, `{"ts":"2026-11-27T10:00:00Z","pid":1,"program":"/usr/bin/find","op":"write","path":"/tmp/out","action":"allow","rule":"","mode":"audit","policy":"p"}`+"\n")
	name := filepath.Join(t.TempDir(), "broad.jsonl")
	if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestSuggestBroad(t *testing.T) {
	name := broadStream(t)
	o := observe(t, name)
	s, err := Suggest(o, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := compile(t, "broad.yaml", s.YAML)
	replay(t, c, name)
	var names []string
	for _, r := range s.Rules {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, " "); got != "read-anywhere write-tmp connect-anywhere" {
		t.Errorf("rules = %q", got)
	}
	// writes stay narrow: a write elsewhere is denied by the file default
	if ok, _ := allowedBy(c, policy.Request{Category: policy.File, Op: "write", Path: "/etc/passwd", Access: policy.AccessWrite}); ok {
		t.Error("a write outside what was seen is allowed")
	}
	// strict lists everything
	ss, err := Suggest(o, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	replay(t, compile(t, "broad-strict.yaml", ss.YAML), name)
	if bytes.Contains(ss.YAML, []byte("anywhere")) {
		t.Error("strict suggestion has an anywhere rule")
	}
}

func TestSuggestGolden(t *testing.T) {
	for _, name := range []string{"audit-web", "interleaved"} {
		for _, strict := range []bool{false, true} {
			golden := filepath.Join("testdata", "golden", name+map[bool]string{false: "", true: ".strict"}[strict]+".yaml")
			t.Run(golden, func(t *testing.T) {
				s, err := Suggest(observe(t, streams[name]...), Options{Name: name, Strict: strict, Source: name})
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, golden, s.YAML)
			})
		}
	}
}

func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (-update rewrites it):\n%s", golden, got)
	}
}

func TestSuggestNotes(t *testing.T) {
	o := observe(t, streams["interleaved"]...)
	s, err := Suggest(o, Options{})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(s.Notes, "\n")
	for _, want := range []string{"lost 17 events", "1 probe error events", "3 malformed or oversized lines"} {
		if !strings.Contains(text, want) {
			t.Errorf("notes lack %q:\n%s", want, text)
		}
	}
	if !bytes.Contains(s.YAML, []byte("# NOTE: the probe lost 17 events")) {
		t.Errorf("the YAML does not carry the notes:\n%s", s.YAML)
	}
	empty, _ := Suggest(NewObserved(""), Options{})
	if !strings.Contains(strings.Join(empty.Notes, " "), "no events were read") {
		t.Errorf("empty input notes = %q", empty.Notes)
	}
	compile(t, "empty.yaml", empty.YAML)
}

func TestSyscallNumbers(t *testing.T) {
	o := NewObserved("arm64")
	for _, sc := range []string{"278", "999999", "getrandom"} { // 278 = getrandom on aarch64
		if err := o.Add(&events.Event{Op: "syscall", Syscall: sc, Program: "/p", Action: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
	if o.Len() != 1 || o.Unnamed["999999"] != 1 {
		t.Fatalf("observations %d, unnamed %v", o.Len(), o.Unnamed)
	}
	s, _ := Suggest(o, Options{})
	if s.Defaults["syscall"] != "allow" || !strings.Contains(s.Notes[0], "999999") {
		t.Errorf("defaults %v notes %q", s.Defaults, s.Notes)
	}
}

// TestAdditions: --from-policy proposes only additions, as a diff that applies to the file, and the
// result allows every observation its defaults denied while explicit denies are kept and reported.
func TestAdditions(t *testing.T) {
	tests := []struct {
		policy    string
		stream    string
		strict    bool
		wantRules []string
		wantNotes []string
	}{
		{"block-rules.yaml", "audit-web", false,
			[]string{"read-usr", "write-tmp", "write-var", "exec-bin", "exec-usr", "connect-5432", "connect-443", "connect-unix", "listen-8080"},
			[]string{`rule "no-mail" denies 1 observation`, `rule "no-secrets" denies 1 observation (2 events`}},
		{"empty-rules.yaml", "audit-web", true, nil, nil},
		{"no-rules.yaml", "audit-web", false, []string{"read-etc", "read-usr", "write-tmp", "write-var", "exec-bin", "exec-usr"}, nil},
		{"covers-all.yaml", "audit-web", false, nil, nil},
		{"block-rules.yaml", "interleaved", false, nil, []string{"the probe lost 17 events"}},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"+"+tt.stream+fmt.Sprintf("/strict=%v", tt.strict), func(t *testing.T) {
			file := filepath.Join("testdata", "from", tt.policy)
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			o := observe(t, streams[tt.stream]...)
			a, fs, err := Additions(tt.policy, src, o, Options{Strict: tt.strict})
			if err != nil {
				t.Fatalf("%v %v", err, fs)
			}
			if tt.wantRules != nil {
				var got []string
				for _, r := range a.Rules {
					got = append(got, r.Name)
				}
				if strings.Join(got, " ") != strings.Join(tt.wantRules, " ") {
					t.Errorf("added rules = %q, want %q", got, tt.wantRules)
				}
			}
			for _, n := range tt.wantNotes {
				if !strings.Contains(strings.Join(a.Notes, "\n"), n) {
					t.Errorf("notes lack %q: %q", n, a.Notes)
				}
			}
			if tt.policy == "covers-all.yaml" {
				if a.Diff != "" || !bytes.Equal(a.New, src) {
					t.Errorf("additions for a policy that allows everything:\n%s", a.Diff)
				}
				return
			}
			// Only additions: every line of the old file is still there, in order.
			for _, l := range strings.Split(a.Diff, "\n") {
				if strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "--- ") && l != "-  rules: []" {
					t.Errorf("the diff removes a line: %q", l)
				}
			}
			// The new policy is valid; every observation its defaults denied is now allowed.
			c := compile(t, tt.policy, a.New)
			old := compile(t, tt.policy, src)
			for _, k := range o.sortedKeys(nil) {
				q := o.request(k)
				okOld, dOld := allowedBy(old, q)
				okNew, _ := allowedBy(c, q)
				if !okOld && dOld.Rule < 0 && !okNew {
					t.Errorf("%v still denied", k)
				}
				if !okOld && dOld.Rule >= 0 && okNew {
					t.Errorf("%v was denied by rule %q and is now allowed: additions must not override", k, dOld.RuleName)
				}
			}
			// The diff applies with patch(1) and gives the new policy.
			checkPatch(t, src, a)
			checkGolden(t, filepath.Join("testdata", "golden", strings.TrimSuffix(tt.policy, ".yaml")+"+"+tt.stream+map[bool]string{true: ".strict"}[tt.strict]+".diff"), []byte(a.Diff))
		})
	}
}

func checkPatch(t *testing.T, src []byte, a *Addition) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "policy.yaml"), src, 0o644)
	diff := strings.ReplaceAll(a.Diff, "a/"+a.File, "a/policy.yaml")
	diff = strings.ReplaceAll(diff, "b/"+a.File, "b/policy.yaml")
	cmd := exec.Command("patch", "-p1", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(diff)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s\n%s", err, out, diff)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if !bytes.Equal(got, a.New) {
		t.Errorf("patched file differs from the new policy:\n%s", got)
	}
}

func TestAdditionsInvalidPolicy(t *testing.T) {
	src, _ := os.ReadFile("testdata/from/broken.yaml")
	_, fs, err := Additions("broken.yaml", src, observe(t, streams["audit-web"]...), Options{})
	if !errors.Is(err, ErrInvalidPolicy) || len(fs) == 0 || fs[0].Line != 10 {
		t.Fatalf("err = %v, findings = %+v", err, fs)
	}
}

// TestUnifiedDiffMatchesGNU compares UnifiedDiff with GNU diff -u on a table of edits.
func TestUnifiedDiffMatchesGNU(t *testing.T) {
	base := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\n"
	tests := []struct{ name, a, b string }{
		{"insert in the middle", base, strings.Replace(base, "g\n", "g\nNEW1\nNEW2\n", 1)},
		{"append", base, base + "x\ny\n"},
		{"prepend", base, "x\n" + base},
		{"two hunks", base, strings.Replace(strings.Replace(base, "b\n", "b\nX\n", 1), "l\n", "l\nY\n", 1)},
		{"close changes merge", base, strings.Replace(strings.Replace(base, "c\n", "C\n", 1), "h\n", "H\n", 1)},
		{"delete and replace", base, strings.Replace(base, "d\ne\n", "E\n", 1)},
		{"no final newline", "a\nb", "a\nb\nc\n"},
		{"from empty", "", "a\n"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			os.WriteFile(fa, []byte(tt.a), 0o644)
			os.WriteFile(fb, []byte(tt.b), 0o644)
			out, _ := exec.Command("diff", "-u", "--label", "a/p", "--label", "b/p", fa, fb).Output()
			got := UnifiedDiff("a/p", "b/p", []byte(tt.a), []byte(tt.b))
			if got != string(out) {
				t.Errorf("UnifiedDiff:\n%s\nGNU diff -u:\n%s", got, out)
			}
		})
	}
	if UnifiedDiff("a", "b", []byte("x\n"), []byte("x\n")) != "" {
		t.Error("diff of equal texts is not empty")
	}
}

func TestInsertRules(t *testing.T) {
	head := "apiVersion: crs-ci/v1\nkind: RuntimePolicy\nmetadata: {name: x}\nspec:\n  mode: audit\n  defaults: {file: deny}\n"
	block := "- name: new\n  action: allow\n  file: {paths: [/a]}\n"
	tests := []struct {
		name, src, want, err string
	}{
		{"block list", head + "  rules:\n    - name: old\n      action: deny\n      file: {paths: [/b]}\n  ignore: []\n",
			head + "  rules:\n    - name: old\n      action: deny\n      file: {paths: [/b]}\n\n    - name: new\n      action: allow\n      file: {paths: [/a]}\n  ignore: []\n", ""},
		{"dash at the key's indentation", head + "  rules:\n  - name: old\n    action: deny\n    file: {paths: [/b]}\n",
			head + "  rules:\n  - name: old\n    action: deny\n    file: {paths: [/b]}\n\n  - name: new\n    action: allow\n    file: {paths: [/a]}\n", ""},
		{"empty flow list with a comment", head + "  rules: []  # none yet\n",
			head + "  rules:  # none yet\n    - name: new\n      action: allow\n      file: {paths: [/a]}\n", ""},
		{"null rules", head + "  rules:\n", head + "  rules:\n    - name: new\n      action: allow\n      file: {paths: [/a]}\n", ""},
		{"no rules, no final newline", strings.TrimSuffix(head, "\n"),
			head + "  rules:\n    - name: new\n      action: allow\n      file: {paths: [/a]}\n", ""},
		{"multi-line rule values", head + "  rules:\n    - name: old\n      description: |\n        two\n        lines\n      action: deny\n      file:\n        paths:\n          - /b\n# trailing comment\n",
			head + "  rules:\n    - name: old\n      description: |\n        two\n        lines\n      action: deny\n      file:\n        paths:\n          - /b\n\n    - name: new\n      action: allow\n      file: {paths: [/a]}\n# trailing comment\n", ""},
		{"flow list with rules", head + "  rules: [{name: old, action: deny, file: {paths: [/b]}}]\n", "", "flow style"},
		{"flow spec", "apiVersion: crs-ci/v1\nkind: RuntimePolicy\nmetadata: {name: x}\nspec: {mode: audit}\n", "", "flow style"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := insertRules([]byte(tt.src), block)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			if _, fs := policy.Parse("x.yaml", got); policy.HasErrors(fs) {
				t.Errorf("result does not validate: %+v", fs)
			}
		})
	}
}

func TestSuggestSkipsInexpressible(t *testing.T) {
	o := NewObserved("")
	for _, e := range []events.Event{
		{Program: "/p", Op: "read", Path: "relative/file", Action: "allow"},
		{Program: "/p", Op: "read", Path: "/a//b", Action: "allow"},
		{Program: "/p", Op: "read", Path: "/bad-\uFFFD-utf8", Action: "allow"},
		{Program: "/p", Op: "read", Path: "/fine", Action: "allow"},
	} {
		o.Add(&e)
	}
	s, err := Suggest(o, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := compile(t, "skip.yaml", s.YAML)
	if ok, _ := allowedBy(c, policy.Request{Category: policy.File, Op: "read", Path: "/fine", Access: policy.AccessRead, Program: "/p"}); !ok {
		t.Error("/fine is not allowed")
	}
	if len(s.skipped) != 3 || !strings.Contains(strings.Join(s.Notes, " "), "3 observations cannot be written as policy paths") {
		t.Errorf("skipped %d, notes %q", len(s.skipped), s.Notes)
	}
}

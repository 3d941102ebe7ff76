package policy

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// TestLoadRefuses: every check docs/compiled-policy.md asks of a reader.
func TestLoadRefuses(t *testing.T) {
	c := mustCompileFile(t, "testdata/good/all-features.yaml")
	harness := decideHarness(t)
	le := binary.LittleEndian
	blk := 64
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		fix    bool // recompute size and hash after mutating, to reach the checks behind them
		msg    string
	}{
		{"short", func(b []byte) []byte { return b[:100] }, false, "shorter than"},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, false, "bad magic"},
		{"newer version", func(b []byte) []byte { le.PutUint16(b[8:], 2); return b }, false, "version 2"},
		{"header size", func(b []byte) []byte { le.PutUint16(b[10:], 32); return b }, false, "header size"},
		{"total size", func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0, 0, 0) }, false, "header says"},
		{"hash", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, false, "hash mismatch"},
		{"mode", func(b []byte) []byte { b[blk] = 7; return b }, true, "mode 7"},
		{"default action", func(b []byte) []byte { b[blk+3] = 3; return b }, true, "default network action 3"},
		{"sink", func(b []byte) []byte { b[blk+6] = 9; return b }, true, "sink kind 9"},
		{"rules outside", func(b []byte) []byte { le.PutUint32(b[blk+20:], 1<<20); return b }, true, "rules"},
		{"rules offset in header", func(b []byte) []byte { le.PutUint32(b[blk+24:], 8); return b }, true, "rules"},
		{"string table outside", func(b []byte) []byte { le.PutUint32(b[blk+68:], 1<<30); return b }, true, "string table"},
		{"string table not NUL-terminated", func(b []byte) []byte {
			off, size := le.Uint32(b[blk+72:]), le.Uint32(b[blk+68:])
			b[off+size-1] = 'x'
			return b
		}, true, "NUL"},
		{"name ref outside", func(b []byte) []byte { le.PutUint32(b[blk+12:], 1<<28); return b }, true, "policy name"},
		{"rule category", func(b []byte) []byte { b[le.Uint32(b[blk+24:])+8] = 5; return b }, true, "category 5"},
		{"rule action", func(b []byte) []byte { b[le.Uint32(b[blk+24:])+9] = 3; return b }, true, "action 3"},
		{"rule pool range", func(b []byte) []byte { le.PutUint32(b[le.Uint32(b[blk+24:])+32:], 1<<30); return b }, true, "outside its table"},
		{"index rule", func(b []byte) []byte { le.PutUint32(b[le.Uint32(b[blk+32:])+8:], 1000); return b }, true, "file index"},
		{"index order", func(b []byte) []byte {
			off, n := le.Uint32(b[blk+32:]), le.Uint32(b[blk+28:])
			last := off + 16*(n-1)
			e0 := append([]byte(nil), b[off:off+16]...)
			copy(b[off:off+16], b[last:last+16])
			copy(b[last:last+16], e0)
			return b
		}, true, "not sorted"},
		{"index order by rule", func(b []byte) []byte {
			// two adjacent entries with the same key and different rules, swapped
			off, n := le.Uint32(b[blk+32:]), le.Uint32(b[blk+28:])
			for i := uint32(0); i+1 < n; i++ {
				e, f := b[off+16*i:off+16*i+16], b[off+16*i+16:off+16*i+32]
				if strAt(b, le.Uint32(e)) == strAt(b, le.Uint32(f)) && le.Uint32(e[8:]) != le.Uint32(f[8:]) {
					tmp := append([]byte(nil), e...)
					copy(e, f)
					copy(f, tmp)
					return b
				}
			}
			panic("no two file index entries share a key")
		}, true, "not sorted"},
		{"index entry naming a rule of another category", func(b []byte) []byte {
			rulesOff, nRules := le.Uint32(b[blk+24:]), le.Uint32(b[blk+20:])
			for r := uint32(0); r < nRules; r++ {
				if b[rulesOff+r*ruleSize+8] == byte(Network) {
					le.PutUint32(b[le.Uint32(b[blk+32:])+8:], r)
					return b
				}
			}
			panic("no network rule")
		}, true, "is not a file rule"},
		{"exec index entry naming a file rule", func(b []byte) []byte { le.PutUint32(b[le.Uint32(b[blk+40:])+8:], 0); return b }, true, "is not a exec rule"},
		{"index key is the whole pattern", func(b []byte) []byte {
			e := le.Uint32(b[blk+32:])
			le.PutUint32(b[e:], le.Uint32(b[e+4:])) // key ref = pattern ref
			return b
		}, true, "does not fit its pattern"},
		{"index key empty", func(b []byte) []byte { le.PutUint32(b[le.Uint32(b[blk+32:]):], 0); return b }, true, "does not fit its pattern"},
		{"index literal flag flipped", func(b []byte) []byte { b[le.Uint32(b[blk+32:])+12] ^= 1; return b }, true, "does not fit its pattern"},
		{"glob marked literal", func(b []byte) []byte {
			off, n := le.Uint32(b[blk+40:]), le.Uint32(b[blk+36:]) // exec index: /bin/*sh is a glob
			for i := uint32(0); i < n; i++ {
				if e := b[off+16*i:]; strings.Contains(strAt(b, le.Uint32(e[4:])), "*") {
					e[12] |= 1
					return b
				}
			}
			panic("no glob in the exec index")
		}, true, "does not fit its pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(append([]byte(nil), c...))
			if tt.fix {
				b = fixHeader(b)
			}
			_, err := Load(b)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("want an error mentioning %q, got %v", tt.msg, err)
			}
			if exitcode.Of(err) != exitcode.Operational {
				t.Errorf("exit code %d, want 3 (corrupt input)", exitcode.Of(err))
			}
			// The probe's loader (probe/src/decide.c, through the decide-harness) refuses the same file.
			bin := filepath.Join(t.TempDir(), "p.bin")
			if err := os.WriteFile(bin, b, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(harness, bin)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
				t.Errorf("the C loader accepts what Go refuses (%v): %s", err, out)
			}
		})
	}
	if _, err := Load(c); err != nil {
		t.Fatalf("the unmodified file: %v", err)
	}
}

func mustCompileFile(t *testing.T, file string) []byte {
	t.Helper()
	p, fs, err := ParseFile(file)
	if err != nil || HasErrors(fs) {
		t.Fatalf("%s: %v %s", file, err, dump(fs))
	}
	b, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var nrRE = regexp.MustCompile(`^#define __NR(3264)?_([a-z0-9_]+)\s+(\S+)`)

// headerSyscalls reads __NR_* numbers from the kernel UAPI headers through a compiler's preprocessor.
func headerSyscalls(t *testing.T, cc string) map[string]int {
	t.Helper()
	cmd := exec.Command(cc, "-dM", "-E", "-")
	cmd.Stdin = strings.NewReader("#include <asm/unistd.h>\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -dM -E (kernel headers come with scripts/install-deps.sh): %v", cc, err)
	}
	raw := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if m := nrRE.FindStringSubmatch(l); m != nil {
			raw["__NR"+m[1]+"_"+m[2]] = m[3]
		}
	}
	res := map[string]int{}
	for k, v := range raw {
		if !strings.HasPrefix(k, "__NR_") || k == "__NR_syscalls" {
			continue
		}
		for i := 0; i < 5; i++ {
			if n, err := strconv.Atoi(v); err == nil {
				res[strings.TrimPrefix(k, "__NR_")] = n
				break
			}
			v = raw[v]
		}
	}
	return res
}

// TestSyscallTable: the table matches the x86_64 and aarch64 kernel headers (gcc and
// aarch64-linux-gnu-gcc, both installed by scripts/install-deps.sh).
func TestSyscallTable(t *testing.T) {
	x := headerSyscalls(t, "gcc")
	a := headerSyscalls(t, "aarch64-linux-gnu-gcc")
	if len(x) < 300 || len(a) < 250 {
		t.Fatalf("headers give %d x86_64 and %d aarch64 calls", len(x), len(a))
	}
	names := map[string]bool{}
	for n := range x {
		names[n] = true
	}
	for n := range a {
		names[n] = true
	}
	var want []syscallEntry
	for n := range names {
		e := syscallEntry{Name: n, X86_64: -1, Aarch64: -1}
		if v, ok := x[n]; ok {
			e.X86_64 = v
		}
		if v, ok := a[n]; ok {
			e.Aarch64 = v
		}
		want = append(want, e)
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	got := map[string]syscallEntry{}
	for _, e := range syscallTable {
		got[e.Name] = e
	}
	missing := 0
	for _, e := range want {
		g, ok := got[e.Name]
		if !ok {
			missing++
			t.Logf("not in the table: %s (x86_64 %d, aarch64 %d)", e.Name, e.X86_64, e.Aarch64)
			continue
		}
		if g != e {
			t.Errorf("%s: table has %d/%d, headers say %d/%d", e.Name, g.X86_64, g.Aarch64, e.X86_64, e.Aarch64)
		}
	}
	// Newer headers may add calls; the table must not have lost any the headers of this machine know.
	if missing > 0 {
		t.Errorf("%d system calls of the installed headers are missing from syscalls_table.go", missing)
	}
	for _, nr := range []struct {
		name   string
		x, a64 int
	}{{"ptrace", 101, 117}, {"openat", 257, 56}, {"execve", 59, 221}, {"connect", 42, 203}, {"open", 2, -1}} {
		if e := got[nr.name]; e.X86_64 != nr.x || e.Aarch64 != nr.a64 {
			t.Errorf("%s = %d/%d, want %d/%d", nr.name, e.X86_64, e.Aarch64, nr.x, nr.a64)
		}
	}
}

// strAt reads the NUL-terminated string at ref in a compiled policy's string table.
func strAt(b []byte, ref uint32) string {
	off := binary.LittleEndian.Uint32(b[64+72:])
	s := b[off+ref:]
	return string(s[:bytes.IndexByte(s, 0)])
}

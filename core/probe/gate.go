package probe

import (
	"bytes"
	"debug/elf"
	"fmt"
	"sort"
	"strings"
)

// Baseline is the only glibc symbol version a probe built for an architecture may need: the oldest node of
// that architecture, so the probe loads on every glibc from 2.17 (aarch64's first) to today.
var Baseline = map[string]string{"amd64": "GLIBC_2.2.5", "arm64": "GLIBC_2.17"}

// AllowedNeeded are the only DT_NEEDED libraries a glibc probe may have.
var AllowedNeeded = []string{"libc.so.6", "libdl.so.2"}

// Gate checks a built probe the way the dynamic loader of the oldest supported C library would: for glibc,
// DT_NEEDED ⊆ AllowedNeeded and every needed symbol version is the architecture's baseline (no
// GLIBC_PRIVATE, no GLIBC_ABI_*); for musl, DT_NEEDED is libc.so only; for both, the right machine, and the
// exported dynamic symbols are exactly exports (the hook list, probe/src/exports.txt). It returns every
// problem found, or nil.
func Gate(libc, arch string, b []byte, exports []string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	a, err := Analyze(b)
	if err != nil {
		return []string{err.Error()}
	}
	wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if a.Machine != wantMachine || a.Class != elf.ELFCLASS64 {
		bad("machine %v/%v, want %v/ELFCLASS64", a.Machine, a.Class, wantMachine)
	}
	for _, n := range a.Needs {
		switch libc {
		case Glibc:
			if !contains(AllowedNeeded, n.Soname) {
				bad("DT_NEEDED %s not allowed (only %s)", n.Soname, strings.Join(AllowedNeeded, ", "))
			}
			for _, v := range n.Versions {
				if v != Baseline[arch] {
					bad("needs %s from %s; only the baseline %s is allowed", v, n.Soname, Baseline[arch])
				}
			}
		case Musl:
			if n.Soname != "libc.so" {
				bad("DT_NEEDED %s not allowed (only libc.so)", n.Soname)
			}
			if len(n.Versions) > 0 {
				bad("needs symbol versions %v from %s; musl has none", n.Versions, n.Soname)
			}
		default:
			bad("unknown libc %q", libc)
		}
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return append(problems, err.Error())
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return append(problems, fmt.Sprintf("reading dynamic symbols: %v", err))
	}
	var got []string
	for _, s := range syms {
		bind := elf.ST_BIND(s.Info)
		if s.Section != elf.SHN_UNDEF && (bind == elf.STB_GLOBAL || bind == elf.STB_WEAK) {
			got = append(got, s.Name)
		}
	}
	sort.Strings(got)
	want := append([]string(nil), exports...)
	sort.Strings(want)
	for _, s := range got {
		if !contains(want, s) {
			bad("exports %s, which is not a hook (probe/src/exports.txt)", s)
		}
	}
	for _, s := range want {
		if !contains(got, s) {
			bad("does not export hook %s", s)
		}
	}
	return problems
}

// ParseExports reads probe/src/exports.txt: one symbol a line; blank lines and # comments ignored.
func ParseExports(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

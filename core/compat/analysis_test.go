package compat

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

func TestEnvTarget(t *testing.T) {
	tests := []struct {
		args     []string
		wantName string
		wantArgs []string
		ok       bool
	}{
		{[]string{"python3", "app.py"}, "python3", []string{"app.py"}, true},
		{[]string{"-i", "FOO=1", "BAR=2", "node", "x"}, "node", []string{"x"}, true},
		{[]string{"-u", "HOME", "-C", "/tmp", "sh"}, "sh", []string{}, true},
		{[]string{"-S", "python3", "-u"}, "python3", []string{"-u"}, true},
		{[]string{"-Spython3 -u", "x"}, "python3", []string{"-u", "x"}, true},
		{[]string{"FOO=1"}, "", nil, false},
		{nil, "", nil, false},
	}
	for _, tt := range tests {
		p, ok := envTarget(tt.args)
		if ok != tt.ok || p.name != tt.wantName || (ok && !slices.Equal(p.args, tt.wantArgs) && len(p.args)+len(tt.wantArgs) > 0) {
			t.Errorf("envTarget(%q) = %q %q %v, want %q %q %v", tt.args, p.name, p.args, ok, tt.wantName, tt.wantArgs, tt.ok)
		}
	}
}

func TestVersions(t *testing.T) {
	tests := []struct {
		defs   []string
		want   string
		banner string
		bv     string
	}{
		{[]string{"GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.9", "GLIBC_PRIVATE", "GLIBC_2.36"}, "2.36",
			"GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36", "2.36"},
		{[]string{"GLIBC_2.30", "GLIBC_2.3.4", "GLIBC_2.4"}, "2.30", "GNU C Library (Debian GLIBC 2.31-13) stable release version 2.31", "2.31"},
		{[]string{"GLIBC_2.17", "GLIBC_2.2"}, "2.17", "", ""},
		{[]string{"GLIBC_PRIVATE", "FOO_1.0"}, "", "", ""},
	}
	for _, tt := range tests {
		v, ok := highestGlibc(tt.defs)
		if got := v.String(); (tt.want == "") == ok || got != tt.want {
			t.Errorf("highestGlibc(%v) = %q, %v; want %q", tt.defs, got, ok, tt.want)
		}
		b, _ := bannerVersion(tt.banner)
		if b.String() != tt.bv {
			t.Errorf("bannerVersion(%q) = %q, want %q", tt.banner, b, tt.bv)
		}
	}
	if !(version{2, 16}).less(version{2, 17}) || (version{2, 17}).less(version{2, 2, 5}) || !(version{2, 2}).less(version{2, 2, 5}) {
		t.Error("version ordering is wrong")
	}
}

func TestLoaderFamily(t *testing.T) {
	tests := map[string]string{
		"/lib64/ld-linux-x86-64.so.2":  "glibc",
		"/lib/ld-linux-aarch64.so.1":   "glibc",
		"/lib/ld-musl-x86_64.so.1":     "musl",
		"/lib/ld-musl-aarch64.so.1":    "musl",
		"/system/bin/linker64":         "",
		"/lib/ld64.so.2":               "",
		"/usr/libexec/ld-elf.so.1":     "",
		"/lib/ld-linux-armhf.so.3":     "glibc",
		"/nix/store/x/lib/ld-linux.so": "glibc",
	}
	for interp, want := range tests {
		if got := loaderFamily(interp); got != want {
			t.Errorf("loaderFamily(%s) = %q, want %q", interp, got, want)
		}
	}
}

// TestCodesDocumented keeps docs/check.md and the codes in step: every code has a row, every row a code.
func TestCodesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "check.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, m := range regexp.MustCompile(`(?m)^\| (CRS-C\d{3}) \|`).FindAllStringSubmatch(string(doc), -1) {
		rows = append(rows, m[1])
	}
	codes := slices.Clone(allCodes)
	slices.Sort(codes)
	if len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Errorf("duplicate codes in %v", codes)
	}
	slices.Sort(rows)
	if !slices.Equal(rows, codes) {
		t.Errorf("docs/check.md documents %v, the code defines %v", rows, codes)
	}
}

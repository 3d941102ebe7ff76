// Package probe knows the probe artifacts embedded in crs-ci: one shared library per libc family and
// architecture, built from probe/ by `make probe` and committed (like generated eBPF objects), with their
// digests and the dynamic-loader needs (DT_NEEDED libraries and symbol versions) read from the real files.
package probe

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"embed"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
)

// Paths of the probe's files inside an instrumented image.
const (
	LibraryPath = "/usr/lib/crs-ci/probe.so"
	PolicyPath  = "/etc/crs-ci/policy.bin"
	PreloadPath = "/etc/ld.so.preload"
)

// Libc families.
const (
	Glibc = "glibc"
	Musl  = "musl"
)

//go:embed artifacts
var artifactsFS embed.FS

// Artifact is one built probe.
type Artifact struct {
	Libc    string // Glibc or Musl
	Arch    string // OCI architecture: amd64 or arm64
	File    string // artifact file name, e.g. crs-probe-glibc-amd64.so
	Bytes   []byte
	Digest  string         // "sha256:<hex>" of Bytes
	Machine elf.Machine    // EM_X86_64 or EM_AARCH64
	Class   elf.Class      // ELFCLASS64
	Needs   []LibraryNeeds // what the dynamic loader must find, in DT_NEEDED order
}

// LibraryNeeds is one DT_NEEDED library of the probe and the symbol versions the probe needs from it.
type LibraryNeeds struct {
	Soname   string   // e.g. libc.so.6
	Versions []string // e.g. GLIBC_2.2.5, sorted; empty for musl
}

// FileName is the artifact file name for a libc family and OCI architecture.
func FileName(libc, arch string) string { return fmt.Sprintf("crs-probe-%s-%s.so", libc, arch) }

var (
	loadOnce sync.Once
	loaded   []*Artifact
	loadErr  error
)

// All returns every embedded artifact, sorted by file name.
func All() ([]*Artifact, error) {
	loadOnce.Do(func() { loaded, loadErr = loadAll() })
	return loaded, loadErr
}

// For returns the artifact for a libc family and OCI architecture, or an error naming what exists.
func For(libc, arch string) (*Artifact, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, a := range all {
		if a.Libc == libc && a.Arch == arch {
			return a, nil
		}
		have = append(have, a.Libc+"/"+a.Arch)
	}
	return nil, fmt.Errorf("no probe built for %s on %s (probes exist for: %v)", libc, arch, have)
}

func loadAll() ([]*Artifact, error) {
	entries, err := artifactsFS.ReadDir("artifacts")
	if err != nil {
		return nil, fmt.Errorf("reading embedded probe artifacts: %w", err)
	}
	var out []*Artifact
	for _, e := range entries {
		var libc, arch string
		for _, l := range []string{Glibc, Musl} {
			for _, ar := range []string{"amd64", "arm64"} {
				if e.Name() == FileName(l, ar) {
					libc, arch = l, ar
				}
			}
		}
		if libc == "" {
			continue
		}
		b, err := artifactsFS.ReadFile("artifacts/" + e.Name())
		if err != nil {
			return nil, err
		}
		a, err := Analyze(b)
		if err != nil {
			return nil, fmt.Errorf("embedded probe %s: %w", e.Name(), err)
		}
		a.Libc, a.Arch, a.File = libc, arch, e.Name()
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

// Analyze reads a probe's ELF header, DT_NEEDED entries and version needs with debug/elf.
func Analyze(b []byte) (*Artifact, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	sum := sha256.Sum256(b)
	a := &Artifact{Bytes: b, Digest: "sha256:" + hex.EncodeToString(sum[:]), Machine: f.Machine, Class: f.Class}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("reading DT_NEEDED: %w", err)
	}
	versions := map[string][]string{}
	needs, err := f.DynamicVersionNeeds()
	if err == nil {
		for _, n := range needs {
			for _, v := range n.Needs {
				versions[n.Name] = append(versions[n.Name], v.Dep)
			}
		}
	}
	for _, l := range libs {
		v := versions[l]
		sort.Strings(v)
		a.Needs = append(a.Needs, LibraryNeeds{Soname: l, Versions: v})
	}
	return a, nil
}

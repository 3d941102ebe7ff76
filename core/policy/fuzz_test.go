package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

// seedFiles are the policies every fuzz target starts from (besides testdata/fuzz/NAME).
func seedFiles(f *testing.F) [][]byte {
	var out [][]byte
	for _, dir := range []string{"testdata/good/*.yaml", "testdata/broken/*.yaml", "../../policies/*.yaml"} {
		files, _ := globFiles(dir)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 64<<10 {
				out = append(out, data)
			}
		}
	}
	if len(out) == 0 {
		f.Fatal("no seed policies")
	}
	return out
}

// FuzzParse: parsing never panics; whatever parses without errors compiles, loads, and compiles to the
// same bytes again.
func FuzzParse(f *testing.F) {
	for _, s := range seedFiles(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, fs := Parse("fuzz.yaml", data)
		for _, fd := range fs {
			if fd.Line < 1 || fd.Column < 1 || fd.Code == "" || fd.Message == "" {
				t.Fatalf("finding without position, code or message: %+v", fd)
			}
		}
		if HasErrors(fs) {
			return
		}
		b, err := Compile(p)
		if err != nil {
			t.Fatalf("a valid policy does not compile: %v", err)
		}
		if _, err := Load(b); err != nil {
			t.Fatalf("a compiled policy does not load: %v", err)
		}
		p2, _ := Parse("fuzz.yaml", data)
		b2, _ := Compile(p2)
		if !bytes.Equal(b, b2) {
			t.Fatal("the same policy compiled to different bytes")
		}
	})
}

// fixHeader rewrites the total size and the body hash so a mutated body passes the first checks and the
// fuzzer reaches the offset and count checks behind them.
func fixHeader(b []byte) []byte {
	if len(b) < headerSize {
		return b
	}
	b = bytes.Clone(b)
	copy(b, Magic)
	binary.LittleEndian.PutUint16(b[8:], FormatVersion)
	binary.LittleEndian.PutUint16(b[10:], headerSize)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(b)))
	sum := sha256.Sum256(b[headerSize:])
	copy(b[16:48], sum[:])
	return b
}

// FuzzLoad: Load never panics or reads out of bounds on arbitrary bytes, and Decide never panics on
// what Load accepts.
func FuzzLoad(f *testing.F) {
	for _, s := range seedFiles(f) {
		if p, fs := Parse("seed.yaml", s); !HasErrors(fs) {
			if b, err := Compile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range [][]byte{data, fixHeader(data)} {
			c, err := Load(b)
			if err != nil {
				continue
			}
			for _, q := range fuzzRequests {
				d := c.Decide(q)
				if d.Rule >= len(c.Rules) || d.Action > Alert {
					t.Fatalf("decision out of range: %+v", d)
				}
			}
		}
	})
}

var fuzzRequests = []Request{
	{Category: File, Path: "/etc/shadow", Access: AccessRead, Program: "/bin/cat"},
	{Category: File, Path: "/", Access: AccessRead | AccessWrite},
	{Category: File, Path: "/a/b/c/d/e/f", Access: AccessWrite, Program: "/usr/bin/x"},
	{Category: Exec, Path: "/bin/sh", Program: "/usr/sbin/nginx"},
	{Category: Network, Addr: netip.MustParseAddr("10.0.0.1"), Port: 25, Access: Outbound, Protocol: ProtoTCP},
	{Category: Network, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443, Access: Inbound},
	{Category: Network, Unix: true, Path: "/run/docker.sock", Access: Outbound},
	{Category: Syscall, Syscall: 101},
	{Category: Syscall, Syscall: 117, Arch: "arm64"},
	{Category: 9},
}

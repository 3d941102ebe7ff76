package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestCompileDeterministic: the same policy gives the same bytes, whatever the order of map keys
// (lists, defaults) in the YAML and across repeated parses; the golden hashes catch format changes.
func TestCompileDeterministic(t *testing.T) {
	files := append(corpus(t, "testdata/good"), examplePolicies(t)...)
	var golden strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		var first []byte
		for i := 0; i < 20; i++ {
			p, fs := Parse(f, data)
			if HasErrors(fs) {
				t.Fatalf("%s: %s", f, dump(fs))
			}
			b, err := Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = b
			} else if !bytes.Equal(first, b) {
				t.Fatalf("%s: compile %d differs from the first", f, i)
			}
		}
		sum := sha256.Sum256(first)
		golden.WriteString(filepath.Base(f) + " " + hex.EncodeToString(sum[:]) + "\n")
	}
	const goldenFile = "testdata/compiled.sha256"
	if *update {
		if err := os.WriteFile(goldenFile, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run go test ./core/policy -run Deterministic -update)", err)
	}
	if string(want) != golden.String() {
		t.Errorf("compiled bytes changed (a format change must update docs/compiled-policy.md and the probe):\nwant\n%s\ngot\n%s", want, golden.String())
	}

	// Reordering map keys and list definitions does not change the bytes.
	a := "apiVersion: crs-ci/v1\nkind: RuntimePolicy\nmetadata: {name: order}\nspec:\n  defaults: {file: deny, exec: allow}\n  lists: {a: [/a], b: [/b], c: [10.0.0.0/8]}\n  rules:\n    - {name: r1, action: allow, file: {paths: ['@b', '@a']}}\n    - {name: r2, action: deny, network: {addresses: ['@c', 192.168.0.0/16], ports: [443, 80]}}\n"
	b := "kind: RuntimePolicy\napiVersion: crs-ci/v1\nspec:\n  lists: {c: [10.0.0.0/8], b: [/b], a: [/a]}\n  rules:\n    - {action: allow, name: r1, file: {paths: ['@b', '@a']}}\n    - {network: {ports: [80, 443], addresses: [192.168.0.0/16, '@c']}, action: deny, name: r2}\n  defaults: {exec: allow, file: deny}\nmetadata: {name: order}\n"
	ca := mustCompileString(t, a)
	cb := mustCompileString(t, b)
	if ca.SHA256() == "" || ca.SHA256() != cb.SHA256() {
		// rule lines differ between the two texts; compare with lines cleared
		pa, _ := Parse("a", []byte(a))
		pb, _ := Parse("b", []byte(b))
		for _, r := range append(pa.Rules, pb.Rules...) {
			r.Line = 0
		}
		ba, _ := Compile(pa)
		bb, _ := Compile(pb)
		if !bytes.Equal(ba, bb) {
			t.Fatal("reordering keys, list definitions, CIDRs and ports changed the compiled bytes")
		}
	}
}

func mustCompileString(t *testing.T, src string) *Compiled {
	t.Helper()
	p, fs := Parse("inline.yaml", []byte(src))
	if HasErrors(fs) {
		t.Fatalf("%s", dump(fs))
	}
	b, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCompiledLayout checks the bytes against docs/compiled-policy.md field by field.
func TestCompiledLayout(t *testing.T) {
	data, _ := os.ReadFile("testdata/good/issue-example.yaml")
	p, _ := Parse("x", data)
	b, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if string(b[:8]) != "CRSCIPOL" || le.Uint16(b[8:]) != 1 || le.Uint16(b[10:]) != 64 || int(le.Uint32(b[12:])) != len(b) {
		t.Fatalf("bad header % x", b[:16])
	}
	sum := sha256.Sum256(b[64:])
	if !bytes.Equal(sum[:], b[16:48]) || !bytes.Equal(b[48:64], make([]byte, 16)) {
		t.Fatal("header hash or reserved bytes wrong")
	}
	if len(b)%8 != 0 {
		t.Errorf("size %d is not a multiple of 8", len(b))
	}
	blk := b[64:]
	if blk[0] != 2 || blk[1] != LogDeny|LogAlert || blk[2] != 0 || blk[6] != 0 || le.Uint32(blk[16:]) != noRef {
		t.Errorf("policy block: % x", blk[:20])
	}
	if le.Uint32(blk[8:]) != 1<<0|1<<1 {
		t.Errorf("ignore mask %#x, want read|write", le.Uint32(blk[8:]))
	}
	strOff, strSize := le.Uint32(blk[72:]), le.Uint32(blk[68:])
	strs := b[strOff : strOff+strSize]
	if strs[0] != 0 || !bytes.HasPrefix(strs[1:], []byte("web-api\x00")) {
		t.Errorf("string table starts % q", strs[:12])
	}
	nr, ro := le.Uint32(blk[20:]), le.Uint32(blk[24:])
	if nr != 5 || ro%8 != 0 {
		t.Fatalf("rules: %d at %d", nr, ro)
	}
	rule := func(i int) []byte { return b[ro+uint32(i)*48:][:48] }
	if r := rule(0); r[8] != 1 || r[9] != 1 || r[10] != 3 || le.Uint32(r[32:]) != 3 || le.Uint32(r[44:]) != 12 {
		t.Errorf("rule 0 (no-secrets): % x", r)
	}
	if r := rule(1); r[8] != 2 || r[10] != Inbound || r[11] != ProtoTCP || le.Uint32(r[4:]) == noRef || le.Uint32(r[24:]) != 2 {
		t.Errorf("rule 1 (nginx-listens): % x", r)
	}
	// no-mail: 0.0.0.0/0 and ::/0 merge into one range (::/0 holds v4-mapped space); 25 and 465-587 stay two
	if r := rule(3); le.Uint32(r[16:]) != 1 || le.Uint32(r[24:]) != 2 {
		t.Errorf("rule 3 (no-mail): %d CIDR ranges, %d port ranges", le.Uint32(r[16:]), le.Uint32(r[24:]))
	}
	if r := rule(4); r[8] != 4 || le.Uint32(r[40:]) != 4 {
		t.Errorf("rule 4 (no-ptrace): % x", r)
	}
	// file index: /etc/ twice, then /root/, sorted by key
	nf, fo := le.Uint32(blk[28:]), le.Uint32(blk[32:])
	var keys []string
	for i := uint32(0); i < nf; i++ {
		e := b[fo+16*i:]
		k := strs[le.Uint32(e):]
		keys = append(keys, string(k[:bytes.IndexByte(k, 0)]))
	}
	if strings.Join(keys, " ") != "/etc/ /etc/ /root/" {
		t.Errorf("file index keys %v", keys)
	}
}

func TestMerge(t *testing.T) {
	ports := mergePorts([][2]uint16{{443, 443}, {80, 80}, {81, 90}, {85, 100}, {65535, 65535}, {0, 0}, {1, 1}})
	want := [][2]uint16{{0, 1}, {80, 100}, {443, 443}, {65535, 65535}}
	if len(ports) != len(want) {
		t.Fatalf("ports %v, want %v", ports, want)
	}
	for i := range want {
		if ports[i] != want[i] {
			t.Fatalf("ports %v, want %v", ports, want)
		}
	}
	pfx := func(ss ...string) [][2][16]byte {
		return mergeCIDRs(func() (ps []netip.Prefix) {
			for _, s := range ss {
				pf, _, _ := parseAddress(s)
				ps = append(ps, pf)
			}
			return
		}())
	}
	tests := []struct {
		in   []string
		want int
	}{
		{[]string{"10.0.0.0/9", "10.128.0.0/9"}, 1},                      // adjacent
		{[]string{"10.0.0.0/8", "10.1.0.0/16"}, 1},                       // contained
		{[]string{"10.0.0.0/8", "12.0.0.0/8"}, 2},                        // gap
		{[]string{"0.0.0.0/0", "::/0"}, 1},                               // v4-mapped inside ::/0
		{[]string{"::ffff:0:0/96", "0.0.0.0/0"}, 1},                      // the same range twice
		{[]string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"}, 1}, // no overflow at the top
		{[]string{"192.168.1.1", "192.168.1.2", "192.168.1.4"}, 2},
	}
	for _, tt := range tests {
		if got := pfx(tt.in...); len(got) != tt.want {
			t.Errorf("merge %v: %d ranges, want %d", tt.in, len(got), tt.want)
		}
	}
}

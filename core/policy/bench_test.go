package policy

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// benchPolicy has n file rules with literal and glob paths spread over directories, plus network rules.
func benchPolicy(b *testing.B, n int) *Compiled {
	var sb strings.Builder
	sb.WriteString("apiVersion: crs-ci/v1\nkind: RuntimePolicy\nmetadata: {name: bench}\nspec:\n  rules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "    - {name: f%d, action: deny, file: {paths: [/srv/d%d/secret%d, /srv/d%d/*.key, /opt/app%d/**]}}\n", i, i%17, i, i%13, i)
		fmt.Fprintf(&sb, "    - {name: n%d, action: deny, network: {direction: outbound, addresses: [10.%d.0.0/16], ports: [%d]}}\n", i, i%250, 1000+i)
	}
	p, fs := Parse("bench.yaml", []byte(sb.String()))
	if HasErrors(fs) {
		b.Fatal(dump(fs))
	}
	bin, err := Compile(p)
	if err != nil {
		b.Fatal(err)
	}
	c, err := Load(bin)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkDecideFile: a denied and an allowed (default) file decision with 128 file rules.
func BenchmarkDecideFile(b *testing.B) {
	c := benchPolicy(b, 128)
	for _, tc := range []struct {
		name string
		q    Request
	}{
		{"denied", Request{Category: File, Path: "/srv/d5/server.key", Access: AccessRead, Program: "/usr/bin/cat"}},
		{"default", Request{Category: File, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Access: AccessRead, Program: "/usr/bin/cat"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				c.Decide(tc.q)
			}
		})
	}
}

// BenchmarkDecideNetwork: the last of 128 network rules matches (the worst first-match case).
func BenchmarkDecideNetwork(b *testing.B) {
	c := benchPolicy(b, 128)
	q := Request{Category: Network, Addr: netip.MustParseAddr("10.127.3.4"), Port: 1127, Access: Outbound, Protocol: ProtoTCP}
	for b.Loop() {
		c.Decide(q)
	}
}

// BenchmarkValidateAndCompile: the whole validate + compile + load of the baseline example.
func BenchmarkValidateAndCompile(b *testing.B) {
	data, err := os.ReadFile("../../policies/baseline.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p, _ := Parse("baseline.yaml", data)
		bin, _ := Compile(p)
		if _, err := Load(bin); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAliasBomb: validating the alias-bomb corpus file stays bounded.
func BenchmarkAliasBomb(b *testing.B) {
	data, err := os.ReadFile("testdata/broken/alias-bomb.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		Parse("alias-bomb.yaml", data)
	}
}

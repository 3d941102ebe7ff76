package policy

import (
	"net/netip"
	"os"
	"testing"
)

func mustCompile(t testing.TB, file string) *Compiled {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, fs := Parse(file, data)
	if HasErrors(fs) {
		t.Fatalf("%s: unexpected errors: %+v", file, fs)
	}
	b, err := Compile(p)
	if err != nil {
		t.Fatalf("compiling %s: %v", file, err)
	}
	c, err := Load(b)
	if err != nil {
		t.Fatalf("loading %s: %v", file, err)
	}
	return c
}

func TestDecideIssueExample(t *testing.T) {
	c := mustCompile(t, "testdata/good/issue-example.yaml")
	ip := netip.MustParseAddr
	tests := []struct {
		name   string
		req    Request
		action Action
		rule   string
	}{
		{"shadow read", Request{Category: File, Path: "/etc/shadow", Access: AccessRead}, Deny, "no-secrets"},
		{"root below", Request{Category: File, Path: "/root/.ssh/id_rsa", Access: AccessRead}, Deny, "no-secrets"},
		{"root itself", Request{Category: File, Path: "/root", Access: AccessRead}, Allow, ""},
		{"passwd", Request{Category: File, Path: "/etc/passwd", Access: AccessRead | AccessWrite}, Allow, ""},
		{"shell", Request{Category: Exec, Path: "/bin/sh"}, Deny, "no-shells"},
		{"zsh glob", Request{Category: Exec, Path: "/usr/bin/zsh"}, Deny, "no-shells"},
		{"glob not across /", Request{Category: Exec, Path: "/usr/bin/x/sh"}, Allow, ""},
		{"nginx 443", Request{Category: Network, Addr: ip("0.0.0.0"), Port: 443, Access: Inbound, Protocol: ProtoTCP, Program: "/usr/sbin/nginx"}, Allow, "nginx-listens"},
		{"smtp v4", Request{Category: Network, Addr: ip("192.0.2.1"), Port: 25, Access: Outbound, Protocol: ProtoTCP}, Deny, "no-mail"},
		{"smtp range v6", Request{Category: Network, Addr: ip("2001:db8::1"), Port: 500, Access: Outbound, Protocol: ProtoTCP}, Deny, "no-mail"},
		{"https out", Request{Category: Network, Addr: ip("192.0.2.1"), Port: 443, Access: Outbound, Protocol: ProtoTCP}, Allow, ""},
		{"ptrace amd64", Request{Category: Syscall, Syscall: 101}, Deny, "no-ptrace"},
		{"ptrace arm64", Request{Category: Syscall, Syscall: 117, Arch: "arm64"}, Deny, "no-ptrace"},
		{"read syscall", Request{Category: Syscall, Syscall: 0}, Allow, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := c.Decide(tt.req)
			if d.Action != tt.action || d.RuleName != tt.rule {
				t.Fatalf("got %s by %q (rule %d), want %s by %q", d.Action, d.RuleName, d.Rule, tt.action, tt.rule)
			}
		})
	}
}

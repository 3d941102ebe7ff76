package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeCommandConfig: `crs-ci serve` refuses to start without a valid configuration and policy (exit 2,
// the problem named with its file:line:col) and --check-config validates both without starting.
func TestServeCommandConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pol, err := os.ReadFile("../../serve/testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write("policy.yaml", string(pol))
	write("bad-policy.yaml", "apiVersion: crs-ci/v1\nkind: RuntimePolicy\nspec: {mode: sometimes}\n")
	write("secret", "s3cret\n")
	cfg := func(policy string) string {
		return "apiVersion: crs-ci/v1\nkind: ServeConfig\nlisten: 127.0.0.1:0\nstateDir: state\nwebhook: {secretFile: secret}\n" +
			"registry: 127.0.0.1:5000\npolicy: " + policy + "\nrepositories: [{name: team/*}]\n"
	}
	good := write("good.yaml", cfg("policy.yaml"))
	badPolicy := write("bad-policy-cfg.yaml", cfg("bad-policy.yaml"))
	badCfg := write("bad.yaml", cfg("policy.yaml")+"queueSize: 0\nconcurrency: -1\n")
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"check-config", []string{"serve", "--config", good, "--check-config"}, 0, []string{"valid", `"serve-test"`, "1 repository rule"}},
		{"no config", []string{"serve"}, 2, []string{"--config FILE is required"}},
		{"an argument", []string{"serve", "--config", good, "extra"}, 2, []string{"serve takes no arguments"}},
		{"bad log level", []string{"serve", "--config", good, "--log-level", "loud"}, 2, []string{"--log-level"}},
		{"invalid config", []string{"serve", "--config", badCfg}, 2, []string{"bad.yaml:10:1: concurrency must be a positive number"}},
		{"invalid policy", []string{"serve", "--config", badPolicy, "--check-config"}, 2, []string{"bad-policy.yaml", "is invalid"}},
		{"missing config file", []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, 2, []string{"nope.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := crs(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
}

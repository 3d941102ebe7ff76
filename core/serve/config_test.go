package serve

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

func noEnv(string) string { return "" }

func TestLoadConfigValid(t *testing.T) {
	c, err := LoadConfig("testdata/config/valid.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata/config")
	checks := []struct {
		name      string
		got, want any
	}{
		{"secret from file", c.Secret(), "s3cret-for-tests"},
		{"stateDir relative to the file", c.StateDir, filepath.Join("testdata/config", "state")},
		{"policy relative to the file", c.Policy, filepath.Join("testdata", "policy.yaml")},
		{"default webhook path", c.Webhook.Path, "/notifications"},
		{"default header", c.Webhook.Header, "Authorization"},
		{"concurrency", c.Concurrency, 3},
		{"queueSize", c.QueueSize, 7},
		{"jobTimeout", c.JobTimeout, 2 * time.Minute},
		{"backoff", c.Backoff, 2 * time.Second},
		{"default maxBackoff", c.MaxBackoff, 5 * time.Minute},
		{"default shutdownGrace", c.ShutdownGrace, 30 * time.Second},
		{"default tags", strings.Join(c.Repositories[1].Tags, ","), "*"},
		{"default target", c.Repositories[0].Target, DefaultTarget},
		{"own suffix", OwnSuffix(c.Repositories[0].Target), "-layered"},
		{"no suffix for another repository", OwnSuffix(c.Repositories[1].Target), ""},
		{"target of a tag", c.TargetFor(&c.Repositories[0], "team/app", "v1"), "127.0.0.1:5000/team/app:v1-layered"},
		{"target in another repository", c.TargetFor(&c.Repositories[1], "mirror", "v1"), "127.0.0.1:5000/instrumented/mirror:v1"},
		{"rule match", c.Rule("team/app", "v2") == &c.Repositories[0], true},
		{"tag not selected", c.Rule("team/app", "dev") == nil, true},
		{"glob stays in a component", c.Rule("team/a/b", "v1") == nil, true},
		{"second rule, every tag", c.Rule("mirror", "anything") == &c.Repositories[1], true},
	}
	_ = abs
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestParseConfigErrors: every problem is reported at once, each at its FILE:LINE:COL, as a usage error.
func TestParseConfigErrors(t *testing.T) {
	base := "apiVersion: crs-ci/v1\nkind: ServeConfig\nstateDir: /tmp/x\nregistry: r:5000\npolicy: p.yaml\nrepositories:\n  - name: a\n"
	cases := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"no secret", base, nil, []string{"c.yaml:1:1: no webhook secret", "CRS_WEBHOOK_SECRET"}},
		{"secret from the environment", base, map[string]string{"CRS_WEBHOOK_SECRET": "x"}, nil},
		{"wrong kind", strings.Replace(base, "kind: ServeConfig", "kind: Policy", 1), map[string]string{"CRS_WEBHOOK_SECRET": "x"},
			[]string{`c.yaml:2:1: kind "Policy": want ServeConfig`}},
		{"unknown field", base + "concurency: 3\n", nil, []string{"field concurency not found"}},
		{"bad duration", base + "jobTimeout: soon\n", nil, []string{"c.yaml", "soon"}},
		{"several problems in one pass", "apiVersion: crs-ci/v1\nkind: ServeConfig\nlisten: nowhere\nrepositories:\n  - name: a\n    tags: ['[']\n  - name: b\n    target: '{registry}/{repository}:{tag}'\nqueueSize: -1\n",
			map[string]string{"CRS_WEBHOOK_SECRET": "x"},
			[]string{`c.yaml:3:1: listen "nowhere"`, "c.yaml:1:1: stateDir is required", "registry \"\"", "policy is required",
				"c.yaml:6:12: repositories[0].tags[0]", "c.yaml:8:5: repositories[1].target", "would overwrite the pushed tag",
				"c.yaml:9:1: queueSize must be a positive number"}},
		{"target without a tag", base + "    target: '{registry}/x:latest'\n", map[string]string{"CRS_WEBHOOK_SECRET": "x"},
			[]string{"c.yaml:8:5: repositories[0].target", "must contain {tag}"}},
		{"vault and username", base + "credentials:\n  username: u\n  vault: {path: secret/x, engine: kv-v3}\n", map[string]string{"CRS_WEBHOOK_SECRET": "x"},
			[]string{"c.yaml:10:3: credentials: give either", "vault.address is required", "c.yaml:10:27: credentials.vault.engine \"kv-v3\""}},
		{"no repositories", "apiVersion: crs-ci/v1\nkind: ServeConfig\nstateDir: /s\nregistry: r\npolicy: p\n", map[string]string{"CRS_WEBHOOK_SECRET": "x"},
			[]string{"name at least one repository"}},
		{"missing secret file", base + "webhook: {secretFile: /nonexistent/secret}\n", nil, []string{"c.yaml:8:11: webhook.secretFile", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tc.yaml), func(k string) string { return tc.env[k] })
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if exitcode.Of(err) != exitcode.Usage {
				t.Errorf("exit code %d, want %d (usage)", exitcode.Of(err), exitcode.Usage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestDeployConfigExample: the example configuration shipped in deploy/ is valid.
func TestDeployConfigExample(t *testing.T) {
	for _, f := range []string{"../../deploy/serve.yaml"} {
		env := map[string]string{"CRS_WEBHOOK_SECRET": "x"}
		c, err := LoadConfig(f, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Rule("team/app", "v1.0.0") == nil {
			t.Errorf("%s: the example rule does not select team/app:v1.0.0", f)
		}
	}
}

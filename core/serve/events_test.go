package serve

import (
	"os"
	"testing"
)

func testConfig(t *testing.T) *Config {
	t.Helper()
	c, err := LoadConfig("testdata/config/valid.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDecide: which registry events become jobs, and why the others do not.
func TestDecide(t *testing.T) {
	c := testConfig(t)
	const d = "sha256:2b8a8d1d9f6e1f4b5c3a7e0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a392817065"
	ev := func(action, mt, repo, tag, digest string) Event {
		var e Event
		e.Action, e.Target.MediaType, e.Target.Repository, e.Target.Tag, e.Target.Digest = action, mt, repo, tag, digest
		return e
	}
	const oci = "application/vnd.oci.image.manifest.v1+json"
	cases := []struct {
		name       string
		e          Event
		wantReason string
		wantTarget string
	}{
		{"tag push", ev("push", oci, "team/app", "v1", d), "", "127.0.0.1:5000/team/app:v1-layered"},
		{"docker v2 manifest", ev("push", "application/vnd.docker.distribution.manifest.v2+json", "team/app", "latest", d), "", "127.0.0.1:5000/team/app:latest-layered"},
		{"index", ev("push", "application/vnd.oci.image.index.v1+json", "team/app", "v2", d), "", "127.0.0.1:5000/team/app:v2-layered"},
		{"other repository rule", ev("push", oci, "mirror", "dev", d), "", "127.0.0.1:5000/instrumented/mirror:dev"},
		{"pull", ev("pull", oci, "team/app", "v1", d), IgnoreNotPush, ""},
		{"delete", ev("delete", oci, "team/app", "v1", d), IgnoreNotPush, ""},
		{"blob", ev("push", "application/octet-stream", "team/app", "", d), IgnoreNotManifest, ""},
		{"child manifest by digest", ev("push", oci, "team/app", "", d), IgnoreNoTag, ""},
		{"own output by suffix", ev("push", oci, "team/app", "v1-layered", d), IgnoreOwnOutput, ""},
		{"tag not selected", ev("push", oci, "team/app", "dev", d), IgnoreNoRule, ""},
		{"repository not selected", ev("push", oci, "other/app", "v1", d), IgnoreNoRule, ""},
		{"bad digest", ev("push", oci, "team/app", "v1", "sha256:abc"), IgnoreBadEvent, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dec := c.Decide(tc.e)
			if tc.wantReason != "" {
				if dec.Job != nil || dec.Reason != tc.wantReason {
					t.Fatalf("got job %v reason %q, want reason %q", dec.Job, dec.Reason, tc.wantReason)
				}
				return
			}
			if dec.Job == nil {
				t.Fatalf("ignored (%s), want a job", dec.Reason)
			}
			if dec.Job.Target != tc.wantTarget || dec.Job.Key != tc.e.Target.Repository+":"+tc.e.Target.Tag+"@"+d {
				t.Fatalf("job %+v, want target %s", dec.Job, tc.wantTarget)
			}
		})
	}
}

// TestParseEnvelope reads an envelope in the shape distribution 2.8 sends (a manifest and a blob event).
func TestParseEnvelope(t *testing.T) {
	b, err := os.ReadFile("testdata/events/push-tag.json")
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Events) != 2 || env.Events[0].Target.Tag != "v1.2" || env.Events[0].Request.Host != "127.0.0.1:5000" {
		t.Fatalf("envelope %+v", env)
	}
	c := testConfig(t)
	if d := c.Decide(env.Events[0]); d.Job == nil || d.Job.Target != "127.0.0.1:5000/team/app:v1.2-layered" {
		t.Fatalf("first event: %+v", d)
	}
	if d := c.Decide(env.Events[1]); d.Reason != IgnoreNotManifest {
		t.Fatalf("blob event: %+v", d)
	}
	if _, err := ParseEnvelope([]byte(`{"events": [`)); err == nil {
		t.Fatal("a truncated envelope parsed")
	}
}

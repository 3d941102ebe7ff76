package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// fixtureDigest is the digest of testdata/events/push-tag.json and testdata/harbor/push-artifact.json.
const fixtureDigest = "sha256:2b8a8d1d9f6e1f4b5c3a7e0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a392817065"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// harborPayload is a Harbor "Default" payload of one event type with one resource.
func harborPayload(typ, repoFullName, tag, digest, resourceURL string) []byte {
	p := HarborPayload{Type: typ, OccurAt: 1795788483, Operator: "ci-robot", EventData: &HarborEventData{
		Resources:  []HarborResource{{Digest: digest, Tag: tag, ResourceURL: resourceURL}},
		Repository: &HarborRepository{RepoFullName: repoFullName, RepoType: "private"},
	}}
	if ns, name, ok := strings.Cut(repoFullName, "/"); ok {
		p.EventData.Repository.Namespace, p.EventData.Repository.Name = ns, name
	}
	b, _ := json.Marshal(p)
	return b
}

// TestParseHarbor: Harbor payloads in the Default format parse; bodies in another shape, and push events
// missing what a job needs, are errors (the webhook answers 400); other event types parse and are ignored.
func TestParseHarbor(t *testing.T) {
	cases := []struct {
		name    string
		body    []byte
		wantErr string // "" = parses
		check   func(t *testing.T, p *HarborPayload)
	}{
		{"push fixture", readFixture(t, "harbor/push-artifact.json"), "", func(t *testing.T, p *HarborPayload) {
			r := p.EventData.Resources[0]
			if p.Type != HarborPushArtifact || p.OccurAt != 1795788483 || p.Operator != "ci-robot" ||
				r.Digest != fixtureDigest || r.Tag != "v1.2" || r.ResourceURL != "harbor.example.com/team/app:v1.2" ||
				p.EventData.Repository.FullName() != "team/app" || p.EventData.Repository.Namespace != "team" {
				t.Fatalf("payload %+v resource %+v repository %+v", p, r, p.EventData.Repository)
			}
		}},
		{"pull fixture", readFixture(t, "harbor/pull-artifact.json"), "", func(t *testing.T, p *HarborPayload) {
			if p.Type != "PULL_ARTIFACT" {
				t.Fatalf("type %q", p.Type)
			}
		}},
		{"scan fixture", readFixture(t, "harbor/scanning-completed.json"), "", nil},
		{"other type without event_data", []byte(`{"type":"QUOTA_EXCEED","occur_at":1,"operator":"x"}`), "", nil},
		{"full name from namespace and name", []byte(`{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"digest":"` + fixtureDigest +
			`","tag":"v1"}],"repository":{"name":"app","namespace":"team"}}}`), "", func(t *testing.T, p *HarborPayload) {
			if p.EventData.Repository.FullName() != "team/app" {
				t.Fatalf("full name %q", p.EventData.Repository.FullName())
			}
		}},
		{"truncated", []byte(`{"type":"PUSH_ARTIFACT","event_data":{`), "decoding the Harbor webhook payload", nil},
		{"not an object", []byte(`["PUSH_ARTIFACT"]`), "decoding the Harbor webhook payload", nil},
		{"no type", []byte(`{"occur_at":1}`), `no "type"`, nil},
		{"distribution envelope", readFixture(t, "events/push-tag.json"), "distribution notification envelope", nil},
		{"cloudevents", []byte(`{"specversion":"1.0","type":"harbor.artifact.pushed","data":{}}`), "Default payload format", nil},
		{"push without event_data", []byte(`{"type":"PUSH_ARTIFACT"}`), `without "event_data"`, nil},
		{"push without repository", []byte(`{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"digest":"` + fixtureDigest + `","tag":"v1"}]}}`),
			`without "event_data.repository"`, nil},
		{"push without resources", []byte(`{"type":"PUSH_ARTIFACT","event_data":{"repository":{"repo_full_name":"team/app"}}}`),
			`without "event_data.resources"`, nil},
		{"wrong field type", []byte(`{"type":"PUSH_ARTIFACT","occur_at":"yesterday"}`), "decoding the Harbor webhook payload", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseHarbor(tc.body)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// TestDecideHarbor: which Harbor resources become jobs (the same ones the distribution path makes), and
// why the others do not.
func TestDecideHarbor(t *testing.T) {
	c := testConfig(t)
	const d = fixtureDigest
	cases := []struct {
		name       string
		body       []byte
		wantReason string
		wantTarget string
		wantHost   string
	}{
		{"push fixture", readFixture(t, "harbor/push-artifact.json"), "", "127.0.0.1:5000/team/app:v1.2-layered", "harbor.example.com"},
		{"host with a port", harborPayload("PUSH_ARTIFACT", "team/app", "v1", d, "harbor.example.com:8443/team/app:v1"), "", "127.0.0.1:5000/team/app:v1-layered", "harbor.example.com:8443"},
		{"no resource_url", harborPayload("PUSH_ARTIFACT", "team/app", "latest", d, ""), "", "127.0.0.1:5000/team/app:latest-layered", ""},
		{"other rule and target", harborPayload("PUSH_ARTIFACT", "mirror", "dev", d, "h/mirror:dev"), "", "127.0.0.1:5000/instrumented/mirror:dev", "h"},
		{"pushed by digest", readFixture(t, "harbor/push-by-digest.json"), IgnoreNoTag, "", ""},
		{"pushed by digest, older resource_url form", harborPayload("PUSH_ARTIFACT", "team/app", d, d, "h/team/app:"+d), IgnoreNoTag, "", ""},
		{"missing tag", harborPayload("PUSH_ARTIFACT", "team/app", "", d, "h/team/app@"+d), IgnoreNoTag, "", ""},
		{"missing digest", harborPayload("PUSH_ARTIFACT", "team/app", "v1", "", "h/team/app:v1"), IgnoreBadEvent, "", ""},
		{"bad digest", harborPayload("PUSH_ARTIFACT", "team/app", "v1", "sha256:abc", "h/team/app:v1"), IgnoreBadEvent, "", ""},
		{"resource_url of another repository", harborPayload("PUSH_ARTIFACT", "team/app", "v1", d, "h/team/other:v1"), IgnoreBadEvent, "", ""},
		{"resource_url without a host", harborPayload("PUSH_ARTIFACT", "team/app", "v1", d, "team"), IgnoreBadEvent, "", ""},
		{"own output", harborPayload("PUSH_ARTIFACT", "team/app", "v1-layered", d, "h/team/app:v1-layered"), IgnoreOwnOutput, "", ""},
		{"tag not selected", harborPayload("PUSH_ARTIFACT", "team/app", "dev", d, "h/team/app:dev"), IgnoreNoRule, "", ""},
		{"repository not selected", harborPayload("PUSH_ARTIFACT", "other/app", "v1", d, "h/other/app:v1"), IgnoreNoRule, "", ""},
		{"pull", readFixture(t, "harbor/pull-artifact.json"), IgnoreNotPush, "", ""},
		{"delete", harborPayload("DELETE_ARTIFACT", "team/app", "v1", d, "h/team/app:v1"), IgnoreNotPush, "", ""},
		{"scan completed", readFixture(t, "harbor/scanning-completed.json"), IgnoreNotPush, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseHarbor(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			decs, evs := c.DecideHarbor(p)
			if len(decs) != 1 || len(evs) != 1 {
				t.Fatalf("%d decisions, %d events, want 1", len(decs), len(evs))
			}
			dec := decs[0]
			if tc.wantReason != "" {
				if dec.Job != nil || dec.Reason != tc.wantReason {
					t.Fatalf("got job %v reason %q, want reason %q", dec.Job, dec.Reason, tc.wantReason)
				}
				return
			}
			if dec.Job == nil {
				t.Fatalf("ignored (%s), want a job", dec.Reason)
			}
			j := dec.Job
			wantKey := p.EventData.Repository.FullName() + ":" + p.EventData.Resources[0].Tag + "@" + d
			if j.Target != tc.wantTarget || j.Key != wantKey || j.Digest != d || j.MediaType != "" {
				t.Fatalf("job %+v, want key %s target %s", j, wantKey, tc.wantTarget)
			}
			if evs[0].Host != tc.wantHost {
				t.Errorf("host %q, want %q", evs[0].Host, tc.wantHost)
			}
		})
	}

	// Several resources in one payload: one decision each.
	p := &HarborPayload{Type: HarborPushArtifact, EventData: &HarborEventData{
		Repository: &HarborRepository{RepoFullName: "team/app"},
		Resources:  []HarborResource{{Digest: d, Tag: "v1"}, {Digest: d, Tag: "v1-layered"}, {Digest: digestOf(3), Tag: "latest"}},
	}}
	decs, _ := c.DecideHarbor(p)
	if len(decs) != 3 || decs[0].Job == nil || decs[1].Reason != IgnoreOwnOutput || decs[2].Job == nil || decs[2].Job.Digest != digestOf(3) {
		t.Fatalf("decisions %+v", decs)
	}
}

// TestSplitResourceURL: Harbor's resource_url forms.
func TestSplitResourceURL(t *testing.T) {
	cases := []struct{ in, host, repo, ref string }{
		{"harbor.example.com/team/app:v1.2", "harbor.example.com", "team/app", "v1.2"},
		{"harbor.example.com:8443/team/sub/app:latest", "harbor.example.com:8443", "team/sub/app", "latest"},
		{"10.0.0.5/library/alpine@" + fixtureDigest, "10.0.0.5", "library/alpine", fixtureDigest},
		{"h/team/app", "h", "team/app", ""},
		{"harbor.example.com/team/app:" + fixtureDigest, "harbor.example.com", "team/app", fixtureDigest}, // older Harbor, by digest
		{"https://harbor.example.com/team/app:v1", "harbor.example.com", "team/app", "v1"},
	}
	for _, tc := range cases {
		host, repo, ref, err := SplitResourceURL(tc.in)
		if err != nil || host != tc.host || repo != tc.repo || ref != tc.ref {
			t.Errorf("%s: %q %q %q %v", tc.in, host, repo, ref, err)
		}
	}
	for _, bad := range []string{"", "noslash", "/team/app:v1", "host/"} {
		if _, _, _, err := SplitResourceURL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func postTo(t testing.TB, url, path, header, value string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if value != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// jobRecorder records the jobs its runner is given.
type jobRecorder struct {
	mu   sync.Mutex
	jobs []Job
}

func (r *jobRecorder) run(ctx context.Context, j Job) (Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, j)
	return Outcome{Result: ResultPushed, Verdict: "compatible"}, nil
}

func (r *jobRecorder) list() []Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Job(nil), r.jobs...)
}

// TestHarborWebhookSameJob: Harbor's push payload for an image leads to the same job as the distribution
// registry's notification for it (the runner is given the same repository, tag, digest, target and rule
// flags), and the two are one job: whichever arrives second is a duplicate.
func TestHarborWebhookSameJob(t *testing.T) {
	auth := "Bearer " + testSecret
	distribution, harbor := readFixture(t, "events/push-tag.json"), readFixture(t, "harbor/push-artifact.json")

	runOne := func(path string, body []byte) Job {
		rec := &jobRecorder{}
		s := startService(t, serviceConfig(t, t.TempDir(), nil), rec.run, true)
		if code, m := postTo(t, s.url, path, "Authorization", auth, body); code != http.StatusAccepted || m["accepted"] != 1.0 {
			t.Fatalf("%s: %d %v", path, code, m)
		}
		waitFor(t, "the job of "+path, 5*time.Second, func() bool { return len(rec.list()) == 1 })
		return rec.list()[0]
	}
	fromDistribution := runOne("/notifications", distribution)
	fromHarbor := runOne("/webhook/harbor", harbor)
	same := func(j Job) Job {
		j.MediaType, j.EventID, j.Accepted = "", "", time.Time{}
		return j
	}
	if same(fromDistribution) != same(fromHarbor) {
		t.Fatalf("jobs differ:\ndistribution %+v\nharbor       %+v", fromDistribution, fromHarbor)
	}
	if fromHarbor.Key != "team/app:v1.2@"+fixtureDigest || fromHarbor.Target != "127.0.0.1:5000/team/app:v1.2-layered" {
		t.Fatalf("harbor job %+v", fromHarbor)
	}
	if !strings.HasPrefix(fromHarbor.EventID, "harbor:1795788483:ci-robot") {
		t.Errorf("event id %q", fromHarbor.EventID)
	}

	// One service, both senders (a registry behind Harbor notifying too): one job, one run.
	rec := &jobRecorder{}
	c := serviceConfig(t, t.TempDir(), nil)
	s := startService(t, c, rec.run, true)
	if code, m := postTo(t, s.url, "/webhook/harbor", "Authorization", auth, harbor); code != http.StatusAccepted || m["accepted"] != 1.0 {
		t.Fatalf("harbor: %d %v", code, m)
	}
	if code, m := postTo(t, s.url, "/notifications", "Authorization", auth, distribution); code != http.StatusAccepted ||
		m["accepted"] != 0.0 || m["duplicates"] != 1.0 {
		t.Fatalf("distribution after harbor: %d %v", code, m)
	}
	if code, m := postTo(t, s.url, "/webhook/harbor", "Authorization", auth, harbor); code != http.StatusAccepted || m["duplicates"] != 1.0 {
		t.Fatalf("harbor again: %d %v", code, m)
	}
	waitFor(t, "the job to finish", 5*time.Second, func() bool { return doneResult(s.Service, "team/app:v1.2@"+fixtureDigest) == ResultPushed })
	if n := len(rec.list()); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	b, err := os.ReadFile(filepath.Join(c.StateDir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"op":"accept"`); n != 1 {
		t.Fatalf("%d accept records, want 1:\n%s", n, b)
	}
}

// TestHarborWebhookAnswers: what the Harbor path answers — ignored events are 2xx (Harbor retries anything
// else), malformed payloads 400, and the own-output loop guard holds.
func TestHarborWebhookAnswers(t *testing.T) {
	rec := &jobRecorder{}
	s := startService(t, serviceConfig(t, t.TempDir(), nil), rec.run, false)
	auth := "Bearer " + testSecret
	cases := []struct {
		name        string
		body        []byte
		want        int
		wantIgnored string
	}{
		{"pull", readFixture(t, "harbor/pull-artifact.json"), http.StatusAccepted, IgnoreNotPush},
		{"scan completed", readFixture(t, "harbor/scanning-completed.json"), http.StatusAccepted, IgnoreNotPush},
		{"pushed by digest", readFixture(t, "harbor/push-by-digest.json"), http.StatusAccepted, IgnoreNoTag},
		{"missing digest", harborPayload("PUSH_ARTIFACT", "team/app", "v1", "", "h/team/app:v1"), http.StatusAccepted, IgnoreBadEvent},
		{"own output", harborPayload("PUSH_ARTIFACT", "team/app", "v1-layered", fixtureDigest, "h/team/app:v1-layered"), http.StatusAccepted, IgnoreOwnOutput},
		{"malformed", []byte(`{"type":`), http.StatusBadRequest, ""},
		{"distribution envelope on the harbor path", readFixture(t, "events/push-tag.json"), http.StatusBadRequest, ""},
		{"push without resources", []byte(`{"type":"PUSH_ARTIFACT","event_data":{"repository":{"repo_full_name":"team/app"}}}`), http.StatusBadRequest, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := postTo(t, s.url, "/webhook/harbor", "Authorization", auth, tc.body)
			if code != tc.want {
				t.Fatalf("status %d (%v), want %d", code, m, tc.want)
			}
			if tc.wantIgnored != "" {
				ign, _ := m["ignored"].(map[string]any)
				if ign[tc.wantIgnored] != 1.0 || m["accepted"] != 0.0 {
					t.Fatalf("answer %v, want one %s ignored", m, tc.wantIgnored)
				}
			} else if m["error"] == nil || m["error"] == "" {
				t.Fatalf("400 without an error message: %v", m)
			}
		})
	}
	if st := s.Stats(); len(st.Active) != 0 {
		t.Fatalf("%d jobs recorded, want none", len(st.Active))
	}
	if got := s.Metrics().Get("crs_serve_events_total", "outcome", "ignored:"+IgnoreOwnOutput); got != 1 {
		t.Errorf("own-output counter %v, want 1", got)
	}
	// GET is refused like on the distribution path.
	resp, err := http.Get(s.url + "/webhook/harbor")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without the secret: %d", resp.StatusCode)
	}
}

// TestHarborWebhookAuth: the Harbor path takes the same shared secret, in Authorization by default (Harbor
// sends the webhook policy's "Auth Header" value there) or in webhook.harborHeader; anything else is 401
// and records nothing.
func TestHarborWebhookAuth(t *testing.T) {
	body := readFixture(t, "harbor/push-artifact.json")
	cases := []struct {
		name         string
		harborHeader string // "" = default
		header       string
		value        string
		want         int
	}{
		{"no header", "", "Authorization", "", http.StatusUnauthorized},
		{"wrong secret", "", "Authorization", "Bearer nope", http.StatusUnauthorized},
		{"secret as a prefix", "", "Authorization", testSecret + "x", http.StatusUnauthorized},
		{"basic", "", "Authorization", "Basic " + testSecret, http.StatusUnauthorized},
		{"secret in another header", "", "X-Harbor-Secret", testSecret, http.StatusUnauthorized},
		{"bearer", "", "Authorization", "Bearer " + testSecret, http.StatusAccepted},
		{"bare secret", "", "Authorization", testSecret, http.StatusAccepted},
		{"configured header", "X-Harbor-Secret", "X-Harbor-Secret", testSecret, http.StatusAccepted},
		{"configured header, secret in Authorization", "X-Harbor-Secret", "Authorization", "Bearer " + testSecret, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serviceConfig(t, t.TempDir(), func(c *Config) {
				if tc.harborHeader != "" {
					c.Webhook.HarborHeader = tc.harborHeader
				}
			})
			s := startService(t, c, (&jobRecorder{}).run, false)
			code, _ := postTo(t, s.url, "/webhook/harbor", tc.header, tc.value, body)
			if code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
			wantJobs := 0
			if tc.want == http.StatusAccepted {
				wantJobs = 1
			}
			if n := len(s.Stats().Active); n != wantJobs {
				t.Fatalf("%d jobs recorded, want %d", n, wantJobs)
			}
			if tc.harborHeader != "" {
				// The distribution path keeps webhook.header.
				dist := readFixture(t, "events/push-tag.json")
				if code, _ := postTo(t, s.url, "/notifications", tc.harborHeader, testSecret, dist); code != http.StatusUnauthorized {
					t.Errorf("distribution path with the harbor header: %d, want 401", code)
				}
				if code, _ := postTo(t, s.url, "/notifications", "Authorization", "Bearer "+testSecret, dist); code != http.StatusAccepted {
					t.Errorf("distribution path with its header: %d, want 202", code)
				}
			}
		})
	}
}

// TestHarborConfig: the Harbor path's defaults, a custom path and header, and the configuration errors.
func TestHarborConfig(t *testing.T) {
	base := "apiVersion: crs-ci/v1\nkind: ServeConfig\nstateDir: /tmp/x\nregistry: r:5000\npolicy: p.yaml\nrepositories:\n  - name: a\n"
	env := func(k string) string { return map[string]string{"CRS_WEBHOOK_SECRET": "x"}[k] }
	cases := []struct {
		name                 string
		yaml                 string
		wantPath, wantHeader string
		wantErr              string
	}{
		{"defaults", base, "/webhook/harbor", "Authorization", ""},
		{"header follows webhook.header", base + "webhook: {header: X-Token}\n", "/webhook/harbor", "X-Token", ""},
		{"custom", base + "webhook: {harborPath: /hooks/harbor, harborHeader: X-Harbor-Auth}\n", "/hooks/harbor", "X-Harbor-Auth", ""},
		{"relative path", base + "webhook: {harborPath: harbor}\n", "", "", `c.yaml:8:11: webhook.harborPath "harbor" must start with /`},
		{"same as the distribution path", base + "webhook: {path: /hook, harborPath: /hook}\n", "", "", "give each sender its own path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("c.yaml", []byte(tc.yaml), env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || exitcode.Of(err) != exitcode.Usage {
					t.Fatalf("error %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Webhook.HarborPath != tc.wantPath || c.Webhook.HarborHeader != tc.wantHeader {
				t.Fatalf("harborPath %q harborHeader %q", c.Webhook.HarborPath, c.Webhook.HarborHeader)
			}
		})
	}
}

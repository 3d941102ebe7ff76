package serve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/policy"
)

// deployFile is a file under deploy/.
func deployFile(t *testing.T, rel string) string {
	return filepath.Join(testenv.RepoRoot(t), "deploy", rel)
}

// withSecretFile rewrites the webhook.secretFile of a config text to a temporary file (deployment paths
// such as /run/credentials/… do not exist on a test machine) and returns the new text and the old path.
func withSecretFile(t *testing.T, cfg string) (string, string) {
	t.Helper()
	var doc struct {
		Webhook struct {
			SecretFile string `yaml:"secretFile"`
		} `yaml:"webhook"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Webhook.SecretFile == "" {
		t.Fatal("the example config names no webhook.secretFile")
	}
	tmp := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(tmp, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(cfg, doc.Webhook.SecretFile, tmp, 1), doc.Webhook.SecretFile
}

// TestSystemdUnit validates deploy/systemd/crs-ci-serve.service with `systemd-analyze verify` in a scratch
// root holding the system's units and the built binary at the unit's ExecStart path: no warning may be
// printed (a misspelt key or bad value is only a warning there, so the output is what is checked; the
// negative case shows the check catches one). The example serve.yaml beside it must be valid and agree
// with the unit on the credential and state paths.
func TestSystemdUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze (package systemd) is needed: %v", err)
	}
	unit, err := os.ReadFile(deployFile(t, "systemd/crs-ci-serve.service"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, d := range []string{"etc/systemd/system", "usr/local/bin", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying the system units: %v %s", err, out)
	}
	if out, err := exec.Command("cp", crsBinary(t), filepath.Join(root, "usr/local/bin/crs-ci")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	verify := func(text string) (string, error) {
		if err := os.WriteFile(filepath.Join(root, "etc/systemd/system/crs-ci-serve.service"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", "--root="+root, "/etc/systemd/system/crs-ci-serve.service").CombinedOutput()
		return string(out), err
	}
	cases := []struct {
		name   string
		text   string
		wantOK bool
	}{
		{"the shipped unit", string(unit), true},
		{"a misspelt key", strings.Replace(string(unit), "ProtectClock=yes", "ProtectClok=yes", 1), false},
		{"a missing binary", strings.Replace(string(unit), "/usr/local/bin/crs-ci ", "/usr/local/bin/crs-ci-missing ", 1), false},
	}
	for _, tc := range cases {
		out, err := verify(tc.text)
		ok := err == nil && strings.TrimSpace(out) == ""
		if ok != tc.wantOK {
			t.Errorf("%s: verify ok=%v (err %v), want %v:\n%s", tc.name, ok, err, tc.wantOK, out)
		}
	}

	cfgText, err := os.ReadFile(deployFile(t, "systemd/serve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text, secretPath := withSecretFile(t, string(cfgText))
	c, err := ParseConfig(deployFile(t, "systemd/serve.yaml"), []byte(text), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ path, unitLine string }{
		{secretPath, "LoadCredential=webhook-secret:"},
		{c.Credentials.PasswordFile, "LoadCredential=registry-password:"},
	} {
		name := strings.TrimSuffix(strings.TrimPrefix(want.unitLine, "LoadCredential="), ":")
		if want.path != "/run/credentials/crs-ci-serve.service/"+name || !strings.Contains(string(unit), want.unitLine) {
			t.Errorf("config path %s does not match the unit's %s", want.path, want.unitLine)
		}
	}
	if c.StateDir != "/var/lib/crs-ci" || !strings.Contains(string(unit), "StateDirectory=crs-ci\n") {
		t.Errorf("stateDir %s does not match the unit's StateDirectory", c.StateDir)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/crs-ci serve --config /etc/crs-ci/serve.yaml\n") {
		t.Errorf("ExecStart does not run crs-ci serve with /etc/crs-ci/serve.yaml")
	}
}

// k8sDoc is one Kubernetes object of the manifests, as a generic tree.
type k8sDoc map[string]any

func (d k8sDoc) get(path ...any) any {
	var cur any = map[string]any(d)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			s, ok := cur.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			cur = s[k]
		}
	}
	return cur
}

func (d k8sDoc) str(path ...any) string {
	s, _ := d.get(path...).(string)
	return s
}

// TestKubernetesManifests checks deploy/kubernetes/crs-ci-serve.yaml without a cluster: no schema validator
// runs offline here (kubeconform is neither in Debian nor usable without downloading its schemas), so the
// manifests are parsed with yaml.v3 and the fields the deployment relies on are checked — the kinds and
// API versions, the selector matching the pod labels, one replica with Recreate (one journal writer), the
// probes on the served paths, the config and secret mounts matching the paths in serve.yaml, the volume
// and object references resolving, the grace period longer than shutdownGrace — and the embedded
// serve.yaml and policy are loaded by crs-ci's own parsers.
func TestKubernetesManifests(t *testing.T) {
	f, err := os.Open(deployFile(t, "kubernetes/crs-ci-serve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs := map[string]k8sDoc{}
	dec := yaml.NewDecoder(f)
	for {
		var m map[string]any // (decoding into k8sDoc would make every nested map a k8sDoc too)
		err := dec.Decode(&m)
		d := k8sDoc(m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		docs[d.str("kind")] = d
	}
	wantAPI := map[string]string{"Namespace": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "Service": "v1"}
	for kind, api := range wantAPI {
		d := docs[kind]
		if d == nil {
			t.Fatalf("no %s in the manifests", kind)
		}
		if d.str("apiVersion") != api {
			t.Errorf("%s apiVersion %q, want %s", kind, d.str("apiVersion"), api)
		}
		if d.str("metadata", "name") == "" {
			t.Errorf("%s has no metadata.name", kind)
		}
		if kind != "Namespace" && d.str("metadata", "namespace") != docs["Namespace"].str("metadata", "name") {
			t.Errorf("%s is not in the namespace %s", kind, docs["Namespace"].str("metadata", "name"))
		}
	}
	dep, cm, svc, pvc := docs["Deployment"], docs["ConfigMap"], docs["Service"], docs["PersistentVolumeClaim"]
	pod := k8sDoc(dep.get("spec", "template").(map[string]any))
	ctr := k8sDoc(pod.get("spec", "containers", 0).(map[string]any))

	// One writer of the journal.
	if r, _ := dep.get("spec", "replicas").(int); r != 1 || dep.str("spec", "strategy", "type") != "Recreate" {
		t.Errorf("replicas %v strategy %q: want 1 and Recreate", dep.get("spec", "replicas"), dep.str("spec", "strategy", "type"))
	}
	// The selector matches the pod's labels, and the Service selects the same pods.
	sel, _ := dep.get("spec", "selector", "matchLabels").(map[string]any)
	labels, _ := pod.get("metadata", "labels").(map[string]any)
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("selector %s=%v does not match the pod labels %v", k, v, labels)
		}
	}
	ssel, _ := svc.get("spec", "selector").(map[string]any)
	for k, v := range ssel {
		if labels[k] != v {
			t.Errorf("the Service selector %s=%v does not match the pod labels", k, v)
		}
	}

	// The embedded serve.yaml: valid, listening on the container port, its files where the volumes are.
	cfgText, _ := cm.get("data", "serve.yaml").(string)
	text, secretPath := withSecretFile(t, cfgText)
	c, err := ParseConfig("configmap:serve.yaml", []byte(text), noEnv)
	if err != nil {
		t.Fatalf("the ConfigMap's serve.yaml: %v", err)
	}
	_, port, _ := net.SplitHostPort(c.Listen)
	if fmt.Sprint(ctr.get("ports", 0, "containerPort")) != port || ctr.str("ports", 0, "name") != "http" {
		t.Errorf("container port %v, the config listens on %s", ctr.get("ports", 0, "containerPort"), port)
	}
	if svc.str("spec", "ports", 0, "targetPort") != "http" {
		t.Errorf("the Service targets %q, want the http port", svc.str("spec", "ports", 0, "targetPort"))
	}
	if ctr.str("readinessProbe", "httpGet", "path") != "/readyz" || ctr.str("livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("probes %v %v", ctr.get("readinessProbe"), ctr.get("livenessProbe"))
	}
	mounts := map[string]string{} // mount path → volume name
	ms, _ := ctr.get("volumeMounts").([]any)
	for _, m := range ms {
		mm := k8sDoc(m.(map[string]any))
		mounts[mm.str("mountPath")] = mm.str("name")
	}
	volumes := map[string]k8sDoc{}
	vs, _ := pod.get("spec", "volumes").([]any)
	for _, v := range vs {
		vv := k8sDoc(v.(map[string]any))
		volumes[vv.str("name")] = vv
	}
	for _, name := range mounts {
		if volumes[name] == nil {
			t.Errorf("volume mount %s names no volume", name)
		}
	}
	argsList, _ := ctr.get("args").([]any)
	args := fmt.Sprint(argsList...)
	for _, want := range []struct {
		file   string
		volume string
		source func(v k8sDoc) string // the object the volume comes from
		object string
	}{
		{strings.TrimPrefix(args, "--config"), "config", func(v k8sDoc) string { return v.str("configMap", "name") }, cm.str("metadata", "name")},
		{c.Policy, "config", func(v k8sDoc) string { return v.str("configMap", "name") }, cm.str("metadata", "name")},
		{secretPath, "secrets", func(v k8sDoc) string { return v.str("secret", "secretName") }, "crs-ci-serve"},
		{c.Credentials.PasswordFile, "secrets", func(v k8sDoc) string { return v.str("secret", "secretName") }, "crs-ci-serve"},
		{filepath.Join(c.StateDir, "journal.jsonl"), "state", func(v k8sDoc) string { return v.str("persistentVolumeClaim", "claimName") }, pvc.str("metadata", "name")},
	} {
		dir := filepath.Dir(strings.TrimSpace(want.file))
		if mounts[dir] != want.volume {
			t.Errorf("%s: its directory %s is not the mount of volume %s (mounts %v)", want.file, dir, want.volume, mounts)
			continue
		}
		if got := want.source(volumes[want.volume]); got != want.object {
			t.Errorf("volume %s comes from %q, want %q", want.volume, got, want.object)
		}
		if want.volume == "config" {
			if _, ok := cm.get("data", filepath.Base(strings.TrimSpace(want.file))).(string); !ok {
				t.Errorf("the ConfigMap has no key %s", filepath.Base(want.file))
			}
		}
	}
	if g, _ := pod.get("spec", "terminationGracePeriodSeconds").(int); time.Duration(g)*time.Second <= c.ShutdownGrace {
		t.Errorf("terminationGracePeriodSeconds %d is not longer than shutdownGrace %s", g, c.ShutdownGrace)
	}
	if ctr.get("securityContext", "readOnlyRootFilesystem") != true || pod.get("spec", "securityContext", "runAsNonRoot") != true {
		t.Errorf("the container should run as non-root with a read-only root filesystem")
	}
	polText, _ := cm.get("data", "policy.yaml").(string)
	if p, findings := policy.Parse("configmap:policy.yaml", []byte(polText)); p == nil || policy.HasErrors(findings) {
		t.Errorf("the ConfigMap's policy is invalid: %v", findings)
	}

	// The registry side: deploy/registry-notifications.yml points at this Service's webhook path.
	var regCfg struct {
		Notifications struct {
			Endpoints []struct {
				URL     string              `yaml:"url"`
				Headers map[string][]string `yaml:"headers"`
			} `yaml:"endpoints"`
		} `yaml:"notifications"`
	}
	b, err := os.ReadFile(deployFile(t, "registry-notifications.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &regCfg); err != nil || len(regCfg.Notifications.Endpoints) != 1 {
		t.Fatalf("registry-notifications.yml: %v %+v", err, regCfg)
	}
	ep := regCfg.Notifications.Endpoints[0]
	wantURL := fmt.Sprintf("http://%s.%s.svc:%v%s", svc.str("metadata", "name"), svc.str("metadata", "namespace"), svc.get("spec", "ports", 0, "port"), c.Webhook.Path)
	if ep.URL != wantURL {
		t.Errorf("the registry endpoint %s, want %s", ep.URL, wantURL)
	}
	if len(ep.Headers[c.Webhook.Header]) != 1 || !strings.HasPrefix(ep.Headers[c.Webhook.Header][0], "Bearer ") {
		t.Errorf("the registry endpoint does not send %s: Bearer <secret>", c.Webhook.Header)
	}
}

// TestContainerfile builds deploy/Containerfile with podman (FROM scratch: no base image to fetch) and runs
// the image as a container would run in production: non-root, the configuration mounted read-only, a state
// volume, host networking on loopback. It must answer /healthz, refuse a notification without the secret,
// and stop with exit code 0 on `podman stop` (SIGTERM).
func TestContainerfile(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman (scripts/install-deps.sh): %v", err)
	}
	dir := t.TempDir()
	ctx := filepath.Join(dir, "ctx")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{crsBinary(t): "crs-ci", "/etc/ssl/certs/ca-certificates.crt": "ca-certificates.crt"} {
		if out, err := exec.Command("cp", src, filepath.Join(ctx, dst)).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--tmpdir", filepath.Join(dir, "tmp"), "--storage-driver", "vfs",
		"--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend", "none"}
	pm := func(args ...string) (string, error) {
		out, err := exec.Command(podman, append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = pm("system", "reset", "--force") })
	if out, err := pm("build", "-q", "-f", deployFile(t, "Containerfile"), "-t", "localhost/crs-ci-serve:test", ctx); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}

	// Configuration and state as a deployment provides them.
	conf := filepath.Join(dir, "conf")
	state := filepath.Join(dir, "state")
	for _, d := range []string{conf, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(state, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	pol, _ := os.ReadFile("testdata/policy.yaml")
	files := map[string]string{
		"policy.yaml": string(pol),
		"secret":      testSecret + "\n",
		"serve.yaml": fmt.Sprintf("apiVersion: crs-ci/v1\nkind: ServeConfig\nlisten: %s\nstateDir: /var/lib/crs-ci\n"+
			"webhook: {secretFile: /etc/crs-ci/secret}\nregistry: 127.0.0.1:1\npolicy: /etc/crs-ci/policy.yaml\n"+
			"repositories: [{name: app}]\nshutdownGrace: 5s\n", addr),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := pm("run", "-d", "--name", "crs-serve-test", "--network", "host", "--read-only",
		"--ulimit", "nofile=1024:20000", "--ulimit", "nproc=1024:1024",
		"-v", conf+":/etc/crs-ci:ro", "-v", state+":/var/lib/crs-ci", "localhost/crs-ci-serve:test")
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	logs := func() string { l, _ := pm("logs", "crs-serve-test"); return l }
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not answer /healthz:\n%s", logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Post("http://"+addr+"/notifications", EventsMediaType, bytes.NewReader([]byte(`{"events":[]}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a notification without the secret got %d, want 401", resp.StatusCode)
	}
	if out, err := pm("stop", "-t", "20", "crs-serve-test"); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	code, err := pm("inspect", "--format", "{{.State.ExitCode}}", "crs-serve-test")
	if err != nil || strings.TrimSpace(code) != "0" {
		t.Errorf("exit code after SIGTERM %q (%v):\n%s", code, err, logs())
	}
	if _, err := os.Stat(filepath.Join(state, "journal.jsonl")); err != nil {
		t.Errorf("the journal was not written to the state volume: %v", err)
	}
	if l := logs(); !strings.Contains(l, `"msg":"stopped"`) {
		t.Errorf("no graceful stop in the logs:\n%s", l)
	}
}

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// git runs git in dir and fails the test on error.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// newRepo makes a work tree with one commit and a bare remote to push to.
func newRepo(t *testing.T) (work, remote string) {
	dir := t.TempDir()
	work, remote = filepath.Join(dir, "work"), filepath.Join(dir, "remote.git")
	git(t, dir, "init", "-q", "--bare", remote)
	git(t, dir, "init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "add", "README")
	git(t, work, "commit", "-qm", "first")
	git(t, work, "remote", "add", "origin", remote)
	return work, remote
}

// fakeCRS is a stand-in binary that records its working directory and arguments (one per line) and
// exits with $FAKE_EXIT, so the test sees exactly what the hook runs.
func fakeCRS(t *testing.T) (bin, record string) {
	dir := t.TempDir()
	bin, record = filepath.Join(dir, "crs-ci"), filepath.Join(dir, "argv")
	script := "#!/bin/sh\npwd > " + record + "\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> " + record + "; done\nexit ${FAKE_EXIT:-0}\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, record
}

func push(work string, exitCode string) (string, error) {
	cmd := exec.Command("git", "push", "-q", "origin", "main")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "FAKE_EXIT="+exitCode, "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestHookInstall(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string // after "hook install"
		want  []string // argv the hook runs
		inSub bool     // install from a subdirectory: the hook still runs at the top
	}{
		{
			name: "policy validation without an image",
			args: []string{"--policy", "policies/web.yaml", "--policy", ".crs"},
			want: []string{"policy", "validate", "--ci", "none", "policies/web.yaml", ".crs"},
		},
		{
			name: "dry run of the pipeline's instrument",
			args: []string{"--policy", "policies/web policy.yaml", "--platform", "all", "--fail-on", "warning",
				"--mode", "audit", "--allow-unhookable-entrypoint", "oci:build/image:1.0"},
			want: []string{"instrument", "--dry-run", "--ci", "none", "--policy", "policies/web policy.yaml", "--platform", "all",
				"--fail-on", "warning", "--mode", "audit", "--allow-unhookable-entrypoint", "oci:build/image:1.0"},
			inSub: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work, _ := newRepo(t)
			bin, record := fakeCRS(t)
			dir := work
			if tc.inSub {
				dir = filepath.Join(work, "sub")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"crs-ci", "hook", "install", "--binary", bin, "--repo", dir}, tc.args...)
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("hook install exit %d: %s", code, stderr.String())
			}
			hook := filepath.Join(work, ".git", "hooks", "pre-push")
			st, err := os.Stat(hook)
			if err != nil || st.Mode().Perm()&0o111 == 0 {
				t.Fatalf("hook %s not installed executable: %v %v", hook, st, err)
			}
			if out, err := push(work, "0"); err != nil {
				t.Fatalf("push with a passing hook failed: %v\n%s", err, out)
			}
			rec, err := os.ReadFile(record)
			if err != nil {
				t.Fatalf("the hook did not run the binary: %v", err)
			}
			lines := strings.Split(strings.TrimSuffix(string(rec), "\n"), "\n")
			if lines[0] != work {
				t.Errorf("hook ran in %s, want the top of the work tree %s", lines[0], work)
			}
			if got := lines[1:]; strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
				t.Errorf("hook ran\n  %q\nwant\n  %q", got, tc.want)
			}
			// A rejection and a tool error both block the push, and say which it was.
			git(t, work, "commit", "-q", "--allow-empty", "-m", "second")
			for code, msg := range map[string]string{"1": "rejected (exit 1)", "3": "tool or usage error (exit 3)"} {
				out, err := push(work, code)
				if err == nil {
					t.Errorf("push succeeded although crs-ci exited %s", code)
				}
				if !strings.Contains(out, msg) {
					t.Errorf("exit %s: push output lacks %q:\n%s", code, msg, out)
				}
			}
		})
	}
}

func TestHookInstallRefusals(t *testing.T) {
	work, _ := newRepo(t)
	bin, _ := fakeCRS(t)
	hook := filepath.Join(work, ".git", "hooks", "pre-push")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho mine\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"foreign hook kept", []string{"--policy", "p.yaml"}, 2, "was not written by crs-ci"},
		{"image without a policy", []string{"oci:img"}, 2, "exactly one --policy"},
		{"two images", []string{"--policy", "p.yaml", "a", "b"}, 2, "at most one IMAGE"},
		{"not a git repo", []string{"--repo", t.TempDir()}, 2, "not a git work tree"},
		{"force replaces", []string{"--force", "--policy", "p.yaml"}, 0, ""},
		{"own hook replaced without force", []string{"--policy", "q.yaml"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"crs-ci", "hook", "install", "--binary", bin, "--repo", work}, tc.args...)
			code := run(args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
				t.Fatalf("exit %d stderr %q, want %d and %q", code, stderr.String(), tc.code, tc.msg)
			}
		})
	}
	b, _ := os.ReadFile(hook)
	if !strings.Contains(string(b), "q.yaml") || !strings.HasPrefix(string(b), "#!/bin/sh\n") {
		t.Errorf("final hook is not the last install:\n%s", b)
	}
}

func TestHookHonoursHooksPath(t *testing.T) {
	work, _ := newRepo(t)
	git(t, work, "config", "core.hooksPath", ".githooks")
	bin, _ := fakeCRS(t)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"crs-ci", "hook", "install", "--binary", bin, "--repo", work}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(work, ".githooks", "pre-push")); err != nil {
		t.Fatalf("core.hooksPath ignored: %v", err)
	}
}

// The pre-commit framework's hook definitions call commands that exist, and their file patterns
// select policy files but not policy test files.
func TestPreCommitHooks(t *testing.T) {
	b, err := os.ReadFile("../../../.pre-commit-hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var hooks []struct {
		ID, Name, Entry, Language, Files, Exclude string
		PassFilenames                             *bool    `yaml:"pass_filenames"`
		Stages                                    []string `yaml:"stages"`
	}
	if err := yaml.Unmarshal(b, &hooks); err != nil {
		t.Fatalf(".pre-commit-hooks.yaml: %v", err)
	}
	ids := map[string]bool{}
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	for _, h := range hooks {
		ids[h.ID] = true
		if h.Name == "" || h.Language == "" || h.PassFilenames == nil {
			t.Errorf("hook %s: name, language and pass_filenames are required here", h.ID)
		}
		words := strings.Fields(h.Entry)
		if len(words) < 2 || words[0] != "crs-ci" || app.Command(words[1]) == nil {
			t.Errorf("hook %s: entry %q does not call a crs-ci command", h.ID, h.Entry)
		}
		for _, w := range words {
			if w == "--ci" || w == "--dry-run" || w == "none" || !strings.HasPrefix(w, "-") {
				continue
			}
			t.Errorf("hook %s: unexpected flag %q in entry", h.ID, w)
		}
	}
	for _, id := range []string{"crs-ci-policy-validate", "crs-ci-dry-run"} {
		if !ids[id] {
			t.Errorf("hook %s missing", id)
		}
	}
	v := hooks[0]
	files, exclude := regexp.MustCompile(v.Files), regexp.MustCompile(v.Exclude)
	for path, want := range map[string]bool{
		"policies/web.yaml": true, ".crs/prod/api.yml": true, "policies/web.test.yaml": false,
		"src/config.yaml": false, "policies/README.md": false,
	} {
		if got := files.MatchString(path) && !exclude.MatchString(path); got != want {
			t.Errorf("%s: selected=%v, want %v", path, got, want)
		}
	}
	if !strings.Contains(strings.Join(hooks[1].Stages, ","), "pre-push") {
		t.Errorf("the dry-run hook must run at pre-push, stages %v", hooks[1].Stages)
	}
}

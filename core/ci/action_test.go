package ci_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// The composite action as action.yml declares it.
type actionFile struct {
	Name    string
	Inputs  map[string]struct{ Description, Default string }
	Outputs map[string]struct{ Description, Value string }
	Runs    struct {
		Using string
		Steps []actionStep
	}
}

type actionStep struct {
	Name, ID, If, Shell, Run, Uses string
	Env                            map[string]string
	With                           map[string]string
}

// runner recreates what the GitHub runner gives a composite action's steps: the GITHUB_* files
// (a fresh GITHUB_OUTPUT per step), RUNNER_* folders, the action path, expressions over inputs,
// github, runner and steps contexts, and bash as the shell.
type runner struct {
	t         *testing.T
	root      string // the action's checkout (github.action_path)
	workspace string // GITHUB_WORKSPACE, the working directory of the steps
	temp      string // RUNNER_TEMP
	toolCache string
	summary   string
	envFile   string
	pathFile  string
	extraEnv  []string
}

type runResult struct {
	outputs map[string]string // the action's outputs
	steps   map[string]map[string]string
	log     string // stdout+stderr of every step, as the job log shows it
	code    int    // exit code of the failing step, 0 when all passed
	skipped []string
	summary string
}

func newRunner(t *testing.T, root string) *runner {
	dir := t.TempDir()
	r := &runner{t: t, root: root, workspace: filepath.Join(dir, "ws"), temp: filepath.Join(dir, "tmp"),
		toolCache: filepath.Join(dir, "toolcache"), summary: filepath.Join(dir, "summary.md"),
		envFile: filepath.Join(dir, "env"), pathFile: filepath.Join(dir, "path")}
	for _, d := range []string{r.workspace, r.temp, r.toolCache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{r.summary, r.envFile, r.pathFile} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

var exprRE = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// eval resolves one context reference (inputs.x, github.action_path, runner.x, steps.id.outputs.x).
func (r *runner) eval(ref string, inputs map[string]string, steps map[string]map[string]string) string {
	parts := strings.Split(ref, ".")
	switch {
	case len(parts) == 2 && parts[0] == "inputs":
		v, ok := inputs[parts[1]]
		if !ok {
			r.t.Fatalf("action.yml refers to an undeclared input %q", parts[1])
		}
		return v
	case ref == "github.action_path":
		return r.root
	case ref == "github.workspace":
		return r.workspace
	case ref == "runner.tool_cache":
		return r.toolCache
	case ref == "runner.temp":
		return r.temp
	case ref == "runner.os":
		return "Linux"
	case ref == "runner.arch":
		return "X64"
	case len(parts) == 4 && parts[0] == "steps" && parts[2] == "outputs":
		return steps[parts[1]][parts[3]]
	}
	r.t.Fatalf("expression %q is not understood by this test's runner; keep action.yml's expressions simple", ref)
	return ""
}

func (r *runner) expand(s string, inputs map[string]string, steps map[string]map[string]string) string {
	return exprRE.ReplaceAllStringFunc(s, func(m string) string {
		return r.eval(exprRE.FindStringSubmatch(m)[1], inputs, steps)
	})
}

var condRE = regexp.MustCompile(`^([\w.-]+)\s*(==|!=)\s*'([^']*)'$`)

// cond evaluates an if: of the forms used in action.yml: REF == 'lit', REF != 'lit'.
func (r *runner) cond(s string, inputs map[string]string, steps map[string]map[string]string) bool {
	if s == "" {
		return true
	}
	s = strings.TrimSpace(exprRE.ReplaceAllString(s, "$1"))
	m := condRE.FindStringSubmatch(s)
	if m == nil {
		r.t.Fatalf("if: %q is not understood by this test's runner", s)
	}
	v := r.eval(m[1], inputs, steps)
	return (v == m[3]) == (m[2] == "==")
}

// parseOutputs reads a GITHUB_OUTPUT/GITHUB_ENV file: name=value lines and name<<DELIM blocks.
func parseOutputs(t *testing.T, path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		if name, delim, ok := strings.Cut(lines[i], "<<"); ok {
			var v []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				v = append(v, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("%s: %s<<%s is not closed", path, name, delim)
			}
			out[name] = strings.Join(v, "\n")
		} else if name, v, ok := strings.Cut(lines[i], "="); ok {
			out[name] = v
		}
	}
	return out
}

// run executes the composite action with the given inputs (defaults filled in from action.yml).
func (r *runner) run(given map[string]string) runResult {
	t := r.t
	var af actionFile
	b, err := os.ReadFile(filepath.Join(r.root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &af); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if af.Runs.Using != "composite" {
		t.Fatalf("action.yml runs.using %q, want composite", af.Runs.Using)
	}
	inputs := map[string]string{}
	for k, in := range af.Inputs {
		inputs[k] = in.Default
	}
	for k, v := range given {
		if _, ok := af.Inputs[k]; !ok {
			t.Fatalf("test gives input %q that action.yml does not declare", k)
		}
		inputs[k] = v
	}
	res := runResult{steps: map[string]map[string]string{}}
	var log strings.Builder
	for i, st := range af.Runs.Steps {
		if !r.cond(st.If, inputs, res.steps) {
			continue
		}
		if st.Uses != "" {
			// Marketplace actions are not run here; setup-go's job (Go on PATH) is done by the machine.
			res.skipped = append(res.skipped, st.Uses)
			continue
		}
		if st.Shell != "bash" {
			t.Fatalf("step %q: shell %q; composite run steps need shell: bash", st.Name, st.Shell)
		}
		outFile := filepath.Join(r.temp, fmt.Sprintf("output-%d", i))
		script := filepath.Join(r.temp, fmt.Sprintf("step-%d.sh", i))
		if err := os.WriteFile(outFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(script, []byte(r.expand(st.Run, inputs, res.steps)), 0o644); err != nil {
			t.Fatal(err)
		}
		env := []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"CI=true", "GITHUB_ACTIONS=true", "GITHUB_ACTION_PATH=" + r.root, "GITHUB_WORKSPACE=" + r.workspace,
			"GITHUB_OUTPUT=" + outFile, "GITHUB_STEP_SUMMARY=" + r.summary, "GITHUB_ENV=" + r.envFile,
			"GITHUB_PATH=" + r.pathFile, "RUNNER_OS=Linux", "RUNNER_ARCH=X64", "RUNNER_TEMP=" + r.temp,
			"RUNNER_TOOL_CACHE=" + r.toolCache,
		}
		for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS", "GOTOOLCHAIN"} {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
		for k, v := range parseOutputs(t, r.envFile) {
			env = append(env, k+"="+v)
		}
		for k, v := range st.Env {
			env = append(env, k+"="+r.expand(v, inputs, res.steps))
		}
		env = append(env, r.extraEnv...)
		cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
		cmd.Dir = r.workspace
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		log.Write(out)
		if st.ID != "" {
			res.steps[st.ID] = parseOutputs(t, outFile)
		}
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatalf("step %q: %v", st.Name, err)
			}
			res.code = ee.ExitCode()
			break
		}
	}
	res.log = log.String()
	res.outputs = map[string]string{}
	for k, o := range af.Outputs {
		res.outputs[k] = r.expand(o.Value, inputs, res.steps)
	}
	s, _ := os.ReadFile(r.summary)
	res.summary = string(s)
	return res
}

func repoRoot(t *testing.T) string { return testenv.RepoRoot(t) }

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  string
	shared    string // a temporary folder for the whole test binary, removed by TestMain
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crs-ci-action-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// builtBinary runs the action once with crs-ci-version: source (the real go build from the
// checkout, as a runner would) and returns a copy of the binary it built; later calls reuse it.
func builtBinary(t *testing.T) string {
	buildOnce.Do(func() {
		r := newRunner(t, repoRoot(t))
		res := r.run(map[string]string{"command": "validate", "policy": "/nonexistent/policy.yaml"})
		if strings.Join(res.skipped, ",") != "actions/setup-go@v5" {
			buildErr = fmt.Sprintf("a source install must set up Go and nothing else; used %v", res.skipped)
			return
		}
		bin := res.steps["install"]["bin"]
		if bin == "" {
			buildErr = "install step gave no bin output; log:\n" + res.log
			return
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			buildErr = err.Error()
			return
		}
		builtBin = filepath.Join(shared, "crs-ci")
		if err := os.WriteFile(builtBin, b, 0o755); err != nil {
			buildErr = err.Error()
		}
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return builtBin
}

var (
	releaseOnce  sync.Once
	releaseTable string
	releaseDir   string
)

// viaRelease makes a runner install crs-ci the release way (file:// download of the binary the
// source build made, verified against a checksum table), which is quicker than a build per case.
// It returns the inputs to add to the case's.
func viaRelease(t *testing.T, r *runner, inputs map[string]string) map[string]string {
	bin := builtBinary(t)
	releaseOnce.Do(func() {
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		releaseDir = filepath.Join(shared, "releases")
		if err := os.MkdirAll(filepath.Join(releaseDir, "v0.0.0-test"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(releaseDir, "v0.0.0-test", "crs-ci_v0.0.0-test_linux_amd64"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		releaseTable = filepath.Join(shared, "checksums.txt")
		if err := os.WriteFile(releaseTable, []byte(hex.EncodeToString(sum[:])+"  crs-ci_v0.0.0-test_linux_amd64\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	r.extraEnv = append(r.extraEnv, "CRS_CI_CHECKSUMS="+releaseTable)
	out := map[string]string{"crs-ci-version": "v0.0.0-test", "release-url": "file://" + releaseDir}
	for k, v := range inputs {
		out[k] = v
	}
	return out
}

func TestInstallRelease(t *testing.T) {
	bin := builtBinary(t)
	b, _ := os.ReadFile(bin)
	sum := sha256.Sum256(b)
	good := hex.EncodeToString(sum[:])
	releases := t.TempDir()
	if err := os.MkdirAll(filepath.Join(releases, "v9.9.9"), 0o755); err != nil {
		t.Fatal(err)
	}
	asset := filepath.Join(releases, "v9.9.9", "crs-ci_v9.9.9_linux_amd64")
	for _, tc := range []struct {
		name     string
		version  string
		table    string
		asset    []byte
		code     int
		log      string
		wantBin  bool
		preCache bool
	}{
		{"pinned checksum matches", "v9.9.9", good + "  crs-ci_v9.9.9_linux_amd64\n", b, 0, "downloading file://", true, false},
		{"cached binary is reused", "v9.9.9", good + "  crs-ci_v9.9.9_linux_amd64\n", b, 0, "from the cache", true, true},
		{"tampered asset refused", "v9.9.9", good + "  crs-ci_v9.9.9_linux_amd64\n", append(append([]byte{}, b...), 0), 3, "checksum mismatch", false, false},
		{"unlisted release refused", "v9.9.9", "# empty\n", b, 3, "no sha256 pinned for crs-ci_v9.9.9_linux_amd64", false, false},
		{"bad version", "latest", "", b, 3, "want source or a release tag", false, false},
		{"missing asset", "v9.9.8", strings.Repeat("0", 64) + "  crs-ci_v9.9.8_linux_amd64\n", b, 3, "downloading file://", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(asset, tc.asset, 0o644); err != nil {
				t.Fatal(err)
			}
			table := filepath.Join(t.TempDir(), "checksums.txt")
			if err := os.WriteFile(table, []byte(tc.table), 0o644); err != nil {
				t.Fatal(err)
			}
			r := newRunner(t, repoRoot(t))
			r.extraEnv = []string{"CRS_CI_CHECKSUMS=" + table}
			if tc.preCache {
				dir := filepath.Join(r.toolCache, "crs-ci", tc.version)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "crs-ci"), b, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(asset); err != nil { // proves nothing is downloaded
					t.Fatal(err)
				}
			}
			res := r.run(map[string]string{"crs-ci-version": tc.version, "release-url": "file://" + releases,
				"command": "validate", "policy": "/nonexistent/p.yaml"})
			if tc.wantBin {
				got := res.steps["install"]["bin"]
				if got != filepath.Join(r.toolCache, "crs-ci", "v9.9.9", "crs-ci") {
					t.Fatalf("bin output %q; log:\n%s", got, res.log)
				}
				if !strings.Contains(strings.Join(res.skipped, ","), "actions/cache") || strings.Contains(strings.Join(res.skipped, ","), "setup-go") {
					t.Errorf("a release install must use actions/cache and not setup-go; used %v", res.skipped)
				}
				if res.code == 0 {
					t.Errorf("validating a nonexistent policy passed; log:\n%s", res.log)
				}
			} else if res.code != tc.code {
				t.Fatalf("exit %d, want %d; log:\n%s", res.code, tc.code, res.log)
			}
			if !strings.Contains(res.log, tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, res.log)
			}
			if !tc.wantBin && strings.Contains(res.log, "::error") == false {
				t.Errorf("a refused install must print an ::error annotation:\n%s", res.log)
			}
		})
	}
}

// checksumLineRE is the format of action/checksums.txt lines (sha256sum output for release assets).
var checksumLineRE = regexp.MustCompile(`^[0-9a-f]{64}  crs-ci_v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?_(linux|darwin)_(amd64|arm64)$`)

func checkChecksums(s string) error {
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !checksumLineRE.MatchString(line) {
			return fmt.Errorf("line %d: %q is not `<sha256>  crs-ci_<tag>_<os>_<arch>`", n, line)
		}
		asset := line[66:]
		if seen[asset] {
			return fmt.Errorf("line %d: %s listed twice", n, asset)
		}
		seen[asset] = true
	}
	return nil
}

func TestChecksumsFormat(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "action", "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkChecksums(string(b)); err != nil {
		t.Fatalf("action/checksums.txt: %v", err)
	}
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"good", h + "  crs-ci_v0.1.0_linux_amd64\n" + h + "  crs-ci_v0.1.0_darwin_arm64\n", true},
		{"prerelease", h + "  crs-ci_v0.2.0-rc.1_linux_arm64\n", true},
		{"one space", h + " crs-ci_v0.1.0_linux_amd64\n", false},
		{"upper-case hex", strings.ToUpper(h) + "  crs-ci_v0.1.0_linux_amd64\n", false},
		{"short hash", h[:60] + "  crs-ci_v0.1.0_linux_amd64\n", false},
		{"unknown arch", h + "  crs-ci_v0.1.0_linux_386\n", false},
		{"duplicate", h + "  crs-ci_v0.1.0_linux_amd64\n" + h + "  crs-ci_v0.1.0_linux_amd64\n", false},
	} {
		if err := checkChecksums(tc.in); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

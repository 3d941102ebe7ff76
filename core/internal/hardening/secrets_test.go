package hardening

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// ciEnv is one CI platform's environment as crs-ci detects it (--ci auto), with its files in dir.
type ciEnv struct {
	name string
	env  func(dir string) []string
	mask string // the masking command prefix on stdout ("" = the platform has none crs-ci can print)
}

func ciPlatforms() []ciEnv {
	return []ciEnv{
		{name: "none", env: func(string) []string { return nil }},
		{name: "github", mask: "::add-mask::", env: func(dir string) []string {
			return []string{"GITHUB_ACTIONS=true", "GITHUB_OUTPUT=" + filepath.Join(dir, "gh-output"),
				"GITHUB_STEP_SUMMARY=" + filepath.Join(dir, "gh-summary.md"), "GITHUB_WORKSPACE=" + dir}
		}},
		{name: "azure", mask: "##vso[task.setsecret]", env: func(dir string) []string {
			return []string{"TF_BUILD=True", "AGENT_TEMPDIRECTORY=" + dir, "BUILD_SOURCESDIRECTORY=" + dir}
		}},
		{name: "jenkins", env: func(dir string) []string {
			return []string{"JENKINS_URL=http://jenkins.example.com/", "BUILD_URL=http://jenkins.example.com/job/x/1/", "WORKSPACE=" + dir}
		}},
	}
}

// credSource is one way of handing crs-ci the registry credentials.
type credSource struct {
	name    string
	args    []string
	env     []string
	stdin   string
	masked  []string // values the command reads and must mask on GitHub/Azure
	code    int      // expected exit code of an instrument push
	message string   // substring of stderr for a failing run
}

func credSources(r *testenv.Registry, vaultURL, jwtFile string) []credSource {
	return []credSource{
		{name: "flag and stdin", args: []string{"--username", r.User, "--password-stdin"}, stdin: secretPassword + "\n",
			masked: []string{secretPassword}},
		{name: "environment", env: []string{"CRS_REGISTRY_USERNAME=" + r.User, "CRS_REGISTRY_PASSWORD=" + secretPassword},
			masked: []string{secretPassword}},
		{name: "vault token kv-v2", args: []string{"--vault-address", vaultURL, "--vault-path", "secret/ci/registry"},
			env: []string{"VAULT_TOKEN=" + secretVaultToken}, masked: []string{secretVaultToken, secretPassword, secretVaultUser}},
		{name: "vault approle kv-v1 base64", args: []string{"--vault-address", vaultURL, "--vault-path", "kv/ci/registry-b64",
			"--vault-engine", "kv-v1", "--vault-base64", "--vault-role-id", "role-1"},
			env: []string{"VAULT_SECRET_ID=" + secretSecretID}, masked: []string{secretSecretID, secretPassword, secretVaultUser}},
		{name: "vault token flag", args: []string{"--vault-address", vaultURL, "--vault-path", "secret/ci/registry", "--vault-token", secretVaultToken},
			masked: []string{secretVaultToken, secretPassword, secretVaultUser}},
		{name: "vault jwt file", args: []string{"--vault-address", vaultURL, "--vault-path", "secret/ci/registry",
			"--vault-jwt-role", "ci", "--vault-jwt-file", jwtFile}, masked: append([]string{secretPassword, secretVaultUser}, extraSecrets...)}, // the JWT itself too
		{name: "wrong password (401)", env: []string{"CRS_REGISTRY_USERNAME=" + r.User, "CRS_REGISTRY_PASSWORD=" + secretWrong},
			masked: []string{secretWrong}, code: 3, message: "UNAUTHORIZED"},
	}
}

// extraSecrets are secrets a test made at run time (a signed JWT).
var extraSecrets []string

// allSecrets are every fake credential and the encodings a careless tool could print instead.
func allSecrets() []string {
	var out []string
	for _, s := range append([]string{secretPassword, secretVaultToken, secretVaultUser, secretSecretID, secretWrong}, extraSecrets...) {
		out = append(out, s, base64.StdEncoding.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(secretVaultUser+":"+s)))
	}
	return out
}

var uploadSummary = regexp.MustCompile(`##vso\[task\.uploadsummary\]([^\r\n]+)`)

// assertNoLeak fails when a secret shows anywhere a person or a log could read it: stdout and stderr (except
// on the platform's own masking lines), report files, GitHub's output and summary files, Azure's summary.
func assertNoLeak(t *testing.T, res run, plat ciEnv, files ...string) {
	t.Helper()
	type text struct{ where, body string }
	var texts []text
	for _, line := range strings.Split(res.stdout, "\n") {
		if plat.mask != "" && strings.HasPrefix(line, plat.mask) {
			continue
		}
		texts = append(texts, text{"stdout", line})
	}
	texts = append(texts, text{"stderr", res.stderr})
	for _, m := range uploadSummary.FindAllStringSubmatch(res.stdout, -1) {
		files = append(files, m[1])
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			texts = append(texts, text{f, string(b)})
		}
	}
	for _, tx := range texts {
		for _, s := range allSecrets() {
			if strings.Contains(tx.body, s) {
				t.Errorf("secret %q leaked in %s: %q\n%s", s, tx.where, tx.body, res)
			}
		}
	}
}

// assertMasked checks that each value has a masking line on stdout before any other output line.
func assertMasked(t *testing.T, res run, plat ciEnv, values []string) {
	t.Helper()
	if plat.mask == "" {
		return
	}
	masked := map[string]bool{}
	for _, line := range strings.Split(res.stdout, "\n") {
		if !strings.HasPrefix(line, plat.mask) {
			if line != "" {
				break // the masks must come before anything else
			}
			continue
		}
		masked[strings.TrimPrefix(line, plat.mask)] = true
	}
	for _, v := range values {
		if !masked[v] {
			t.Errorf("%s: %q is not masked (%s…) before the first output line\n%s", plat.name, v, plat.mask, res)
		}
	}
}

// reportArgs asks for every report format into dir and returns the flags and the files.
func reportArgs(dir string) ([]string, []string) {
	var args, files []string
	for _, f := range []string{"json", "markdown", "sarif", "junit", "text"} {
		p := filepath.Join(dir, "report."+f)
		args = append(args, "--report", f+"="+p)
		files = append(files, p)
	}
	return args, files
}

// TestSecretsNeverLeak runs every command with distinctive fake credentials given through flags and stdin,
// the environment, and Vault (token, AppRole, KV v1 and v2, base64 values; the in-process Vault that follows
// its HTTP API), with every output format and report file, under no CI and under GitHub Actions, Azure
// DevOps and Jenkins as crs-ci detects them. No secret may appear in stdout, stderr, a report, or the CI's
// output and summary files; on GitHub and Azure every secret the command reads is masked before anything
// else is printed. A failing push (401) and a dry run are included.
func TestSecretsNeverLeak(t *testing.T) {
	reg := registry(t)
	vault := testenv.StartVault(t)
	vault.AddToken(secretVaultToken)
	vault.PutKV2("secret", "ci/registry", map[string]any{"username": reg.User, "password": reg.Password})
	vault.PutKV1("kv", "ci/registry-b64", map[string]any{
		"username": base64.StdEncoding.EncodeToString([]byte(reg.User)),
		"password": base64.StdEncoding.EncodeToString([]byte(reg.Password))})
	vault.AddAppRole("approle", "ci", "role-1", secretSecretID)
	vault.AddJWTRole("jwt", "ci", "crs-ci", "")
	jwt := vault.SignJWT(map[string]any{"aud": "crs-ci", "sub": "repo:crs-ci/app", "exp": time.Now().Add(time.Hour).Unix()})
	jwtFile := filepath.Join(t.TempDir(), "oidc.jwt")
	if err := os.WriteFile(jwtFile, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extraSecrets = []string{jwt}
	t.Cleanup(func() { extraSecrets = nil })
	src := reg.Host + "/secrets/app:1"
	push(t, reg, "secrets/app:1", bookworm(t))
	cache := t.TempDir()
	policy := testdata(t, "policy.yaml")
	formats := []string{"text", "json", "markdown"}

	t.Run("instrument", func(t *testing.T) {
		for _, cs := range credSources(reg, vault.URL, jwtFile) {
			for i, plat := range ciPlatforms() {
				format := formats[i%len(formats)]
				t.Run(cs.name+"/"+plat.name+"/"+format, func(t *testing.T) {
					dir := t.TempDir()
					rargs, files := reportArgs(dir)
					args := append([]string{"instrument", src, "--policy", policy, "--cache-dir", cache, "--format", format,
						"--tag-suffix", "-s" + fmt.Sprint(i)}, rargs...)
					args = append(args, cs.args...)
					res := crs(t, runOpts{env: append(plat.env(dir), cs.env...), stdin: cs.stdin}, args...)
					if res.code != cs.code || !strings.Contains(res.stderr, cs.message) {
						t.Fatalf("exit %d, want %d with %q\n%s", res.code, cs.code, cs.message, res)
					}
					assertNoLeak(t, res, plat, append(files, filepath.Join(dir, "gh-output"), filepath.Join(dir, "gh-summary.md"))...)
					assertMasked(t, res, plat, cs.masked)
					if pushed := tagDigest(t, reg, fmt.Sprintf("secrets/app:1-s%d", i)); cs.code == 0 && pushed == "" {
						t.Errorf("exit 0 but no -s%d tag in the registry", i)
					}
				})
			}
		}
	})

	t.Run("instrument --dry-run", func(t *testing.T) {
		cs := credSources(reg, vault.URL, jwtFile)[2] // Vault: the most secrets at once
		for i, plat := range ciPlatforms() {
			t.Run(plat.name, func(t *testing.T) {
				dir := t.TempDir()
				rargs, files := reportArgs(dir)
				args := append([]string{"instrument", src, "--policy", policy, "--cache-dir", cache, "--dry-run",
					"--format", formats[i%len(formats)]}, rargs...)
				res := crs(t, runOpts{env: append(plat.env(dir), cs.env...)}, append(args, cs.args...)...)
				if res.code != 0 {
					t.Fatalf("exit %d\n%s", res.code, res)
				}
				assertNoLeak(t, res, plat, append(files, filepath.Join(dir, "gh-output"), filepath.Join(dir, "gh-summary.md"))...)
				assertMasked(t, res, plat, cs.masked)
			})
		}
	})

	// check takes the same registry credential sources as instrument: the secrets sit in the docker config and
	// in CRS_REGISTRY_USERNAME/PASSWORD (which win), and the password is wrong in one run (401 from the registry).
	t.Run("check", func(t *testing.T) {
		for _, pass := range []string{secretPassword, secretWrong} {
			for i, plat := range ciPlatforms() {
				format := []string{"text", "json"}[i%2]
				t.Run(fmt.Sprintf("%s/%s/%s", map[bool]string{true: "wrong", false: "right"}[pass == secretWrong], plat.name, format), func(t *testing.T) {
					dir := t.TempDir()
					dockerCfg := filepath.Join(dir, "docker")
					os.MkdirAll(dockerCfg, 0o700)
					auth := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, base64.StdEncoding.EncodeToString([]byte(reg.User+":"+pass)))
					if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"), []byte(auth), 0o600); err != nil {
						t.Fatal(err)
					}
					rargs, files := reportArgs(dir)
					env := append(plat.env(dir), "DOCKER_CONFIG="+dockerCfg, "CRS_REGISTRY_USERNAME="+reg.User, "CRS_REGISTRY_PASSWORD="+pass, "VAULT_TOKEN="+secretVaultToken)
					res := crs(t, runOpts{env: env}, append([]string{"check", src, "--cache-dir", cache, "--format", format}, rargs...)...)
					want := 0
					if pass == secretWrong {
						want = 3
					}
					if res.code != want {
						t.Fatalf("exit %d, want %d\n%s", res.code, want, res)
					}
					assertNoLeak(t, res, plat, append(files, filepath.Join(dir, "gh-output"), filepath.Join(dir, "gh-summary.md"))...)
				})
			}
		}
	})

	t.Run("policy validate", func(t *testing.T) {
		broken := filepath.Join(testenv.RepoRoot(t), "core", "ci", "testdata", "broken-policy.yaml")
		for i, plat := range ciPlatforms() {
			for _, format := range []string{"text", "json", "sarif", "junit", "markdown"} {
				t.Run(plat.name+"/"+format, func(t *testing.T) {
					dir := t.TempDir()
					rargs, files := reportArgs(dir)
					file := policy
					want := 0
					if i%2 == 1 {
						file, want = broken, 1
					}
					env := append(plat.env(dir), "CRS_REGISTRY_PASSWORD="+secretPassword, "VAULT_TOKEN="+secretVaultToken, "VAULT_SECRET_ID="+secretSecretID)
					res := crs(t, runOpts{env: env}, append([]string{"policy", "validate", file, "--format", format}, rargs...)...)
					if res.code != want {
						t.Fatalf("exit %d, want %d\n%s", res.code, want, res)
					}
					assertNoLeak(t, res, plat, append(files, filepath.Join(dir, "gh-output"), filepath.Join(dir, "gh-summary.md"))...)
				})
			}
		}
	})
}

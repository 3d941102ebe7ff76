package creds

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// TestVault reads registry credentials from the in-process Vault (testenv.Vault follows Vault's documented
// HTTP API) with every login method and both KV engines, and checks the errors users get.
func TestVault(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_ADDR", "")
	v := testenv.StartVault(t)
	v.PutKV2("secret", "ci/registry", map[string]any{"username": "robot", "password": "hunter2"})
	v.PutKV2("secret", "ci/b64", map[string]any{"username": base64.StdEncoding.EncodeToString([]byte("robot64")),
		"password": base64.StdEncoding.EncodeToString([]byte("pa:ss\nword"))})
	v.PutKV2("secret", "ci/custom", map[string]any{"user": "art", "token": "artifactory-key"})
	v.PutKV2("secret", "ci/gone", map[string]any{"username": "x", "password": "y"})
	v.DeleteKV2("secret", "ci/gone")
	v.PutKV2("secret", "ci/notb64", map[string]any{"username": "!!!", "password": "###"})
	v.PutKV1("kv", "ci/registry", map[string]any{"username": "v1robot", "password": "v1pass"})
	v.PutKV2("team/kv", "registry", map[string]any{"username": "nested", "password": "np"})
	v.AddToken("root-token")
	v.AddToken("narrow-token", "kv/")
	v.AddAppRole("approle", "ci", "role-1", "secret-1", "secret/")
	v.AddJWTRole("jwt", "github", "https://github.com/crs-ci", "repo:crs-ci/crs-ci:ref:refs/heads/main", "secret/data/ci/")
	good := v.SignJWT(map[string]any{"aud": "https://github.com/crs-ci", "sub": "repo:crs-ci/crs-ci:ref:refs/heads/main",
		"exp": time.Now().Add(time.Hour).Unix()})
	expired := v.SignJWT(map[string]any{"aud": "https://github.com/crs-ci", "sub": "repo:crs-ci/crs-ci:ref:refs/heads/main",
		"exp": time.Now().Add(-time.Hour).Unix()})
	wrongAud := v.SignJWT(map[string]any{"aud": "sts.amazonaws.com", "sub": "repo:crs-ci/crs-ci:ref:refs/heads/main",
		"exp": time.Now().Add(time.Hour).Unix()})
	jwtFile := filepath.Join(t.TempDir(), "oidc.jwt")
	if err := os.WriteFile(jwtFile, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		vo        VaultOptions
		env       map[string]string
		wantUser  string
		wantPass  string
		wantCode  int
		errSubstr string
	}{
		{name: "token, kv-v2", vo: VaultOptions{Token: "root-token", Path: "secret/ci/registry", Engine: KVv2}, wantUser: "robot", wantPass: "hunter2"},
		{name: "token, kv-v2 is the default", vo: VaultOptions{Token: "root-token", Path: "secret/ci/registry"}, wantUser: "robot", wantPass: "hunter2"},
		{name: "token, kv-v1", vo: VaultOptions{Token: "narrow-token", Path: "kv/ci/registry", Engine: KVv1}, wantUser: "v1robot", wantPass: "v1pass"},
		{name: "base64 values", vo: VaultOptions{Token: "root-token", Path: "secret/ci/b64", Base64: true}, wantUser: "robot64", wantPass: "pa:ss\nword"},
		{name: "custom key names", vo: VaultOptions{Token: "root-token", Path: "secret/ci/custom", UsernameKey: "user", PasswordKey: "token"}, wantUser: "art", wantPass: "artifactory-key"},
		{name: "mount with a slash", vo: VaultOptions{Token: "root-token", Path: "team/kv/registry", Mount: "team/kv"}, wantUser: "nested", wantPass: "np"},
		{name: "VAULT_TOKEN from the environment", vo: VaultOptions{Path: "secret/ci/registry"}, env: map[string]string{"VAULT_TOKEN": "root-token"}, wantUser: "robot", wantPass: "hunter2"},
		{name: "AppRole login", vo: VaultOptions{RoleID: "role-1", Path: "secret/ci/registry"}, env: map[string]string{EnvVaultSecretID: "secret-1"}, wantUser: "robot", wantPass: "hunter2"},
		{name: "AppRole from env", vo: VaultOptions{Path: "secret/ci/registry"}, env: map[string]string{EnvVaultRoleID: "role-1", EnvVaultSecretID: "secret-1"}, wantUser: "robot", wantPass: "hunter2"},
		{name: "JWT login from env", vo: VaultOptions{JWTRole: "github", Path: "secret/ci/registry"}, env: map[string]string{EnvVaultJWT: good}, wantUser: "robot", wantPass: "hunter2"},
		{name: "JWT login from file", vo: VaultOptions{JWTRole: "github", JWTFile: jwtFile, Path: "secret/ci/registry"}, wantUser: "robot", wantPass: "hunter2"},

		{name: "wrong token", vo: VaultOptions{Token: "nope", Path: "secret/ci/registry"}, wantCode: exitcode.Operational, errSubstr: "permission denied"},
		{name: "token without access to the path", vo: VaultOptions{Token: "narrow-token", Path: "secret/ci/registry"}, wantCode: exitcode.Operational, errSubstr: "403"},
		{name: "missing secret", vo: VaultOptions{Token: "root-token", Path: "secret/ci/none"}, wantCode: exitcode.Usage, errSubstr: "no secret there"},
		{name: "kv-v1 read of a kv-v2 mount", vo: VaultOptions{Token: "root-token", Path: "secret/ci/registry", Engine: KVv1}, wantCode: exitcode.Usage, errSubstr: "--vault-engine"},
		{name: "deleted version", vo: VaultOptions{Token: "root-token", Path: "secret/ci/gone"}, wantCode: exitcode.Usage, errSubstr: "deleted version"},
		{name: "missing key", vo: VaultOptions{Token: "root-token", Path: "secret/ci/custom"}, wantCode: exitcode.Usage, errSubstr: `no key "username" (keys: token, user)`},
		{name: "bad base64", vo: VaultOptions{Token: "root-token", Path: "secret/ci/notb64", Base64: true}, wantCode: exitcode.Usage, errSubstr: "not valid base64"},
		{name: "bad AppRole secret", vo: VaultOptions{RoleID: "role-1", Path: "secret/ci/registry"}, env: map[string]string{EnvVaultSecretID: "hunter2-wrong"}, wantCode: exitcode.Operational, errSubstr: "invalid role or secret ID"},
		{name: "expired JWT", vo: VaultOptions{JWTRole: "github", Path: "secret/ci/registry"}, env: map[string]string{EnvVaultJWT: expired}, wantCode: exitcode.Operational, errSubstr: "expired"},
		{name: "JWT for another audience", vo: VaultOptions{JWTRole: "github", Path: "secret/ci/registry"}, env: map[string]string{EnvVaultJWT: wrongAud}, wantCode: exitcode.Operational, errSubstr: "audience"},
		{name: "unknown JWT role", vo: VaultOptions{JWTRole: "gitlab", Path: "secret/ci/registry"}, env: map[string]string{EnvVaultJWT: good}, wantCode: exitcode.Operational, errSubstr: `role "gitlab" could not be found`},
		{name: "JWT role without token", vo: VaultOptions{JWTRole: "github", Path: "secret/ci/registry"}, wantCode: exitcode.Usage, errSubstr: "needs a token"},
		{name: "JWT role limited to its path", vo: VaultOptions{JWTRole: "github", Path: "secret/team/other"}, env: map[string]string{EnvVaultJWT: good}, wantCode: exitcode.Operational, errSubstr: "permission denied"},
		{name: "bad engine", vo: VaultOptions{Token: "root-token", Path: "secret/ci/registry", Engine: "kv-v3"}, wantCode: exitcode.Usage, errSubstr: "kv-v3"},
		{name: "path without mount", vo: VaultOptions{Token: "root-token", Path: "registry"}, wantCode: exitcode.Usage, errSubstr: "MOUNT/PATH"},
		{name: "no path", vo: VaultOptions{Token: "root-token"}, wantCode: exitcode.Usage, errSubstr: "--vault-path is required"},
		{name: "unreachable vault", vo: VaultOptions{Address: "http://127.0.0.1:1", Token: "root-token", Path: "secret/ci/registry"}, wantCode: exitcode.Operational, errSubstr: "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir()) // no ~/.vault-token
			if tok := tt.env["VAULT_TOKEN"]; tok != "" {
				t.Setenv("VAULT_TOKEN", tok)
			}
			vo := tt.vo
			if vo.Address == "" {
				vo.Address = v.URL
			}
			u, p, err := vo.Read(context.Background(), env(tt.env))
			if tt.wantCode != 0 {
				if err == nil {
					t.Fatalf("want an error, got %q/%q", u, p)
				}
				if got := exitcode.Of(err); got != tt.wantCode {
					t.Errorf("exit code %d, want %d: %v", got, tt.wantCode, err)
				}
				if !strings.Contains(err.Error(), tt.errSubstr) {
					t.Errorf("error %q does not say %q", err, tt.errSubstr)
				}
				for _, secret := range []string{"hunter2", "secret-1", "v1pass", good} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error shows a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u != tt.wantUser || p != tt.wantPass {
				t.Errorf("got %q/%q, want %q/%q", u, p, tt.wantUser, tt.wantPass)
			}
		})
	}
}

// TestVaultTokenHelper: with no token given, the token the `vault login` token helper stored
// (~/.vault-token) is used.
func TestVaultTokenHelper(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	v := testenv.StartVault(t)
	v.PutKV2("secret", "ci/registry", map[string]any{"username": "robot", "password": "hunter2"})
	v.AddToken("helper-token")
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("VAULT_CONFIG_PATH", filepath.Join(home, "no-such-config.hcl"))
	vo := VaultOptions{Address: v.URL, Path: "secret/ci/registry"}
	if _, _, err := vo.Read(context.Background(), env(nil)); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("without any token: want a 'no token' error, got %v", err)
	}
	if err := os.WriteFile(filepath.Join(home, ".vault-token"), []byte("helper-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, p, err := vo.Read(context.Background(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if u != "robot" || p != "hunter2" {
		t.Errorf("got %q/%q", u, p)
	}
	var sawToken bool
	for _, r := range v.Requests() {
		if r == "GET /v1/secret/data/ci/registry" {
			sawToken = true
		}
	}
	if !sawToken {
		t.Errorf("no KV v2 read seen: %v", v.Requests())
	}
}

// TestKeychainFromVault: Keychain uses the Vault credentials for the named registry.
func TestKeychainFromVault(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	v := testenv.StartVault(t)
	v.PutKV1("kv", "reg", map[string]any{"username": "robot", "password": "hunter2"})
	v.AddToken("t")
	kc, err := Keychain(context.Background(), Options{Registries: []string{"reg.example.com"}, Getenv: env(nil),
		Vault: &VaultOptions{Address: v.URL, Token: "t", Path: "kv/reg", Engine: KVv1}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := kc.Resolve(resource("reg.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := a.Authorization()
	if cfg.Username != "robot" || cfg.Password != "hunter2" {
		t.Errorf("got %q/%q", cfg.Username, cfg.Password)
	}
}

type resource string

func (r resource) String() string      { return string(r) }
func (r resource) RegistryStr() string { return string(r) }

// TestResolveSecrets: Resolve returns every secret it read for the command to mask: the password, the
// Vault-read username, and the JWT of a JWT login, read from --vault-jwt-file (which no masked variable holds)
// or VAULT_JWT.
func TestResolveSecrets(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	v := testenv.StartVault(t)
	v.PutKV2("secret", "ci/registry", map[string]any{"username": "robot", "password": "hunter2"})
	v.AddToken("root-token")
	v.AddJWTRole("jwt", "ci", "crs-ci", "", "secret/data/ci/")
	jwt := v.SignJWT(map[string]any{"aud": "crs-ci", "sub": "repo:crs-ci/app", "exp": time.Now().Add(time.Hour).Unix()})
	jwtFile := filepath.Join(t.TempDir(), "oidc.jwt")
	if err := os.WriteFile(jwtFile, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{name: "JWT file", o: Options{Getenv: env(nil), Vault: &VaultOptions{Address: v.URL, Path: "secret/ci/registry", JWTRole: "ci", JWTFile: jwtFile}},
			want: []string{"hunter2", "robot", jwt}},
		{name: "VAULT_JWT", o: Options{Getenv: env(map[string]string{EnvVaultJWT: jwt}), Vault: &VaultOptions{Address: v.URL, Path: "secret/ci/registry", JWTRole: "ci"}},
			want: []string{"hunter2", "robot", jwt}},
		{name: "token", o: Options{Getenv: env(nil), Vault: &VaultOptions{Address: v.URL, Path: "secret/ci/registry", Token: "root-token"}},
			want: []string{"hunter2", "robot"}},
		{name: "environment", o: Options{Getenv: env(map[string]string{EnvUsername: "u", EnvPassword: "pw"})}, want: []string{"pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, secrets, err := Resolve(context.Background(), tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(secrets, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("secrets %q, want %q", secrets, tt.want)
			}
		})
	}
}

package creds

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestKeychain(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		registry  string
		wantUser  string // "" = anonymous / default keychain
		wantPass  string
		wantCode  int
		errSubstr string
	}{
		{name: "password from stdin", opts: Options{Username: "ci", PasswordStdin: true, Stdin: strings.NewReader("s3cret\n")},
			registry: "reg.example.com", wantUser: "ci", wantPass: "s3cret"},
		{name: "password from stdin, CRLF", opts: Options{Username: "ci", PasswordStdin: true, Stdin: strings.NewReader("s3cret\r\n")},
			registry: "reg.example.com", wantUser: "ci", wantPass: "s3cret"},
		{name: "username and password from env", opts: Options{Getenv: env(map[string]string{EnvUsername: "bot", EnvPassword: "pw"})},
			registry: "reg.example.com", wantUser: "bot", wantPass: "pw"},
		{name: "flag username, env password", opts: Options{Username: "u", Getenv: env(map[string]string{EnvPassword: "pw"})},
			registry: "reg.example.com", wantUser: "u", wantPass: "pw"},
		{name: "only for the named registries", opts: Options{Username: "u", Registries: []string{"reg.example.com"}, Getenv: env(map[string]string{EnvPassword: "pw"})},
			registry: "other.example.com", wantUser: ""},
		{name: "named registry matches", opts: Options{Username: "u", Registries: []string{"REG.example.com:5000"}, Getenv: env(map[string]string{EnvPassword: "pw"})},
			registry: "reg.example.com:5000", wantUser: "u", wantPass: "pw"},
		{name: "nothing given: docker keychain", opts: Options{Getenv: env(nil)}, registry: "reg.example.com", wantUser: ""},
		{name: "stdin without username", opts: Options{PasswordStdin: true, Stdin: strings.NewReader("x\n"), Getenv: env(nil)},
			wantCode: exitcode.Usage, errSubstr: "--password-stdin needs --username"},
		{name: "empty stdin", opts: Options{Username: "u", PasswordStdin: true, Stdin: strings.NewReader(""), Getenv: env(nil)},
			wantCode: exitcode.Usage, errSubstr: "stdin held no password"},
		{name: "username without password", opts: Options{Username: "u", Getenv: env(nil)},
			wantCode: exitcode.Usage, errSubstr: "no password"},
		{name: "password without username", opts: Options{Getenv: env(map[string]string{EnvPassword: "leaked"})},
			wantCode: exitcode.Usage, errSubstr: "no username"},
		{name: "explicit and vault together", opts: Options{Username: "u", Vault: &VaultOptions{Address: "http://127.0.0.1:1"}, Getenv: env(nil)},
			wantCode: exitcode.Usage, errSubstr: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", t.TempDir()) // an empty docker config: the default keychain gives anonymous
			kc, err := Keychain(context.Background(), tt.opts)
			if tt.wantCode != 0 {
				if err == nil {
					t.Fatalf("want error (code %d), got none", tt.wantCode)
				}
				if got := exitcode.Of(err); got != tt.wantCode {
					t.Errorf("exit code %d, want %d (%v)", got, tt.wantCode, err)
				}
				if !strings.Contains(err.Error(), tt.errSubstr) {
					t.Errorf("error %q does not say %q", err, tt.errSubstr)
				}
				if strings.Contains(err.Error(), "leaked") {
					t.Errorf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reg, err := name.NewRegistry(tt.registry)
			if err != nil {
				t.Fatal(err)
			}
			a, err := kc.Resolve(reg)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantUser == "" {
				if a != authn.Anonymous && (cfg.Username != "" || cfg.Password != "") {
					t.Errorf("want anonymous for %s, got user %q", tt.registry, cfg.Username)
				}
				return
			}
			if cfg.Username != tt.wantUser || cfg.Password != tt.wantPass {
				t.Errorf("got %q/%q, want %q/%q", cfg.Username, cfg.Password, tt.wantUser, tt.wantPass)
			}
		})
	}
}

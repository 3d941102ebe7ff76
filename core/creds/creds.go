// Package creds gives crs-ci its registry credentials and its registry transport: the docker config
// keychain by default, a username with a password from stdin or the environment, or a username and password
// read from HashiCorp Vault (token, token helper, AppRole or JWT login; KV v1 or v2); and an HTTP transport
// that honours HTTPS_PROXY/NO_PROXY or --proxy, a custom CA bundle, and skips TLS verification only for the
// registries named as insecure. Secrets never appear in errors, logs or reports.
package creds

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// Environment variables read for explicit registry credentials.
const (
	EnvUsername = "CRS_REGISTRY_USERNAME"
	EnvPassword = "CRS_REGISTRY_PASSWORD"
)

// Options says where registry credentials come from. The zero value means the docker config keychain.
type Options struct {
	// Username with PasswordStdin reads the password from Stdin (one line). Without PasswordStdin the
	// password comes from CRS_REGISTRY_PASSWORD.
	Username      string
	PasswordStdin bool
	Stdin         io.Reader // default os.Stdin

	// Registries the explicit (or Vault) credentials are sent to, e.g. "registry.example.com:5000".
	// Empty: every registry. Other registries still use the docker config keychain.
	Registries []string

	Vault *VaultOptions // nil: Vault is not used

	Getenv func(string) string // default os.Getenv (tests inject their own)
}

func (o Options) getenv(k string) string {
	if o.Getenv != nil {
		return o.Getenv(k)
	}
	return os.Getenv(k)
}

// Keychain returns the keychain for the options: explicit or Vault credentials (for the named registries)
// first, then the docker config keychain (DOCKER_CONFIG, ~/.docker/config.json, credential helpers).
func Keychain(ctx context.Context, o Options) (authn.Keychain, error) {
	kc, _, err := Resolve(ctx, o)
	return kc, err
}

// Resolve is Keychain that also returns the secret values it read (the password, and the username and the
// JWT of a JWT login when they came from Vault), for the caller to mask in CI logs before anything is printed.
func Resolve(ctx context.Context, o Options) (authn.Keychain, []string, error) {
	user, pass, err := explicit(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	if user == "" && pass == "" {
		return authn.DefaultKeychain, nil, nil
	}
	secrets := []string{pass}
	if o.Vault != nil && o.Vault.Address != "" {
		secrets = append(secrets, user)
		if o.Vault.jwt != "" { // a JWT from --vault-jwt-file is in no variable the command masks by itself
			secrets = append(secrets, o.Vault.jwt)
		}
	}
	return authn.NewMultiKeychain(&static{user: user, pass: pass, hosts: o.Registries}, authn.DefaultKeychain), secrets, nil
}

// explicit returns the username and password given by flags, environment or Vault, or two empty strings.
func explicit(ctx context.Context, o Options) (string, string, error) {
	user := o.Username
	if user == "" {
		user = o.getenv(EnvUsername)
	}
	if o.Vault != nil && o.Vault.Address != "" {
		if user != "" || o.PasswordStdin {
			return "", "", exitcode.Usagef("registry credentials: give either --username/--password-stdin (or %s) or Vault, not both", EnvUsername)
		}
		return o.Vault.Read(ctx, o.getenv)
	}
	if o.PasswordStdin && user == "" {
		return "", "", exitcode.Usagef("registry credentials: --password-stdin needs --username (or %s)", EnvUsername)
	}
	if user == "" {
		if o.getenv(EnvPassword) != "" {
			return "", "", exitcode.Usagef("registry credentials: %s is set but no username (--username or %s)", EnvPassword, EnvUsername)
		}
		return "", "", nil
	}
	var pass string
	if o.PasswordStdin {
		in := o.Stdin
		if in == nil {
			in = os.Stdin
		}
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", "", exitcode.Operationalf("registry credentials: reading the password from stdin: %v", err)
		}
		pass = strings.TrimRight(line, "\r\n")
		if pass == "" {
			return "", "", exitcode.Usagef("registry credentials: --password-stdin given but stdin held no password")
		}
	} else {
		pass = o.getenv(EnvPassword)
		if pass == "" {
			return "", "", exitcode.Usagef("registry credentials: username %q given but no password (use --password-stdin or %s)", user, EnvPassword)
		}
	}
	return user, pass, nil
}

// static is a keychain holding one username and password for a set of registries.
type static struct {
	user, pass string
	hosts      []string
}

// Resolve implements authn.Keychain.
func (s *static) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if len(s.hosts) > 0 {
		match := false
		for _, h := range s.hosts {
			if strings.EqualFold(h, r.RegistryStr()) {
				match = true
			}
		}
		if !match {
			return authn.Anonymous, nil
		}
	}
	return authn.FromConfig(authn.AuthConfig{Username: s.user, Password: s.pass}), nil
}

// String never shows the secret.
func (s *static) String() string { return "static credentials for " + strings.Join(s.hosts, ",") }

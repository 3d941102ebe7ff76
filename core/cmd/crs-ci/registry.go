package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/creds"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/version"
)

// registryFlags are the registry access flags every command that talks to a registry takes, with the same
// names on every CI platform: explicit credentials, Vault, proxy, CA bundle and per-registry TLS exceptions.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "username", EnvVars: []string{creds.EnvUsername}, Usage: "registry `USER` (password from --password-stdin or " + creds.EnvPassword + ")"},
		&cli.BoolFlag{Name: "password-stdin", Usage: "read the registry password from stdin"},

		&cli.StringFlag{Name: "vault-address", EnvVars: []string{"VAULT_ADDR"}, Usage: "Vault `URL` holding the registry credentials (used with --vault-path)"},
		&cli.StringFlag{Name: "vault-token", EnvVars: []string{"VAULT_TOKEN"}, Usage: "Vault `TOKEN` (prefer the VAULT_TOKEN variable: a flag shows in process listings)"},
		&cli.StringFlag{Name: "vault-path", Usage: "read the registry credentials from Vault: secret `MOUNT/PATH`, e.g. secret/ci/registry"},
		&cli.StringFlag{Name: "vault-mount", Usage: "KV mount `PATH` when it has several components (default: the first of --vault-path)"},
		&cli.StringFlag{Name: "vault-engine", Value: creds.KVv2, Usage: "`kv-v2` or kv-v1"},
		&cli.BoolFlag{Name: "vault-base64", Usage: "the stored values are base64-encoded"},
		&cli.StringFlag{Name: "vault-username-key", Value: "username", Usage: "`KEY` of the username in the secret"},
		&cli.StringFlag{Name: "vault-password-key", Value: "password", Usage: "`KEY` of the password in the secret"},
		&cli.StringFlag{Name: "vault-role-id", EnvVars: []string{creds.EnvVaultRoleID}, Usage: "AppRole `ROLE_ID` (secret_id from " + creds.EnvVaultSecretID + ")"},
		&cli.StringFlag{Name: "vault-approle-mount", Value: "approle", Usage: "AppRole auth mount `PATH`"},
		&cli.StringFlag{Name: "vault-jwt-role", Usage: "JWT auth `ROLE` (token from --vault-jwt-file or " + creds.EnvVaultJWT + ")"},
		&cli.StringFlag{Name: "vault-jwt-file", Usage: "`FILE` holding the JWT (e.g. a CI OIDC token)"},
		&cli.StringFlag{Name: "vault-jwt-mount", Value: "jwt", Usage: "JWT auth mount `PATH`"},

		&cli.StringFlag{Name: "proxy", Usage: "HTTP(S) proxy `URL` for registries (default: HTTPS_PROXY; NO_PROXY applies)"},
		&cli.StringFlag{Name: "ca-file", Usage: "PEM `FILE` of extra CA certificates for registries (e.g. a private Artifactory)"},
		&cli.StringSliceFlag{Name: "insecure-registry", Usage: "`HOST[:PORT]` whose TLS certificate is not verified (only that registry; repeatable)"},
	}
}

// registryAccess resolves the keychain and the remote options (transport with proxy, CA, TLS exceptions and
// Retry-After; user agent) for a command reading src and writing to (or beside) to. Every secret it reads is
// masked on the CI platform before anything else is printed.
func registryAccess(c *cli.Context, src, to string) (authn.Keychain, []remote.Option, error) {
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	// --vault-token given as a flag is a secret as much as VAULT_TOKEN (core/internal/hardening tests it)
	if err := ciMask(c, c.String("vault-token")); err != nil {
		return nil, nil, err
	}
	for _, a := range os.Args {
		if a == "--vault-token" || strings.HasPrefix(a, "--vault-token=") {
			fmt.Fprintln(c.App.ErrWriter, "crs-ci: warning: --vault-token on the command line is visible in process listings; use the VAULT_TOKEN variable")
		}
	}
	rt, err := creds.Transport(creds.NetOptions{Proxy: c.String("proxy"), CAFile: c.String("ca-file"),
		InsecureRegistries: c.StringSlice("insecure-registry")})
	if err != nil {
		return nil, nil, err
	}
	copts := creds.Options{
		Username: c.String("username"), PasswordStdin: c.Bool("password-stdin"), Stdin: c.App.Reader,
		Registries: credentialHosts(src, to),
	}
	if c.App.Reader == nil {
		copts.Stdin = os.Stdin
	}
	// Vault is used when a secret path is named (VAULT_ADDR alone, common on CI runners, does not switch it on).
	if c.String("vault-path") != "" {
		if c.String("vault-address") == "" {
			return nil, nil, exitcode.Usagef("--vault-path needs --vault-address (or VAULT_ADDR)")
		}
		copts.Vault = &creds.VaultOptions{
			Address: c.String("vault-address"), Token: c.String("vault-token"), Path: c.String("vault-path"),
			Mount: c.String("vault-mount"), Engine: c.String("vault-engine"), Base64: c.Bool("vault-base64"),
			UsernameKey: c.String("vault-username-key"), PasswordKey: c.String("vault-password-key"),
			RoleID: c.String("vault-role-id"), AppRoleMount: c.String("vault-approle-mount"),
			JWTRole: c.String("vault-jwt-role"), JWTFile: c.String("vault-jwt-file"), JWTMount: c.String("vault-jwt-mount"),
		}
	}
	kc, secrets, err := creds.Resolve(ctx, copts)
	if err != nil {
		return nil, nil, publishCI(c, nil, nil, err)
	}
	if len(secrets) > 0 {
		pub, err := ciPublisher(c)
		if err != nil {
			return nil, nil, err
		}
		if err := pub.Mask(secrets...); err != nil {
			return nil, nil, err
		}
	}
	return kc, []remote.Option{remote.WithTransport(rt), remote.WithUserAgent("crs-ci/" + version.Version)}, nil
}

// credentialHosts are the registries explicit or Vault credentials are sent to: the target's (--to, else the
// source's). The source registry, when different, is reached with the docker config keychain.
func credentialHosts(src, to string) []string {
	ref := to
	if ref == "" {
		ref = src
	}
	r, err := image.ParseReference(ref)
	if err != nil || r.Transport != image.Docker {
		return nil // no registry is written to; explicit credentials are not needed
	}
	n, err := name.ParseReference(r.Name)
	if err != nil {
		return nil
	}
	return []string{n.Context().RegistryStr()}
}

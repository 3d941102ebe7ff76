package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/urfave/cli/v2"

	"github.com/crs-ci/crs-ci/core/compat"
	"github.com/crs-ci/crs-ci/core/creds"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/instrument"
	"github.com/crs-ci/crs-ci/core/report"
	"github.com/crs-ci/crs-ci/core/version"
)

func instrumentCommand() *cli.Command {
	return &cli.Command{
		Name:      "instrument",
		Usage:     "check IMAGE and the policy, add the probe layer and push IMAGE's tag with -layered (exit 0 pushed, 1 rejected)",
		ArgsUsage: "IMAGE",
		Description: "IMAGE is REGISTRY/REPO:TAG, REGISTRY/REPO@sha256:…, docker://…, oci:DIR[:REF], oci-archive:FILE[:REF],\n" +
			"docker-archive:FILE[:REPO:TAG] or docker-daemon:REPO:TAG. REPO:TAG is pushed as REPO:TAG-layered,\n" +
			"REPO@sha256:HEX as REPO:sha256-HEX-layered (see --to, --tag-suffix). Nothing is written when the check or\n" +
			"the policy rejects. Credentials: the docker config by default; --username with --password-stdin or\n" +
			"CRS_REGISTRY_USERNAME/CRS_REGISTRY_PASSWORD; or Vault (--vault-*). See docs/instrument.md and docs/credentials.md.\n" +
			"Exit codes: 0 instrumented, 1 rejected, 2 usage, 3 operational (registry, network, auth, I/O).",
		OnUsageError: usageOnError,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, EnvVars: []string{"CRS_POLICY"}, Usage: "crs-ci/v1 policy `FILE` (required)"},
			&cli.StringFlag{Name: "mode", Usage: "override the policy's mode: `enforce`, audit or off"},
			&cli.StringFlag{Name: "platform", Value: image.PlatformAll, Usage: "`OS/ARCH[/VARIANT]` of an index to instrument, or all (an index gives an index)"},
			&cli.BoolFlag{Name: "skip-incompatible-platforms", Usage: "leave incompatible platforms out of the result instead of failing"},
			&cli.StringFlag{Name: "to", Usage: "push to `REF` instead (another repository or registry; a repository without a tag gets the -layered tag)"},
			&cli.StringFlag{Name: "tag-suffix", Value: instrument.DefaultTagSuffix, Usage: "`SUFFIX` appended to the source tag"},
			&cli.BoolFlag{Name: "dry-run", Usage: "do everything except the push"},
			&cli.StringFlag{Name: "output", Usage: "also write the result to `oci:DIR[:REF]` or oci-archive:FILE[:REF]"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output on stdout: `text`, json or markdown"},
			&cli.StringSliceFlag{Name: "report", Usage: "also write a report, `FMT=PATH` (json, markdown, …; repeatable)"},
			&cli.StringFlag{Name: "cache-dir", Usage: "per-layer facts cache `DIR` (default: the user cache dir/crs-ci)"},
			&cli.BoolFlag{Name: "no-cache", Usage: "neither read nor write the per-layer facts cache"},
			&cli.Int64Flag{Name: "max-layer-bytes", Usage: "stop with an error when a layer expands beyond `N` bytes (default 64 GiB)"},
			&cli.BoolFlag{Name: "allow-unhookable-entrypoint", Usage: "a static or Go entrypoint is a warning, not a rejection"},

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
		}, ciFlags()...),
		Action: runInstrument,
	}
}

func runInstrument(c *cli.Context) error {
	args, err := interspersed(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return exitcode.Usagef("instrument takes one IMAGE argument, got %d (see crs-ci instrument --help)", len(args))
	}
	// --vault-token given as a flag is a secret as much as VAULT_TOKEN (core/internal/hardening tests it)
	if err := ciMask(c, c.String("vault-token")); err != nil {
		return err
	}
	for _, a := range os.Args {
		if a == "--vault-token" || strings.HasPrefix(a, "--vault-token=") {
			fmt.Fprintln(c.App.ErrWriter, "crs-ci: warning: --vault-token on the command line is visible in process listings; use the VAULT_TOKEN variable")
		}
	}
	format := c.String("format")
	if format != "text" && format != "json" && format != "markdown" {
		return exitcode.Usagef("--format %q: want text, json or markdown", format)
	}
	targets, err := reportTargets(c.StringSlice("report"))
	if err != nil {
		return err
	}
	if c.String("policy") == "" {
		return exitcode.Usagef("--policy FILE is required")
	}
	if c.Int64("max-layer-bytes") < 0 {
		return exitcode.Usagef("--max-layer-bytes %d: want a positive number of bytes", c.Int64("max-layer-bytes"))
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	src := args[0]

	rt, err := creds.Transport(creds.NetOptions{Proxy: c.String("proxy"), CAFile: c.String("ca-file"),
		InsecureRegistries: c.StringSlice("insecure-registry")})
	if err != nil {
		return err
	}
	copts := creds.Options{
		Username: c.String("username"), PasswordStdin: c.Bool("password-stdin"), Stdin: c.App.Reader,
		Registries: credentialHosts(src, c.String("to")),
	}
	if c.App.Reader == nil {
		copts.Stdin = os.Stdin
	}
	// Vault is used when a secret path is named (VAULT_ADDR alone, common on CI runners, does not switch it on).
	if c.String("vault-path") != "" {
		if c.String("vault-address") == "" {
			return exitcode.Usagef("--vault-path needs --vault-address (or VAULT_ADDR)")
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
		return publishCI(c, nil, nil, err)
	}
	if len(secrets) > 0 {
		pub, err := ciPublisher(c)
		if err != nil {
			return err
		}
		if err := pub.Mask(secrets...); err != nil {
			return err
		}
	}

	cacheDir := c.String("cache-dir")
	if cacheDir == "" && !c.Bool("no-cache") {
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "crs-ci")
		}
	}
	progress, layerProgress := progressWriters(c.App.ErrWriter)
	fmt.Fprintf(progress, "crs-ci instrument %s: %s with policy %s\n", version.Version, src, c.String("policy"))
	rep, runErr := instrument.Run(ctx, instrument.Options{
		Image: src, PolicyFile: c.String("policy"), Mode: c.String("mode"), Platform: c.String("platform"),
		To: c.String("to"), TagSuffix: c.String("tag-suffix"), Output: c.String("output"), DryRun: c.Bool("dry-run"),
		SkipIncompatiblePlatforms: c.Bool("skip-incompatible-platforms"),
		Compat: compat.Options{
			AllowUnhookableEntrypoint: c.Bool("allow-unhookable-entrypoint"), CacheDir: cacheDir, NoCache: c.Bool("no-cache"),
			Progress: progress, LayerProgress: layerProgress, MaxLayerBytes: c.Int64("max-layer-bytes"),
		},
		Keychain:      kc,
		RemoteOptions: []remote.Option{remote.WithTransport(rt), remote.WithUserAgent("crs-ci/" + version.Version)},
		Progress:      layerProgress,
	})
	if rep == nil {
		return publishCI(c, nil, nil, runErr)
	}
	for _, t := range targets {
		if err := report.WriteFile(t, rep); err != nil {
			return publishCI(c, rep, nil, exitcode.Operationalf("%w", err))
		}
	}
	if err := report.Render(c.App.Writer, format, rep); err != nil {
		return publishCI(c, rep, targets, exitcode.Operationalf("writing the %s report to stdout: %w", format, err))
	}
	return publishCI(c, rep, targets, runErr)
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

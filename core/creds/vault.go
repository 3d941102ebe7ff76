package creds

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/cliconfig"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// KV engine versions.
const (
	KVv1 = "kv-v1"
	KVv2 = "kv-v2"
)

// Environment variables read for Vault logins (besides the vault/api client's own VAULT_ADDR, VAULT_TOKEN,
// VAULT_NAMESPACE, VAULT_CACERT, ...).
const (
	EnvVaultRoleID   = "VAULT_ROLE_ID"   // AppRole role_id
	EnvVaultSecretID = "VAULT_SECRET_ID" // AppRole secret_id
	EnvVaultJWT      = "VAULT_JWT"       // JWT for the jwt auth method (e.g. a CI OIDC token)
)

// VaultOptions says where in Vault the registry username and password are, and how to log in.
type VaultOptions struct {
	Address string // e.g. https://vault.example.com:8200 (VAULT_ADDR)
	Token   string // a Vault token; empty: AppRole/JWT login, else VAULT_TOKEN, else the token helper

	Path   string // secret path including the mount, e.g. "secret/ci/registry"
	Mount  string // mount of the KV engine; default: the first component of Path
	Engine string // KVv1 or KVv2 (default KVv2)
	Base64 bool   // the stored values are base64-encoded

	UsernameKey string // default "username"
	PasswordKey string // default "password"

	// AppRole login: RoleID (or VAULT_ROLE_ID) with the secret id from VAULT_SECRET_ID.
	RoleID       string
	AppRoleMount string // default "approle"

	// JWT login: JWTRole with the token from JWTFile or VAULT_JWT.
	JWTRole  string
	JWTFile  string
	JWTMount string // default "jwt"

	HTTPClient *http.Client // optional: proxy/CA settings for reaching Vault

	jwt string // the JWT a login used (from JWTFile or VAULT_JWT), for Resolve to return among the secrets
}

// Read logs in if needed and returns the username and password stored at the path.
func (v *VaultOptions) Read(ctx context.Context, getenv func(string) string) (string, string, error) {
	if v.Path == "" {
		return "", "", exitcode.Usagef("vault: --vault-path is required with --vault-address")
	}
	engine := v.Engine
	if engine == "" {
		engine = KVv2
	}
	if engine != KVv1 && engine != KVv2 {
		return "", "", exitcode.Usagef("vault: --vault-engine %q: want %s or %s", engine, KVv1, KVv2)
	}
	mount, rest := v.Mount, strings.Trim(v.Path, "/")
	if mount == "" {
		var ok bool
		mount, rest, ok = strings.Cut(rest, "/")
		if !ok || rest == "" {
			return "", "", exitcode.Usagef("vault: --vault-path %q: want MOUNT/PATH, e.g. secret/ci/registry", v.Path)
		}
	} else {
		mount = strings.Trim(mount, "/")
		rest = strings.TrimPrefix(rest, mount+"/")
	}

	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		return "", "", exitcode.Usagef("vault: configuration from the environment: %v", cfg.Error)
	}
	cfg.Address = v.Address
	cfg.MaxRetries = 2
	if v.HTTPClient != nil {
		cfg.HttpClient = v.HTTPClient
	}
	client, err := vault.NewClient(cfg)
	if err != nil {
		return "", "", exitcode.Usagef("vault %s: %v", v.Address, err)
	}
	if err := v.login(ctx, client, getenv); err != nil {
		return "", "", err
	}

	var secret *vault.KVSecret
	if engine == KVv2 {
		secret, err = client.KVv2(mount).Get(ctx, rest)
	} else {
		secret, err = client.KVv1(mount).Get(ctx, rest)
	}
	where := fmt.Sprintf("vault %s: reading %s secret %q at mount %q", v.Address, engine, rest, mount)
	if err != nil {
		return "", "", classify(where, err)
	}
	if secret == nil || secret.Data == nil {
		warn := ""
		if secret != nil && secret.Raw != nil && len(secret.Raw.Warnings) > 0 {
			warn = " (Vault says: " + strings.Join(secret.Raw.Warnings, "; ") + ")"
		}
		return "", "", exitcode.Usagef("%s: the secret has no data: a deleted version, or the mount is not a %s engine (check --vault-engine)%s", where, engine, warn)
	}
	ukey, pkey := v.UsernameKey, v.PasswordKey
	if ukey == "" {
		ukey = "username"
	}
	if pkey == "" {
		pkey = "password"
	}
	user, err := value(secret.Data, ukey, v.Base64, where)
	if err != nil {
		return "", "", err
	}
	pass, err := value(secret.Data, pkey, v.Base64, where)
	if err != nil {
		return "", "", err
	}
	return user, pass, nil
}

// login sets the client's token: the given token, an AppRole or JWT login, VAULT_TOKEN, or the token helper.
func (v *VaultOptions) login(ctx context.Context, c *vault.Client, getenv func(string) string) error {
	roleID := v.RoleID
	if roleID == "" {
		roleID = getenv(EnvVaultRoleID)
	}
	switch {
	case v.Token != "":
		c.SetToken(v.Token)
		return nil
	case roleID != "":
		secretID := getenv(EnvVaultSecretID)
		mount := v.AppRoleMount
		if mount == "" {
			mount = "approle"
		}
		body := map[string]any{"role_id": roleID}
		if secretID != "" {
			body["secret_id"] = secretID
		}
		return v.doLogin(ctx, c, "auth/"+strings.Trim(mount, "/")+"/login", body, "AppRole")
	case v.JWTRole != "":
		jwt := getenv(EnvVaultJWT)
		if v.JWTFile != "" {
			b, err := os.ReadFile(v.JWTFile)
			if err != nil {
				return exitcode.Usagef("vault: reading the JWT file: %v", err)
			}
			jwt = strings.TrimSpace(string(b))
		}
		if jwt == "" {
			return exitcode.Usagef("vault: JWT login for role %q needs a token (--vault-jwt-file or %s)", v.JWTRole, EnvVaultJWT)
		}
		v.jwt = jwt
		mount := v.JWTMount
		if mount == "" {
			mount = "jwt"
		}
		return v.doLogin(ctx, c, "auth/"+strings.Trim(mount, "/")+"/login",
			map[string]any{"role": v.JWTRole, "jwt": jwt}, "JWT")
	}
	if c.Token() != "" { // VAULT_TOKEN, read by vault.NewClient
		return nil
	}
	helper, err := cliconfig.DefaultTokenHelper()
	if err != nil {
		return exitcode.Usagef("vault: no token given and the token helper is misconfigured: %v", err)
	}
	tok, err := helper.Get()
	if err != nil {
		return exitcode.Usagef("vault: no token given and the token helper failed: %v", err)
	}
	if tok == "" {
		return exitcode.Usagef("vault: no token: give VAULT_TOKEN, an AppRole (--vault-role-id with %s) or a JWT role (--vault-jwt-role), or log in with `vault login`", EnvVaultSecretID)
	}
	c.SetToken(strings.TrimSpace(tok))
	return nil
}

func (v *VaultOptions) doLogin(ctx context.Context, c *vault.Client, path string, body map[string]any, method string) error {
	c.ClearToken()
	s, err := c.Logical().WriteWithContext(ctx, path, body)
	where := fmt.Sprintf("vault %s: %s login at %s", v.Address, method, path)
	if err != nil {
		return classify(where, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return exitcode.Operationalf("%s: the response carried no client token", where)
	}
	c.SetToken(s.Auth.ClientToken)
	return nil
}

// classify maps a vault/api error to an exit-code kind with a message that names what to check. Vault's
// error bodies never hold the secret, so they are safe to show.
func classify(where string, err error) error {
	if errors.Is(err, vault.ErrSecretNotFound) {
		return exitcode.Usagef("%s: no secret there (check --vault-path, --vault-engine and the mount)", where)
	}
	var re *vault.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch re.StatusCode {
		case http.StatusForbidden:
			return exitcode.Operationalf("%s: permission denied (HTTP 403: %s): check the token or role and its policies", where, msg)
		case http.StatusBadRequest:
			return exitcode.Operationalf("%s: refused (HTTP 400: %s)", where, msg)
		case http.StatusNotFound:
			return exitcode.Usagef("%s: not found (HTTP 404%s): check --vault-path, --vault-engine and the auth mounts", where, prefixed(msg))
		}
		return exitcode.Operationalf("%s: HTTP %d%s", where, re.StatusCode, prefixed(msg))
	}
	return exitcode.Operationalf("%s: %v", where, err)
}

func prefixed(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// value reads one key of a secret as a string, base64-decoding it when asked. Errors name the key, never the value.
func value(data map[string]any, key string, b64 bool, where string) (string, error) {
	raw, ok := data[key]
	if !ok {
		var have []string
		for k := range data {
			have = append(have, k)
		}
		sort.Strings(have)
		return "", exitcode.Usagef("%s: the secret has no key %q (keys: %s)", where, key, strings.Join(have, ", "))
	}
	s, ok := raw.(string)
	if !ok {
		return "", exitcode.Usagef("%s: key %q is not a string", where, key)
	}
	if b64 {
		d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return "", exitcode.Usagef("%s: key %q is not valid base64 (--vault-base64 given)", where, key)
		}
		s = string(d)
	}
	if s == "" {
		return "", exitcode.Usagef("%s: key %q is empty", where, key)
	}
	return s, nil
}

package serve

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/crs-ci/crs-ci/core/creds"
	"github.com/crs-ci/crs-ci/core/exitcode"
)

// ConfigAPIVersion and ConfigKind identify a serve configuration file.
const (
	ConfigAPIVersion = "crs-ci/v1"
	ConfigKind       = "ServeConfig"
)

// DefaultTarget names the instrumented image of a pushed REPOSITORY:TAG.
const DefaultTarget = "{registry}/{repository}:{tag}-layered"

// Config is a `crs-ci serve` configuration file (docs/serve.md).
type Config struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`

	Listen   string `yaml:"listen"`   // HOST:PORT of the HTTP server (default ":8080")
	StateDir string `yaml:"stateDir"` // journal, reports and the layer facts cache (required)

	Webhook WebhookConfig `yaml:"webhook"`

	Registry     string       `yaml:"registry"` // HOST[:PORT] crs-ci pulls from and pushes to (required)
	Policy       string       `yaml:"policy"`   // crs-ci/v1 policy file, re-read for every job (required)
	Mode         string       `yaml:"mode"`     // "" keeps the policy's mode; enforce | audit | off
	Repositories []RepoConfig `yaml:"repositories"`

	Concurrency   int           `yaml:"concurrency"`   // jobs run at once (default 2)
	QueueSize     int           `yaml:"queueSize"`     // jobs waiting to run; beyond it notifications get 503 (default 100)
	JobTimeout    time.Duration `yaml:"jobTimeout"`    // one attempt of one job (default 15m)
	MaxAttempts   int           `yaml:"maxAttempts"`   // attempts of a job failing operationally (default 4)
	Backoff       time.Duration `yaml:"backoff"`       // delay before the first retry, doubled each time (default 10s)
	MaxBackoff    time.Duration `yaml:"maxBackoff"`    // cap of the retry delay (default 5m)
	ShutdownGrace time.Duration `yaml:"shutdownGrace"` // running jobs may finish for this long on SIGTERM (default 30s)

	Credentials CredentialsConfig `yaml:"credentials"`
	Network     NetworkConfig     `yaml:"network"`

	file string
	root *yaml.Node
}

// WebhookConfig says where notifications arrive and how they authenticate.
type WebhookConfig struct {
	Path       string `yaml:"path"`       // default /notifications
	Header     string `yaml:"header"`     // default Authorization
	SecretFile string `yaml:"secretFile"` // file holding the shared secret
	SecretEnv  string `yaml:"secretEnv"`  // or an environment variable holding it (default CRS_WEBHOOK_SECRET)
	MaxBody    int64  `yaml:"maxBodyBytes"`

	HarborPath   string `yaml:"harborPath"`   // where Harbor's webhook posts (default /webhook/harbor)
	HarborHeader string `yaml:"harborHeader"` // header carrying the secret there (default: Header)

	secret string
}

// RepoConfig selects pushed tags to instrument.
type RepoConfig struct {
	Name                      string   `yaml:"name"`   // repository glob (path.Match, '*' stays within a path component)
	Tags                      []string `yaml:"tags"`   // tag globs (default: every tag)
	Target                    string   `yaml:"target"` // default DefaultTarget; {registry} {repository} {tag}
	AllowUnhookableEntrypoint bool     `yaml:"allowUnhookableEntrypoint"`
	SkipIncompatiblePlatforms bool     `yaml:"skipIncompatiblePlatforms"`
}

// CredentialsConfig gives registry credentials from the same sources as `crs-ci instrument`: the docker
// config keychain (nothing set), a username with a password file or CRS_REGISTRY_PASSWORD, or Vault.
type CredentialsConfig struct {
	Username     string       `yaml:"username"`
	PasswordFile string       `yaml:"passwordFile"`
	Vault        *VaultConfig `yaml:"vault"`
}

// VaultConfig mirrors instrument's --vault-* flags; the token comes from VAULT_TOKEN (or an AppRole/JWT login).
type VaultConfig struct {
	Address      string `yaml:"address"`
	Path         string `yaml:"path"`
	Mount        string `yaml:"mount"`
	Engine       string `yaml:"engine"`
	Base64       bool   `yaml:"base64"`
	UsernameKey  string `yaml:"usernameKey"`
	PasswordKey  string `yaml:"passwordKey"`
	RoleID       string `yaml:"roleId"`
	AppRoleMount string `yaml:"approleMount"`
	JWTRole      string `yaml:"jwtRole"`
	JWTFile      string `yaml:"jwtFile"`
	JWTMount     string `yaml:"jwtMount"`
}

// NetworkConfig mirrors instrument's --proxy, --ca-file and --insecure-registry.
type NetworkConfig struct {
	Proxy              string   `yaml:"proxy"`
	CAFile             string   `yaml:"caFile"`
	InsecureRegistries []string `yaml:"insecureRegistries"`
}

// LoadConfig reads and validates a configuration file. Every problem is reported at once, each as
// FILE:LINE:COL: message; such errors are usage errors (exit 2).
func LoadConfig(file string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, exitcode.Usagef("reading serve config: %v", err)
	}
	return ParseConfig(file, data, getenv)
}

// ParseConfig is LoadConfig on bytes already read. Relative paths are relative to the file's directory.
func ParseConfig(file string, data []byte, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{file: file, root: &yaml.Node{}}
	if err := yaml.Unmarshal(data, c.root); err != nil {
		return nil, exitcode.Usagef("%s: %v", file, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, exitcode.Usagef("%s: %s", file, strings.Join(te.Errors, "; "))
		}
		return nil, exitcode.Usagef("%s: %v", file, err)
	}
	var problems []string
	bad := func(at []any, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s", c.pos(at...), fmt.Sprintf(format, args...)))
	}
	if c.APIVersion != ConfigAPIVersion {
		bad([]any{"apiVersion"}, "apiVersion %q: want %s", c.APIVersion, ConfigAPIVersion)
	}
	if c.Kind != ConfigKind {
		bad([]any{"kind"}, "kind %q: want %s", c.Kind, ConfigKind)
	}
	c.setDefaults()
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad([]any{"listen"}, "listen %q: want HOST:PORT (%v)", c.Listen, err)
	}
	if c.StateDir == "" {
		bad([]any{"stateDir"}, "stateDir is required (the journal lives there)")
	}
	if c.Registry == "" || strings.ContainsAny(c.Registry, "/ ") {
		bad([]any{"registry"}, "registry %q: want the HOST[:PORT] crs-ci pulls from and pushes to", c.Registry)
	}
	if c.Policy == "" {
		bad([]any{"policy"}, "policy is required (a crs-ci/v1 policy file)")
	}
	switch c.Mode {
	case "", "enforce", "audit", "off":
	default:
		bad([]any{"mode"}, "mode %q: want enforce, audit or off", c.Mode)
	}
	if !strings.HasPrefix(c.Webhook.Path, "/") {
		bad([]any{"webhook", "path"}, "webhook.path %q must start with /", c.Webhook.Path)
	}
	if !strings.HasPrefix(c.Webhook.HarborPath, "/") {
		bad([]any{"webhook", "harborPath"}, "webhook.harborPath %q must start with /", c.Webhook.HarborPath)
	} else if c.Webhook.HarborPath == c.Webhook.Path {
		bad([]any{"webhook", "harborPath"}, "webhook.harborPath %q is webhook.path too: give each sender its own path", c.Webhook.HarborPath)
	}
	if len(c.Repositories) == 0 {
		bad([]any{"repositories"}, "repositories: name at least one repository to instrument")
	}
	for i := range c.Repositories {
		r := &c.Repositories[i]
		if r.Name == "" {
			bad([]any{"repositories", i}, "repositories[%d].name is required", i)
		} else if _, err := path.Match(r.Name, ""); err != nil {
			bad([]any{"repositories", i, "name"}, "repositories[%d].name %q: %v", i, r.Name, err)
		}
		if len(r.Tags) == 0 {
			r.Tags = []string{"*"}
		}
		for j, t := range r.Tags {
			if _, err := path.Match(t, ""); err != nil || t == "" {
				bad([]any{"repositories", i, "tags", j}, "repositories[%d].tags[%d] %q: not a glob", i, j, t)
			}
		}
		if r.Target == "" {
			r.Target = DefaultTarget
		}
		if !strings.Contains(r.Target, "{tag}") || !strings.Contains(r.Target, ":") {
			bad([]any{"repositories", i, "target"}, "repositories[%d].target %q must contain {tag} and name a tag (e.g. %s)", i, r.Target, DefaultTarget)
		} else if strings.NewReplacer("{registry}", "R", "{repository}", "a/b", "{tag}", "t").Replace(r.Target) == "R/a/b:t" {
			bad([]any{"repositories", i, "target"}, "repositories[%d].target %q would overwrite the pushed tag: add a suffix after {tag} or name another repository", i, r.Target)
		}
	}
	for _, d := range []struct {
		v    time.Duration
		name string
	}{{c.JobTimeout, "jobTimeout"}, {c.Backoff, "backoff"}, {c.MaxBackoff, "maxBackoff"}, {c.ShutdownGrace, "shutdownGrace"}} {
		if d.v <= 0 {
			bad([]any{d.name}, "%s must be a positive duration such as 30s", d.name)
		}
	}
	for _, n := range []struct {
		v    int
		name string
	}{{c.Concurrency, "concurrency"}, {c.QueueSize, "queueSize"}, {c.MaxAttempts, "maxAttempts"}} {
		if n.v <= 0 {
			bad([]any{n.name}, "%s must be a positive number", n.name)
		}
	}
	if c.Credentials.PasswordFile != "" && c.Credentials.Username == "" {
		bad([]any{"credentials", "passwordFile"}, "credentials.passwordFile needs credentials.username")
	}
	if v := c.Credentials.Vault; v != nil {
		if c.Credentials.Username != "" {
			bad([]any{"credentials", "vault"}, "credentials: give either username/passwordFile or vault, not both")
		}
		if v.Address == "" && getenv("VAULT_ADDR") == "" {
			bad([]any{"credentials", "vault"}, "credentials.vault.address is required (or VAULT_ADDR)")
		}
		if v.Path == "" {
			bad([]any{"credentials", "vault"}, "credentials.vault.path is required (MOUNT/PATH of the secret)")
		}
		if v.Engine != "" && v.Engine != creds.KVv1 && v.Engine != creds.KVv2 {
			bad([]any{"credentials", "vault", "engine"}, "credentials.vault.engine %q: want kv-v1 or kv-v2", v.Engine)
		}
	}

	// The shared secret: never in the config file itself.
	base := filepath.Dir(file)
	c.StateDir = resolve(base, c.StateDir)
	c.Policy = resolve(base, c.Policy)
	c.Webhook.SecretFile = resolve(base, c.Webhook.SecretFile)
	c.Credentials.PasswordFile = resolve(base, c.Credentials.PasswordFile)
	c.Network.CAFile = resolve(base, c.Network.CAFile)
	if c.Webhook.SecretFile != "" {
		b, err := os.ReadFile(c.Webhook.SecretFile)
		if err != nil {
			bad([]any{"webhook", "secretFile"}, "webhook.secretFile: %v", err)
		}
		c.Webhook.secret = strings.TrimSpace(string(b))
	} else {
		c.Webhook.secret = strings.TrimSpace(getenv(c.Webhook.SecretEnv))
	}
	if c.Webhook.secret == "" && len(problems) == 0 {
		bad([]any{"webhook"}, "no webhook secret: set webhook.secretFile, or the %s environment variable (requests without it are refused, so one is required)", c.Webhook.SecretEnv)
	}
	if len(problems) > 0 {
		return nil, exitcode.Usagef("invalid serve config:\n  %s", strings.Join(problems, "\n  "))
	}
	return c, nil
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.Webhook.Path == "" {
		c.Webhook.Path = "/notifications"
	}
	if c.Webhook.Header == "" {
		c.Webhook.Header = "Authorization"
	}
	if c.Webhook.HarborPath == "" {
		c.Webhook.HarborPath = "/webhook/harbor"
	}
	if c.Webhook.HarborHeader == "" {
		c.Webhook.HarborHeader = c.Webhook.Header
	}
	if c.Webhook.SecretEnv == "" {
		c.Webhook.SecretEnv = "CRS_WEBHOOK_SECRET"
	}
	if c.Webhook.MaxBody == 0 {
		c.Webhook.MaxBody = 1 << 20
	}
	if c.Concurrency == 0 {
		c.Concurrency = 2
	}
	if c.QueueSize == 0 {
		c.QueueSize = 100
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = 15 * time.Minute
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 4
	}
	if c.Backoff == 0 {
		c.Backoff = 10 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 30 * time.Second
	}
}

func resolve(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// pos is FILE:LINE:COL of the node at a key path (map keys and sequence indexes); the deepest node found.
func (c *Config) pos(at ...any) string {
	n := c.root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	for _, k := range at {
		if n == nil {
			break
		}
		var next *yaml.Node
		switch key := k.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == key {
						next = n.Content[i+1]
						line, col = n.Content[i].Line, n.Content[i].Column
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && key < len(n.Content) {
				next = n.Content[key]
				line, col = next.Line, next.Column
			}
		}
		n = next
	}
	return c.file + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col)
}

// OwnSuffix is the literal text a target template puts after {tag} ("-layered" for the default); tags
// ending with it are crs-ci's own output and never instrumented.
func OwnSuffix(target string) string {
	_, after, ok := strings.Cut(target, "{tag}")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(after, "{@/"); i >= 0 {
		after = after[:i]
	}
	return after
}

// Rule is the first repository rule selecting repository:tag, or nil.
func (c *Config) Rule(repository, tag string) *RepoConfig {
	for i := range c.Repositories {
		r := &c.Repositories[i]
		if ok, _ := path.Match(r.Name, repository); !ok {
			continue
		}
		for _, t := range r.Tags {
			if ok, _ := path.Match(t, tag); ok {
				return r
			}
		}
	}
	return nil
}

// TargetFor expands a rule's target template for a pushed repository:tag.
func (c *Config) TargetFor(r *RepoConfig, repository, tag string) string {
	return strings.NewReplacer("{registry}", c.Registry, "{repository}", repository, "{tag}", tag).Replace(r.Target)
}

// Secret is the webhook's shared secret.
func (c *Config) Secret() string { return c.Webhook.secret }

// File is the path the configuration was read from.
func (c *Config) File() string { return c.file }

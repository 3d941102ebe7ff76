package serve

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/crs-ci/crs-ci/core/compat"
	"github.com/crs-ci/crs-ci/core/creds"
	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/instrument"
	"github.com/crs-ci/crs-ci/core/report"
	"github.com/crs-ci/crs-ci/core/version"
)

// InstrumentRunner runs jobs with the instrument engine (core/instrument), the same code path as
// `crs-ci instrument REGISTRY/REPO@DIGEST --to TARGET`, after three checks that keep the service from
// looping or pushing twice:
//
//  1. the pushed tag still points at the job's digest (else the job is superseded by a newer push);
//  2. the image is not crs-ci's own output (its config carries the io.crs-ci.* labels);
//  3. the target does not already hold the instrumented image of this digest (its base digest label or
//     annotation names it) — true after a crash between the push and the done record.
type InstrumentRunner struct {
	cfg    *Config
	rt     http.RoundTripper
	getenv func(string) string
}

// NewInstrumentRunner prepares the runner: the registry transport (proxy, CA, insecure registries) is built
// once; credentials are resolved for every job, so a rotated password or Vault secret is picked up.
func NewInstrumentRunner(cfg *Config, getenv func(string) string) (*InstrumentRunner, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	rt, err := creds.Transport(creds.NetOptions{Proxy: cfg.Network.Proxy, CAFile: cfg.Network.CAFile,
		InsecureRegistries: cfg.Network.InsecureRegistries, Getenv: getenv})
	if err != nil {
		return nil, err
	}
	return &InstrumentRunner{cfg: cfg, rt: rt, getenv: getenv}, nil
}

func (ir *InstrumentRunner) keychain(ctx context.Context) (authn.Keychain, error) {
	c := ir.cfg.Credentials
	o := creds.Options{Username: c.Username, Registries: []string{ir.cfg.Registry}, Getenv: ir.getenv}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, exitcode.Operationalf("reading credentials.passwordFile: %v", err)
		}
		o.PasswordStdin, o.Stdin = true, strings.NewReader(strings.TrimSpace(string(b))+"\n")
	}
	if v := c.Vault; v != nil {
		o.Vault = &creds.VaultOptions{Address: v.Address, Path: v.Path, Mount: v.Mount, Engine: v.Engine,
			Base64: v.Base64, UsernameKey: v.UsernameKey, PasswordKey: v.PasswordKey, RoleID: v.RoleID,
			AppRoleMount: v.AppRoleMount, JWTRole: v.JWTRole, JWTFile: v.JWTFile, JWTMount: v.JWTMount}
		if o.Vault.Address == "" {
			o.Vault.Address = ir.getenv("VAULT_ADDR")
		}
		o.Vault.Token = ir.getenv("VAULT_TOKEN")
	}
	kc, _, err := creds.Resolve(ctx, o)
	return kc, err
}

// parseRef parses a registry reference; loopback registries speak plain http (as image.Open does).
func parseRef(s string) (name.Reference, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, err
	}
	host := r.Context().RegistryStr()
	if strings.HasPrefix(host, "127.") || strings.HasPrefix(host, "localhost") || strings.HasPrefix(host, "[::1]") {
		return name.ParseReference(s, name.Insecure)
	}
	return r, nil
}

// notFound reports whether a registry error says the manifest does not exist.
func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// How long a job waits for the pushed tag to point at the notified digest.
var (
	tagSettleTries = 10
	tagSettleDelay = 300 * time.Millisecond
)

// Run implements Runner.
func (ir *InstrumentRunner) Run(ctx context.Context, j Job) (Outcome, error) {
	kc, err := ir.keychain(ctx)
	if err != nil {
		return Outcome{}, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(ir.rt),
		remote.WithUserAgent("crs-ci-serve/" + version.Version)}
	repo := ir.cfg.Registry + "/" + j.Repository

	// 1. Superseded?
	tagRef, err := parseRef(repo + ":" + j.Tag)
	if err != nil {
		return Outcome{}, exitcode.Usagef("job %s: %v", j.Key, err)
	}
	// The registry sends the event when the manifest is stored, a moment before the tag points at it:
	// a missing or different tag is looked at again for a few seconds before the job is superseded.
	var now string
	for try := 0; ; try++ {
		head, err := remote.Head(tagRef, ropts...)
		switch {
		case notFound(err):
			now = ""
		case err != nil:
			return Outcome{}, exitcode.Operationalf("looking up %s: %w", tagRef, err)
		default:
			now = head.Digest.String()
		}
		if now == j.Digest {
			break
		}
		if try >= tagSettleTries {
			if now == "" {
				return Outcome{Result: ResultSuperseded, Message: "the tag was deleted before the job ran"}, nil
			}
			return Outcome{Result: ResultSuperseded, Message: "the tag now points at " + now}, nil
		}
		select {
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		case <-time.After(tagSettleDelay):
		}
	}

	// 2. Our own output?
	srcRef, err := parseRef(repo + "@" + j.Digest)
	if err != nil {
		return Outcome{}, exitcode.Usagef("job %s: %v", j.Key, err)
	}
	own, err := ownOutput(srcRef, ropts)
	if err != nil {
		return Outcome{}, err
	}
	if own {
		return Outcome{Result: ResultSkipped, Message: "the image carries crs-ci's labels: it is instrumented already"}, nil
	}

	// 3. Done before (a crash after the push, before the done record)?
	targetRef, err := parseRef(j.Target)
	if err != nil {
		return Outcome{}, exitcode.Usagef("job %s: target %q: %v", j.Key, j.Target, err)
	}
	present, digest, err := instrumentedFrom(targetRef, j.Digest, ropts)
	if err != nil {
		return Outcome{}, err
	}
	if present {
		return Outcome{Result: ResultPresent, Layered: j.Target + "@" + digest, Verdict: report.Compatible,
			Message: "the target already holds the instrumented image of this digest: nothing pushed"}, nil
	}

	// 4. The instrument engine.
	rep, err := instrument.Run(ctx, instrument.Options{
		Image: repo + "@" + j.Digest, PolicyFile: ir.cfg.Policy, Mode: ir.cfg.Mode, To: j.Target,
		SkipIncompatiblePlatforms: j.SkipIncompatiblePlatforms,
		Compat: compat.Options{AllowUnhookableEntrypoint: j.AllowUnhookableEntrypoint,
			CacheDir: filepath.Join(ir.cfg.StateDir, "cache")},
		Keychain:      kc,
		RemoteOptions: []remote.Option{remote.WithTransport(ir.rt), remote.WithUserAgent("crs-ci-serve/" + version.Version)},
	})
	var reportPath string
	if rep != nil {
		rep.Image = repo + ":" + j.Tag
		rep.Digest = j.Digest
		reportPath, _ = ir.keepReport(j, rep)
	}
	if err != nil {
		if exitcode.Of(err) == exitcode.Rejected && rep != nil && rep.Verdict == report.Incompatible {
			return Outcome{Result: ResultRejected, Verdict: report.Incompatible, Report: reportPath, Message: err.Error()}, nil
		}
		if exitcode.Of(err) == exitcode.Rejected { // the policy became invalid after the service started
			return Outcome{}, exitcode.Usagef("policy %s: %v", ir.cfg.Policy, err)
		}
		return Outcome{Report: reportPath}, err
	}
	out := Outcome{Result: ResultPushed, Verdict: report.Compatible, Report: reportPath}
	if rep.Layered != nil {
		out.Layered = rep.Layered.Ref + "@" + rep.Layered.Digest
	}
	return out, nil
}

// keepReport writes the job's JSON report under STATEDIR/reports/.
func (ir *InstrumentRunner) keepReport(j Job, rep *report.Report) (string, error) {
	dir := filepath.Join(ir.cfg.StateDir, "reports")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	safe := strings.NewReplacer("/", "_", ":", "_", "@", "_").Replace(j.Repository + "_" + j.Tag + "_" + strings.TrimPrefix(j.Digest, "sha256:")[:12])
	p := filepath.Join(dir, safe+".json")
	if err := report.WriteFile(report.Target{Format: "json", Path: p}, rep); err != nil {
		return "", err
	}
	return p, nil
}

// ownOutput reports whether the image (or the first image of an index) carries crs-ci's labels.
func ownOutput(ref name.Reference, ropts []remote.Option) (bool, error) {
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return false, exitcode.Operationalf("fetching the manifest of %s: %w", ref, err)
	}
	var img v1.Image
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return false, exitcode.Operationalf("reading the index %s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return false, exitcode.Operationalf("reading the index %s: %w", ref, err)
		}
		for _, m := range im.Manifests {
			if m.MediaType.IsImage() {
				if img, err = idx.Image(m.Digest); err != nil {
					return false, exitcode.Operationalf("reading %s@%s: %w", ref.Context(), m.Digest, err)
				}
				break
			}
		}
		if img == nil {
			return false, nil
		}
	default:
		if img, err = desc.Image(); err != nil {
			return false, exitcode.Operationalf("reading %s: %w", ref, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return false, exitcode.Operationalf("reading the config of %s: %w", ref, err)
	}
	_, has := cf.Config.Labels[instrument.LabelProbeDigest]
	return has, nil
}

// instrumentedFrom reports whether target exists and was instrumented from the source digest (its
// org.opencontainers.image.base.digest, as annotation of an index or label of an image config).
func instrumentedFrom(target name.Reference, source string, ropts []remote.Option) (bool, string, error) {
	desc, err := remote.Get(target, ropts...)
	if notFound(err) {
		return false, "", nil
	}
	if err != nil {
		return false, "", exitcode.Operationalf("looking up the target %s: %w", target, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return false, "", exitcode.Operationalf("reading the target index %s: %w", target, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return false, "", exitcode.Operationalf("reading the target index %s: %w", target, err)
		}
		return im.Annotations[instrument.LabelBaseDigest] == source, desc.Digest.String(), nil
	}
	img, err := desc.Image()
	if err != nil {
		return false, "", exitcode.Operationalf("reading the target %s: %w", target, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return false, "", exitcode.Operationalf("reading the config of the target %s: %w", target, err)
	}
	ok := cf.Config.Labels[instrument.LabelBaseDigest] == source && cf.Config.Labels[instrument.LabelProbeDigest] != ""
	return ok, desc.Digest.String(), nil
}

package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/instrument"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/probe"
	"github.com/crs-ci/crs-ci/core/report"
)

// row is one line of docs/matrix.md.
type row struct {
	Kind     kind
	Libc     string // family and version, from the check
	Arch     string
	Verdict  string
	Reasons  []string // error codes of the check
	Path     string   // "crs-ci instrument" or "forced"
	With     outcome  // instrumented
	Without  outcome  // the same unpacked image without the probe (control)
	Agree    bool
	Problems []string
}

// TestMatrix is the truth matrix: for each image kind, the verdict of `bin/crs-ci check` must agree with what
// the probe really does in the instrumented image — compatible means it loads and enforces every step of
// the scenario, incompatible means it would not (not loaded, or the image broken). A control run of the same
// unpacked image without the probe must show nothing enforced, so the detection itself is tested.
func TestMatrix(t *testing.T) {
	bin := filepath.Join(testenv.RepoRoot(t), "bin", "crs-ci")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run make build (make matrix does): %v", bin, err)
	}
	for _, tool := range []string{"unshare", "chroot", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: %v", tool, err)
		}
	}
	pol := policyIdentity(t)
	cacheDir := t.TempDir()
	ks := kinds()
	rows := make([]*row, len(ks))
	// The kinds run two at a time (go test's -parallel defaults to the number of CPUs); the group returns
	// when all of them have finished.
	t.Run("kinds", func(t *testing.T) {
		for i, k := range ks {
			t.Run(k.name, func(t *testing.T) {
				t.Parallel()
				r := runKind(t, k, bin, cacheDir, pol)
				rows[i] = &r
				for _, p := range r.Problems {
					t.Error(p)
				}
			})
		}
	})
	var done []row
	for _, r := range rows {
		if r != nil {
			done = append(done, *r)
		}
	}
	switch {
	case len(done) != len(ks):
		t.Logf("docs/matrix.md not written: %d of %d kinds ran", len(done), len(ks))
	case t.Failed():
		t.Logf("docs/matrix.md not written: the matrix has failures")
	default:
		doc := filepath.Join(testenv.RepoRoot(t), "docs", "matrix.md")
		if err := os.WriteFile(doc, []byte(renderDoc(done, bin)), 0o644); err != nil {
			t.Fatalf("writing %s: %v", doc, err)
		}
		t.Logf("wrote %s", doc)
	}
}

// policyIdentity compiles testdata/policy.yaml in-process and returns its sha256 (the events carry it).
func policyIdentity(t *testing.T) string {
	t.Helper()
	p, fs, err := policy.ParseFile(filepath.Join("testdata", "policy.yaml"))
	if err != nil || policy.HasErrors(fs) {
		t.Fatalf("testdata/policy.yaml: %v %+v", err, fs)
	}
	b, err := policy.Compile(p)
	if err != nil {
		t.Fatalf("compiling testdata/policy.yaml: %v", err)
	}
	c, err := policy.Load(b)
	if err != nil {
		t.Fatalf("loading the compiled testdata/policy.yaml: %v", err)
	}
	return c.SHA256()
}

func runKind(t *testing.T, k kind, bin, cacheDir, pol string) row {
	r := row{Kind: k}
	work := t.TempDir()
	srcDir := filepath.Join(work, "src")
	src := testenv.WriteOCI(t, k.image(t), srcDir, "")

	// 1. the verdict of crs-ci check
	rep, code, stderr := crsci(t, bin, "check", src, "--platform", "all", "--format", "json", "--cache-dir", cacheDir, "--ci", "none")
	if code != exitcode.OK && code != exitcode.Rejected {
		t.Fatalf("crs-ci check %s: exit %d\n%s", src, code, stderr)
	}
	if len(rep.Platforms) != 1 {
		t.Fatalf("crs-ci check: %d platforms in the report, want 1\n%s", len(rep.Platforms), stderr)
	}
	p := rep.Platforms[0]
	r.Verdict, r.Arch = p.Verdict, strings.TrimPrefix(p.Platform, "linux/")
	r.Libc = p.Libc.Family
	if p.Libc.Version != "" {
		r.Libc += " " + p.Libc.Version
	}
	for _, f := range p.Findings {
		if f.Severity == report.Error && !slices.Contains(r.Reasons, f.Code) {
			r.Reasons = append(r.Reasons, f.Code)
		}
	}
	if (code == exitcode.OK) != (p.Verdict == report.Compatible) {
		r.Problems = append(r.Problems, fmt.Sprintf("crs-ci check exited %d with verdict %s", code, p.Verdict))
	}
	if p.Verdict != k.want {
		r.Problems = append(r.Problems, fmt.Sprintf("verdict %s, the known truth for this image is %s; findings:\n%s", p.Verdict, k.want, findings(p.Findings)))
	}

	// 2. instrument (dry run into an OCI layout); where it refuses, force the probe layer in
	outDir := filepath.Join(work, "out")
	policyFile, _ := filepath.Abs(filepath.Join("testdata", "policy.yaml"))
	irep, icode, istderr := crsci(t, bin, "instrument", src, "--policy", policyFile, "--dry-run", "--output", "oci:"+outDir,
		"--format", "json", "--cache-dir", cacheDir, "--ci", "none")
	var layered v1.Image
	switch {
	case icode == exitcode.OK:
		r.Path = "crs-ci instrument"
		if p.Verdict != report.Compatible {
			r.Problems = append(r.Problems, "crs-ci instrument accepted an image crs-ci check rejected")
		}
		if irep.Layered == nil || irep.Layered.Pushed {
			r.Problems = append(r.Problems, fmt.Sprintf("instrument --dry-run report: layered %+v", irep.Layered))
		}
		layered = openLayered(t, "oci:"+outDir)
	case icode == exitcode.Rejected:
		r.Path = "forced"
		if p.Verdict == report.Compatible {
			r.Problems = append(r.Problems, fmt.Sprintf("crs-ci instrument refused an image crs-ci check accepted:\n%s", istderr))
		}
		if _, err := os.Stat(outDir); err == nil {
			r.Problems = append(r.Problems, "crs-ci instrument refused but wrote "+outDir)
		}
		layered = force(t, src, k.force)
	default:
		t.Fatalf("crs-ci instrument %s: exit %d\n%s", src, icode, istderr)
	}

	// 3. unpack and run the scenario, with the probe and without it
	root := unpack(t, layered, filepath.Join(work, "root"))
	cf, err := layered.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	r.With = runScenario(t, root, cf.Config, k.qemu, pol)
	disableProbe(t, root)
	r.Without = runScenario(t, root, withoutPreloadEnv(cf.Config), k.qemu, pol)
	t.Logf("%s: verdict %s; with the probe: %s; without: %s", k.name, r.Verdict, r.With.status(), r.Without.status())

	// 4. agreement
	works := r.With.Started && r.With.Loaded && r.With.Enforced
	switch {
	case r.Verdict == report.Compatible && !works:
		r.Problems = append(r.Problems, fmt.Sprintf("check says compatible but the probe did not protect the image: %s\n%s", r.With.status(), r.With.detail()))
	case r.Verdict != report.Compatible && works:
		r.Problems = append(r.Problems, fmt.Sprintf("check says %s but the probe loaded and enforced every step", r.Verdict))
	default:
		r.Agree = true
	}
	if r.Without.Loaded || r.Without.Enforced {
		r.Problems = append(r.Problems, fmt.Sprintf("control run without the probe: %s\n%s", r.Without.status(), r.Without.detail()))
	}
	if r.Verdict == report.Compatible && (!r.Without.Started || r.Without.Steps["read-denied"].Rc != 0) {
		r.Problems = append(r.Problems, fmt.Sprintf("control run without the probe did not read the secret: %s\n%s", r.Without.status(), r.Without.detail()))
	}
	return r
}

// crsci runs bin/crs-ci and decodes its JSON report from stdout.
func crsci(t *testing.T, bin string, args ...string) (*report.Report, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("crs-ci %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	var rep report.Report
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("crs-ci %s: stdout is not a JSON report: %v\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
	}
	return &rep, code, stderr.String()
}

func findings(fs []report.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s: %s\n", f.Severity, f.Code, f.Path, f.Message)
	}
	return b.String()
}

// openLayered opens the single image crs-ci instrument wrote.
func openLayered(t *testing.T, ref string) v1.Image {
	t.Helper()
	src, err := image.Open(context.Background(), ref, image.Options{Platform: image.PlatformAll})
	if err != nil {
		t.Fatalf("opening the instrumented image %s: %v", ref, err)
	}
	if len(src.Images) != 1 {
		t.Fatalf("%s holds %d images, want 1", ref, len(src.Images))
	}
	if _, err := layout.FromPath(strings.TrimPrefix(ref, "oci:")); err != nil {
		t.Fatalf("%s is not an OCI layout: %v", ref, err)
	}
	return src.Images[0].Image
}

// force builds the probe layer for an image crs-ci instrument refused, with core/instrument's own builder
// and the probe (libc, arch) given, to show what would happen if it had not refused.
func force(t *testing.T, ref string, which [2]string) v1.Image {
	t.Helper()
	src, err := image.Open(context.Background(), ref, image.Options{Platform: image.PlatformAll})
	if err != nil {
		t.Fatalf("opening %s: %v", ref, err)
	}
	p, fs, err := policy.ParseFile(filepath.Join("testdata", "policy.yaml"))
	if err != nil || policy.HasErrors(fs) {
		t.Fatalf("testdata/policy.yaml: %v %+v", err, fs)
	}
	compiled, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.Load(compiled)
	if err != nil {
		t.Fatal(err)
	}
	b, err := instrument.Build(instrument.BuildInput{
		Source: src, BaseName: ref, Policy: compiled, PolicyName: p.Name(), PolicySHA: c.SHA256(),
		Platforms: []instrument.PlatformInput{{Image: src.Images[0], Libc: which[0], Arch: which[1]}},
		ProbeFor:  probe.For,
	})
	if err != nil {
		t.Fatalf("forcing the %s/%s probe layer into %s: %v", which[0], which[1], ref, err)
	}
	return b.Image
}

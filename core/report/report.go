// Package report holds the one report every crs-ci command produces and renders it in each format
// (text, json, markdown; sarif and junit for the CI shims). Commands fill a Report; renderers never
// decide anything.
package report

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SchemaVersion is the version of the JSON report schema.
const SchemaVersion = 1

// Verdicts.
const (
	Compatible   = "compatible"
	Incompatible = "incompatible"
	Valid        = "valid"
	Invalid      = "invalid"
)

// Severities of findings.
const (
	Error   = "error"
	Warning = "warning"
	Info    = "info"
)

// Finding is one reason in a report: a stable code, a severity, a message, and where it applies
// (a path inside the image, or a file:line:col in a policy file).
type Finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Path     string `json:"path,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Hint     string `json:"hint,omitempty"`
}

// Libc describes the C library found for a platform.
type Libc struct {
	Family  string `json:"family"` // glibc, musl or none
	Version string `json:"version,omitempty"`
	Build   string `json:"build,omitempty"` // distro build string, when present
	Path    string `json:"path,omitempty"`
}

// Entrypoint describes the program the container runs.
type Entrypoint struct {
	Argv []string `json:"argv"`
	Path string   `json:"path,omitempty"` // resolved absolute path in the image
	Kind string   `json:"kind"`           // dynamic-glibc, dynamic-musl, static, go, script, missing, ...
}

// Platform is the verdict for one platform of an image.
type Platform struct {
	Platform   string      `json:"platform"`
	Digest     string      `json:"digest,omitempty"`
	Verdict    string      `json:"verdict"`
	Libc       Libc        `json:"libc"`
	Entrypoint *Entrypoint `json:"entrypoint,omitempty"`
	Findings   []Finding   `json:"findings"`
}

// PolicyFile is the validation result of one policy file.
type PolicyFile struct {
	File     string    `json:"file"`
	Name     string    `json:"name,omitempty"`
	Verdict  string    `json:"verdict"`
	SHA256   string    `json:"sha256,omitempty"` // of the compiled policy, when it compiled
	Findings []Finding `json:"findings"`
}

// Layered describes the instrumented image that was (or would be) written.
type Layered struct {
	Ref    string  `json:"ref"`
	Digest string  `json:"digest"`
	Pushed bool    `json:"pushed"`
	Layers []Layer `json:"layers,omitempty"`
}

// Layer is one added layer in a Layered image.
type Layer struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
}

// Report is what a command found. Fields that do not apply to a command are left empty.
type Report struct {
	SchemaVersion int          `json:"schemaVersion"`
	Command       string       `json:"command"`
	Image         string       `json:"image,omitempty"`
	Digest        string       `json:"digest,omitempty"`
	Verdict       string       `json:"verdict"`
	Platforms     []Platform   `json:"platforms,omitempty"`
	Policies      []PolicyFile `json:"policies,omitempty"`
	Layered       *Layered     `json:"layered,omitempty"`
}

// Renderer writes a report in one format.
type Renderer func(w io.Writer, r *Report) error

var renderers = map[string]Renderer{}

// Register adds a format. Each format's file registers itself in init.
func Register(format string, fn Renderer) { renderers[format] = fn }

// Formats lists the registered formats, sorted.
func Formats() []string {
	var out []string
	for f := range renderers {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Render writes r to w in format.
func Render(w io.Writer, format string, r *Report) error {
	fn, ok := renderers[format]
	if !ok {
		return fmt.Errorf("unknown report format %q (known: %s)", format, strings.Join(Formats(), ", "))
	}
	return fn(w, r)
}

// Target is one --report FMT=PATH request.
type Target struct {
	Format string
	Path   string
}

// ParseTarget parses FMT=PATH, checking that the format exists.
func ParseTarget(s string) (Target, error) {
	f, p, ok := strings.Cut(s, "=")
	if !ok || f == "" || p == "" {
		return Target{}, fmt.Errorf("--report %q: want FORMAT=PATH, e.g. json=crs-report.json", s)
	}
	if _, known := renderers[f]; !known {
		return Target{}, fmt.Errorf("--report %q: unknown format %q (known: %s)", s, f, strings.Join(Formats(), ", "))
	}
	return Target{Format: f, Path: p}, nil
}

// WriteFile renders r to t.Path atomically: a temporary file in the same directory, then a rename, so a
// reader never sees half a report.
func WriteFile(t Target, r *Report) error {
	dir := filepath.Dir(t.Path)
	tmp, err := os.CreateTemp(dir, ".crs-report-*")
	if err != nil {
		return fmt.Errorf("writing %s report %s: %w", t.Format, t.Path, err)
	}
	defer os.Remove(tmp.Name())
	if err := Render(tmp, t.Format, r); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s report %s: %w", t.Format, t.Path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s report %s: %w", t.Format, t.Path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), t.Path); err != nil {
		return fmt.Errorf("writing %s report %s: %w", t.Format, t.Path, err)
	}
	return nil
}

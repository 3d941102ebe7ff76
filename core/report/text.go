package report

import (
	"fmt"
	"io"
	"strings"
)

func init() { Register("text", renderText) }

// renderText writes the report for a person reading a terminal or a CI log: the verdict first, then one
// block per platform (libc, entrypoint, each finding), per policy file and for the layered image.
func renderText(w io.Writer, r *Report) error {
	tw := &errWriter{w: w}
	head := "crs-ci " + r.Command
	if r.Image != "" {
		head += " " + r.Image
	}
	tw.printf("%s\n", head)
	if r.Digest != "" {
		tw.printf("digest:  %s\n", r.Digest)
	}
	tw.printf("verdict: %s\n", strings.ToUpper(orDash(r.Verdict)))
	for _, p := range r.Platforms {
		tw.printf("\n%s: %s\n", p.Platform, strings.ToUpper(orDash(p.Verdict)))
		if p.Digest != "" {
			tw.printf("  manifest:   %s\n", p.Digest)
		}
		tw.printf("  libc:       %s\n", libcText(p.Libc))
		if p.Libc.Build != "" {
			tw.printf("  libc build: %s\n", p.Libc.Build)
		}
		if e := p.Entrypoint; e != nil {
			tw.printf("  entrypoint: %s\n", entrypointText(e))
		}
		writeFindingsText(tw, p.Findings, "  ")
	}
	for _, pf := range r.Policies {
		line := fmt.Sprintf("\n%s: %s", pf.File, strings.ToUpper(orDash(pf.Verdict)))
		if pf.Name != "" {
			line += fmt.Sprintf(" (policy %q)", pf.Name)
		}
		tw.printf("%s\n", line)
		if pf.SHA256 != "" {
			tw.printf("  compiled sha256: %s\n", pf.SHA256)
		}
		writeFindingsText(tw, pf.Findings, "  ")
	}
	if l := r.Layered; l != nil {
		state := "not pushed"
		if l.Pushed {
			state = "pushed"
		}
		tw.printf("\nlayered image: %s (%s)\n", l.Ref, state)
		if l.Digest != "" {
			tw.printf("  digest: %s\n", l.Digest)
		}
		for _, ly := range l.Layers {
			tw.printf("  %s: layer %s, %d bytes\n", ly.Platform, ly.Digest, ly.Size)
		}
	}
	return tw.err
}

func writeFindingsText(tw *errWriter, fs []Finding, indent string) {
	if len(fs) == 0 {
		return
	}
	for _, f := range fs {
		tw.printf("%s%-7s %s %s\n", indent, f.Severity, f.Code, findingText(f))
		if f.Hint != "" {
			tw.printf("%s        hint: %s\n", indent, f.Hint)
		}
	}
}

// findingText is "where: message", where is a file:line:col or an image path.
func findingText(f Finding) string {
	if where := findingWhere(f); where != "" {
		return where + ": " + f.Message
	}
	return f.Message
}

func findingWhere(f Finding) string {
	switch {
	case f.File != "" && f.Line > 0 && f.Column > 0:
		return fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Column)
	case f.File != "" && f.Line > 0:
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	case f.File != "":
		return f.File
	}
	return f.Path
}

func libcText(l Libc) string {
	s := orDash(l.Family)
	if l.Version != "" {
		s += " " + l.Version
	}
	if l.Path != "" {
		s += " (" + l.Path + ")"
	}
	return s
}

func entrypointText(e *Entrypoint) string {
	s := e.Kind
	if e.Path != "" {
		s = e.Path + " [" + e.Kind + "]"
	}
	if len(e.Argv) > 0 {
		s += " from " + quoteArgv(e.Argv)
	}
	return s
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error so renderers can print freely and report it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

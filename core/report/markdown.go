package report

import (
	"io"
	"strings"
)

func init() { Register("markdown", renderMarkdown) }

// renderMarkdown writes the report as GitHub-flavoured Markdown, for job summaries and pull-request
// comments: a heading with the verdict, a summary table of platforms or policy files, then the findings.
func renderMarkdown(w io.Writer, r *Report) error {
	mw := &errWriter{w: w}
	mw.printf("## crs-ci %s: %s %s\n\n", mdText(r.Command), verdictMark(r.Verdict), mdText(orDash(r.Verdict)))
	if r.Image != "" {
		mw.printf("Image: `%s`", mdCode(r.Image))
		if r.Digest != "" {
			mw.printf(" (`%s`)", mdCode(r.Digest))
		}
		mw.printf("\n\n")
	}
	if len(r.Platforms) > 0 {
		mw.printf("| platform | verdict | libc | entrypoint |\n|---|---|---|---|\n")
		for _, p := range r.Platforms {
			ep := "-"
			if p.Entrypoint != nil {
				ep = mdCell(p.Entrypoint.Kind)
				if p.Entrypoint.Path != "" {
					ep = "`" + mdCode(p.Entrypoint.Path) + "` " + ep
				}
			}
			mw.printf("| %s | %s %s | %s | %s |\n", mdCell(p.Platform), verdictMark(p.Verdict), mdCell(p.Verdict),
				mdCell(libcText(Libc{Family: p.Libc.Family, Version: p.Libc.Version})), ep)
		}
		mw.printf("\n")
		for _, p := range r.Platforms {
			if len(p.Findings) == 0 && p.Libc.Build == "" {
				continue
			}
			mw.printf("### %s\n\n", mdText(p.Platform))
			if p.Libc.Build != "" {
				mw.printf("libc build: %s\n\n", mdText(p.Libc.Build))
			}
			writeFindingsMarkdown(mw, p.Findings)
		}
	}
	if len(r.Policies) > 0 {
		mw.printf("| policy file | name | verdict | compiled sha256 |\n|---|---|---|---|\n")
		for _, pf := range r.Policies {
			sum := "-"
			if pf.SHA256 != "" {
				sum = "`" + mdCode(pf.SHA256) + "`"
			}
			mw.printf("| `%s` | %s | %s %s | %s |\n", mdCode(pf.File), mdCell(orDash(pf.Name)),
				verdictMark(pf.Verdict), mdCell(pf.Verdict), sum)
		}
		mw.printf("\n")
		for _, pf := range r.Policies {
			if len(pf.Findings) == 0 {
				continue
			}
			mw.printf("### %s\n\n", mdText(pf.File))
			writeFindingsMarkdown(mw, pf.Findings)
		}
	}
	if l := r.Layered; l != nil {
		state := "not pushed"
		if l.Pushed {
			state = "pushed"
		}
		mw.printf("### Layered image\n\n`%s` (%s)", mdCode(l.Ref), state)
		if l.Digest != "" {
			mw.printf(", digest `%s`", mdCode(l.Digest))
		}
		mw.printf("\n\n")
		if len(l.Layers) > 0 {
			mw.printf("| platform | added layer | size |\n|---|---|---|\n")
			for _, ly := range l.Layers {
				mw.printf("| %s | `%s` | %d |\n", mdCell(ly.Platform), mdCode(ly.Digest), ly.Size)
			}
			mw.printf("\n")
		}
	}
	return mw.err
}

func writeFindingsMarkdown(mw *errWriter, fs []Finding) {
	if len(fs) == 0 {
		mw.printf("No findings.\n\n")
		return
	}
	mw.printf("| severity | code | where | message |\n|---|---|---|---|\n")
	for _, f := range fs {
		where := "-"
		if w := findingWhere(f); w != "" {
			where = "`" + mdCode(w) + "`"
		}
		msg := mdCell(f.Message)
		if f.Hint != "" {
			msg += "<br>hint: " + mdCell(f.Hint)
		}
		mw.printf("| %s %s | %s | %s | %s |\n", severityMark(f.Severity), mdCell(f.Severity), mdCell(f.Code), where, msg)
	}
	mw.printf("\n")
}

func verdictMark(v string) string {
	switch v {
	case Compatible, Valid:
		return "✅"
	case Incompatible, Invalid:
		return "❌"
	}
	return "❔"
}

func severityMark(s string) string {
	switch s {
	case Error:
		return "❌"
	case Warning:
		return "⚠️"
	}
	return "ℹ️"
}

// mdText escapes characters that Markdown would interpret in running text.
var mdTextEscaper = strings.NewReplacer(`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;", "|", `\|`, "#", `\#`, "\n", " ")

func mdText(s string) string { return mdTextEscaper.Replace(s) }

// mdCell is mdText for a table cell.
func mdCell(s string) string { return mdText(s) }

// mdCode makes s safe inside a single-backtick code span in a table: no backticks, pipes or newlines.
func mdCode(s string) string {
	return strings.NewReplacer("`", "'", "|", `\|`, "\n", " ").Replace(s)
}

package events

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// SummarySchemaVersion is the version of the JSON summary document.
const SummarySchemaVersion = 1

// Formats of a rendered summary.
var Formats = []string{"text", "json", "markdown"}

// RenderOptions shape a rendered summary.
type RenderOptions struct {
	Top int // rows per table (0: 20); the JSON document always holds every counted key
}

// Render writes s in format (text, json or markdown).
func Render(w io.Writer, format string, s *Summary, opt RenderOptions) error {
	if opt.Top <= 0 {
		opt.Top = 20
	}
	switch format {
	case "text":
		return renderText(w, s, opt)
	case "json":
		return renderJSON(w, s)
	case "markdown", "md":
		return renderMarkdown(w, s, opt)
	}
	return fmt.Errorf("unknown summary format %q (known: %s)", format, strings.Join(Formats, ", "))
}

type groupsDoc struct {
	Total  int64   `json:"total"`
	Other  int64   `json:"other"` // events of groups beyond the memory bound
	Groups []Group `json:"groups"`
}

func docOf(g *GroupSet) groupsDoc {
	return groupsDoc{Total: g.Total, Other: g.Other, Groups: g.List()}
}

type summaryDoc struct {
	SchemaVersion int       `json:"schemaVersion"`
	Events        int64     `json:"events"`
	First         time.Time `json:"first,omitzero"`
	Last          time.Time `json:"last,omitzero"`
	Dropped       int64     `json:"dropped"`
	Truncated     int64     `json:"truncated"`
	Errors        []Bucket  `json:"probeErrors"`
	Input         Stats     `json:"input"`
	Policies      []string  `json:"policies"`
	WouldDeny     groupsDoc `json:"wouldDeny"`
	Denied        groupsDoc `json:"denied"`
	Alerts        groupsDoc `json:"alerts"`
	ByAction      []Bucket  `json:"byAction"`
	ByMode        []Bucket  `json:"byMode"`
	ByRule        []Bucket  `json:"byRule"`
	ByProgram     []Bucket  `json:"byProgram"`
	ByOp          []Bucket  `json:"byOp"`
	ByPrefix      []Bucket  `json:"byPrefix"`
}

func renderJSON(w io.Writer, s *Summary) error {
	pol := s.Policies
	if pol == nil {
		pol = []string{}
	}
	d := summaryDoc{
		SchemaVersion: SummarySchemaVersion, Events: s.Events, First: s.First, Last: s.Last,
		Dropped: s.Dropped, Truncated: s.Truncated, Errors: s.Errors.Top(0), Input: s.Input, Policies: pol,
		WouldDeny: docOf(s.WouldDeny), Denied: docOf(s.Denied), Alerts: docOf(s.Alerts),
		ByAction: s.ByAction.Top(0), ByMode: s.ByMode.Top(0), ByRule: s.ByRule.Top(0),
		ByProgram: s.ByProgram.Top(0), ByOp: s.ByOp.Top(0), ByPrefix: s.ByPrefix.Top(0),
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&d)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func ruleName(r string) string {
	if r == "" {
		return DefaultRule
	}
	return r
}

func inputNote(s *Summary) string {
	var parts []string
	if s.Input.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d non-event lines skipped", s.Input.Skipped))
	}
	if s.Input.Malformed > 0 {
		parts = append(parts, fmt.Sprintf("%d malformed lines (first: %s)", s.Input.Malformed, s.Input.FirstMalformed))
	}
	if s.Input.Oversized > 0 {
		parts = append(parts, fmt.Sprintf("%d oversized lines skipped", s.Input.Oversized))
	}
	return strings.Join(parts, "; ")
}

func renderText(w io.Writer, s *Summary, opt RenderOptions) error {
	ew := &errWriter{w: w}
	ew.printf("%s", plural(s.Events, "event"))
	if s.Events > 0 {
		ew.printf(" from %s to %s", fmtTime(s.First), fmtTime(s.Last))
	}
	ew.printf(" (%d lines read)\n", s.Input.Lines)
	if n := inputNote(s); n != "" {
		ew.printf("input: %s\n", n)
	}
	if s.Dropped > 0 {
		ew.printf("WARNING: the probe dropped %d events it could not write: this summary is incomplete\n", s.Dropped)
	}
	for _, b := range s.Errors.Top(opt.Top) {
		ew.printf("PROBE ERROR: %s: %s, first %s\n", b.Key, plural(b.Count, "event"), fmtTime(b.First))
	}
	if s.Truncated > 0 {
		ew.printf("note: %d events have a field the probe cut short\n", s.Truncated)
	}
	for _, p := range s.Policies {
		ew.printf("policy: %s\n", p)
	}
	sections := []struct {
		title string
		g     *GroupSet
	}{
		{"WOULD HAVE BEEN DENIED (audit mode): enforce mode would stop these", s.WouldDeny},
		{"DENIED (enforce mode)", s.Denied},
		{"ALERTS", s.Alerts},
	}
	for _, sec := range sections {
		if sec.g.Total == 0 && sec.g != s.WouldDeny {
			continue
		}
		ew.printf("\n%s: %s\n", sec.title, plural(sec.g.Total, "event"))
		list := sec.g.List()
		if len(list) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(ew, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  COUNT\tPROGRAM\tOP\tSUBJECT\tRULE\tFIRST\tLAST")
		for i, g := range list {
			if i == opt.Top {
				fmt.Fprintf(tw, "  …\t%d more groups\t\t\t\t\t\n", len(list)-opt.Top)
				break
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Count, g.Program, g.Op, g.Subject, ruleName(g.Rule),
				fmtTime(g.First), fmtTime(g.Last))
		}
		if sec.g.Other > 0 {
			fmt.Fprintf(tw, "  %d\t%s\t\t\t\t\t\n", sec.g.Other, OtherKey)
		}
		tw.Flush()
	}
	counters := []struct {
		title string
		c     *Counter
	}{
		{"by action", s.ByAction}, {"by mode", s.ByMode}, {"by rule", s.ByRule}, {"by program", s.ByProgram},
		{"by op", s.ByOp}, {"by path/address prefix", s.ByPrefix},
	}
	for _, ct := range counters {
		top := ct.c.Top(opt.Top)
		if len(top) == 0 {
			continue
		}
		ew.printf("\n%s:\n", ct.title)
		tw := tabwriter.NewWriter(ew, 2, 4, 2, ' ', 0)
		for _, b := range top {
			fmt.Fprintf(tw, "  %d\t%s\t%s … %s\n", b.Count, b.Key, fmtTime(b.First), fmtTime(b.Last))
		}
		tw.Flush()
	}
	return ew.err
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "`", "'", "\n", " ", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

func renderMarkdown(w io.Writer, s *Summary, opt RenderOptions) error {
	ew := &errWriter{w: w}
	ew.printf("### crs-ci runtime events\n\n")
	ew.printf("**%s**", plural(s.Events, "event"))
	if s.Events > 0 {
		ew.printf(" from %s to %s", fmtTime(s.First), fmtTime(s.Last))
	}
	ew.printf(" — %d would have been denied (audit), %d denied (enforce), %d alerts.\n\n",
		s.WouldDeny.Total, s.Denied.Total, s.Alerts.Total)
	if n := inputNote(s); n != "" {
		ew.printf("> Input: %s\n\n", mdEscape(n))
	}
	for _, b := range s.Errors.Top(opt.Top) {
		ew.printf("> [!CAUTION]\n> Probe error: %s — %s, first %s\n\n", mdEscape(b.Key), plural(b.Count, "event"), fmtTime(b.First))
	}
	if s.Dropped > 0 {
		ew.printf("> [!WARNING]\n> The probe dropped %d events it could not write: this summary is incomplete.\n\n", s.Dropped)
	}
	sections := []struct {
		title string
		g     *GroupSet
	}{
		{"Would have been denied (audit mode)", s.WouldDeny},
		{"Denied (enforce mode)", s.Denied},
		{"Alerts", s.Alerts},
	}
	for _, sec := range sections {
		if sec.g.Total == 0 {
			continue
		}
		ew.printf("#### %s: %s\n\n", sec.title, plural(sec.g.Total, "event"))
		ew.printf("| count | program | op | subject | rule | first | last |\n|---:|---|---|---|---|---|---|\n")
		list := sec.g.List()
		for i, g := range list {
			if i == opt.Top {
				ew.printf("| … | %d more groups | | | | | |\n", len(list)-opt.Top)
				break
			}
			ew.printf("| %d | `%s` | %s | `%s` | %s | %s | %s |\n", g.Count, mdEscape(g.Program), mdEscape(g.Op),
				mdEscape(g.Subject), mdEscape(ruleName(g.Rule)), fmtTime(g.First), fmtTime(g.Last))
		}
		if sec.g.Other > 0 {
			ew.printf("| %d | %s | | | | | |\n", sec.g.Other, OtherKey)
		}
		ew.printf("\n")
	}
	if s.WouldDeny.Total == 0 && s.Denied.Total == 0 {
		ew.printf("Nothing was denied or would have been denied.\n\n")
	}
	ew.printf("<details><summary>Totals by action, rule, program, op and prefix</summary>\n\n")
	counters := []struct {
		title string
		c     *Counter
	}{
		{"action", s.ByAction}, {"rule", s.ByRule}, {"program", s.ByProgram}, {"op", s.ByOp},
		{"path/address prefix", s.ByPrefix},
	}
	for _, ct := range counters {
		top := ct.c.Top(opt.Top)
		if len(top) == 0 {
			continue
		}
		ew.printf("| %s | events | first | last |\n|---|---:|---|---|\n", ct.title)
		for _, b := range top {
			ew.printf("| `%s` | %d | %s | %s |\n", mdEscape(b.Key), b.Count, fmtTime(b.First), fmtTime(b.Last))
		}
		ew.printf("\n")
	}
	ew.printf("</details>\n")
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }

// plural writes "1 event", "2 events".
func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

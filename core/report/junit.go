package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

func init() { Register("junit", renderJUnit) }

// JUnit XML, the subset every CI system reads (Jenkins junit, Azure PublishTestResults@2, GitLab):
// testsuites > testsuite > testcase with failure and system-out.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// renderJUnit writes one test suite per report part: for each image platform one test case per
// finding (errors fail; warnings and notes pass and show in system-out), or a single passing case
// when the platform had none; for each policy file one test case that fails when the file has an
// error, listing every finding with file:line:col.
func renderJUnit(w io.Writer, r *Report) error {
	out := junitSuites{Name: "crs-ci " + r.Command}
	if len(r.Platforms) > 0 {
		s := junitSuite{Name: strings.TrimSpace("crs-ci " + r.Command + " " + r.Image)}
		for _, p := range r.Platforms {
			class := "crs-ci." + r.Command + "." + p.Platform
			if len(p.Findings) == 0 {
				s.Cases = append(s.Cases, junitCase{Classname: class, Name: p.Platform + ": " + p.Verdict})
				continue
			}
			for _, f := range p.Findings {
				c := junitCase{Classname: class, Name: f.Code + ": " + f.Message}
				body := junitFindingText(f)
				if f.Severity == Error {
					c.Failure = &junitFailure{Message: f.Message, Type: f.Code, Text: body}
				} else {
					c.SystemOut = f.Severity + ": " + body
				}
				s.Cases = append(s.Cases, c)
			}
		}
		out.Suites = append(out.Suites, s)
	}
	if len(r.Policies) > 0 {
		s := junitSuite{Name: "crs-ci policy"}
		for _, p := range r.Policies {
			c := junitCase{Classname: "crs-ci.policy", Name: p.File + ": " + p.Verdict, File: p.File}
			var errs, rest []string
			first := ""
			for _, f := range p.Findings {
				if f.File == "" {
					f.File = p.File
				}
				line := f.Severity + " " + junitFindingText(f)
				if f.Severity == Error {
					if first == "" {
						first = f.Message
						c.Line = f.Line
					}
					errs = append(errs, line)
				} else {
					rest = append(rest, line)
				}
			}
			if len(errs) > 0 {
				c.Failure = &junitFailure{
					Message: fmt.Sprintf("%d error(s); first: %s", len(errs), first),
					Type:    "invalid-policy",
					Text:    strings.Join(append(errs, rest...), "\n"),
				}
			} else if len(rest) > 0 {
				c.SystemOut = strings.Join(rest, "\n")
			}
			s.Cases = append(s.Cases, c)
		}
		out.Suites = append(out.Suites, s)
	}
	if r.Layered != nil {
		out.Suites = append(out.Suites, junitSuite{Name: "crs-ci layered image", Cases: []junitCase{{
			Classname: "crs-ci." + r.Command + ".layered",
			Name:      "layered image " + r.Layered.Ref,
			SystemOut: fmt.Sprintf("ref: %s\ndigest: %s\npushed: %t", r.Layered.Ref, r.Layered.Digest, r.Layered.Pushed),
		}}})
	}
	for i := range out.Suites {
		s := &out.Suites[i]
		s.Tests = len(s.Cases)
		for _, c := range s.Cases {
			if c.Failure != nil {
				s.Failures++
			}
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(&out); err != nil {
		return fmt.Errorf("encoding JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// junitFindingText is one finding on one line: where, code, message, hint.
func junitFindingText(f Finding) string {
	var b strings.Builder
	switch {
	case f.File != "":
		fmt.Fprintf(&b, "%s:%d:%d: ", f.File, f.Line, f.Column)
	case f.Path != "":
		b.WriteString(f.Path + ": ")
	}
	b.WriteString(f.Code + ": " + f.Message)
	if f.Hint != "" {
		b.WriteString(" (hint: " + f.Hint + ")")
	}
	return b.String()
}

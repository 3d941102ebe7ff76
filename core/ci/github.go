package ci

import (
	"fmt"
	"strconv"

	"github.com/sethvargo/go-githubactions"

	"github.com/crs-ci/crs-ci/core/report"
)

func (p *Publisher) github() *githubactions.Action {
	return githubactions.New(githubactions.WithWriter(p.out), githubactions.WithGetenv(p.getenv))
}

// publishGitHub writes step outputs to $GITHUB_OUTPUT, one annotation per finding (policy findings
// carry file, line and col so they land on the pull request's diff), a tool-error annotation when
// the tool failed, and the step summary unless it was turned off.
func (p *Publisher) publishGitHub(res Result) error {
	gh := p.github()
	if p.getenv("GITHUB_OUTPUT") == "" {
		// A container started from a step (docker run -e GITHUB_ACTIONS ...) has no outputs file:
		// say so, and still annotate.
		gh.Warningf("crs-ci: GITHUB_OUTPUT is not set, so no step outputs were written (pass --ci none outside a step)")
	} else {
		outs := res.Outputs()
		for _, k := range sortedKeys(outs) {
			gh.SetOutput(k, outs[k])
		}
	}
	root := p.getenv("GITHUB_WORKSPACE")
	for _, f := range findings(res.Report) {
		fields := map[string]string{"title": title(f)}
		if f.File != "" {
			fields["file"] = relPath(root, f.File)
			if f.Line > 0 {
				fields["line"] = strconv.Itoa(f.Line)
			}
			if f.Column > 0 {
				fields["col"] = strconv.Itoa(f.Column)
			}
		}
		a := gh.WithFieldsMap(fields)
		switch f.Severity {
		case report.Error:
			a.Errorf("%s", message(f))
		case report.Warning:
			a.Warningf("%s", message(f))
		default:
			a.Noticef("%s", message(f))
		}
	}
	if res.Outcome() == "error" {
		gh.WithFieldsMap(map[string]string{"title": fmt.Sprintf("crs-ci tool error (exit %d)", res.ExitCode())}).
			Errorf("%s", errText(res.Err))
	}
	if !p.opts.NoSummary && p.getenv("GITHUB_STEP_SUMMARY") != "" {
		md, err := summaryMarkdown(res)
		if err != nil {
			return err
		}
		gh.AddStepSummary(md)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

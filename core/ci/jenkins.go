package ci

import (
	"fmt"
	"strings"
)

// publishJenkins prints a plain result line and where the reports are, for the shared library step
// (which publishes junit and sarif from those paths) and for people reading the console.
func (p *Publisher) publishJenkins(res Result) error {
	outs := res.Outputs()
	var b strings.Builder
	fmt.Fprintf(&b, "crs-ci: result=%s verdict=%s exit-code=%s errors=%s warnings=%s\n",
		outs["result"], outs["verdict"], outs["exit-code"], outs["errors"], outs["warnings"])
	if outs["layered-ref"] != "" {
		fmt.Fprintf(&b, "crs-ci: layered %s@%s pushed=%s\n", outs["layered-ref"], outs["layered-digest"], outs["layered-pushed"])
	}
	for _, t := range res.Reports {
		fmt.Fprintf(&b, "crs-ci: report %s: %s\n", t.Format, outs["report-"+t.Format])
	}
	if res.Outcome() == "error" {
		fmt.Fprintf(&b, "crs-ci: tool error (exit %d), not a policy verdict: %s\n", res.ExitCode(), errText(res.Err))
	}
	if _, err := fmt.Fprint(p.out, b.String()); err != nil {
		return fmt.Errorf("writing the Jenkins log lines: %w", err)
	}
	return nil
}

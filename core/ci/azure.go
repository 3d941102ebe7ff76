package ci

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crs-ci/crs-ci/core/report"
)

// Azure logging commands: ##vso[area.action key=value;...]message. Escaping follows
// azure-pipelines-task-lib's taskcommand: data escapes %, CR and LF; property values also ] and ;.
var (
	azureDataEscaper = strings.NewReplacer("%", "%AZP25", "\r", "%0D", "\n", "%0A")
	azurePropEscaper = strings.NewReplacer("%", "%AZP25", "\r", "%0D", "\n", "%0A", "]", "%5D", ";", "%3B")
)

func azureData(s string) string { return azureDataEscaper.Replace(s) }

// azureCommand formats one logging command; props are key, value pairs kept in order, and empty
// values are left out.
func azureCommand(cmd, msg string, props ...string) string {
	var b strings.Builder
	b.WriteString("##vso[" + cmd)
	sep := " "
	for i := 0; i+1 < len(props); i += 2 {
		if props[i+1] == "" {
			continue
		}
		b.WriteString(sep + props[i] + "=" + azurePropEscaper.Replace(props[i+1]))
		sep = ";"
	}
	b.WriteString("]" + azureData(msg) + "\n")
	return b.String()
}

// azureVarName spells an output key the Azure way: layered-ref → layeredRef.
func azureVarName(k string) string {
	parts := strings.Split(k, "-")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// publishAzure prints output variables (isOutput=true, so later jobs can read them too), one
// task.logissue per error or warning finding (policy findings with sourcepath/linenumber/columnnumber),
// a tool-error issue when the tool failed, and uploads the Markdown summary.
func (p *Publisher) publishAzure(res Result) error {
	var b strings.Builder
	outs := res.Outputs()
	for _, k := range sortedKeys(outs) {
		b.WriteString(azureCommand("task.setvariable", outs[k], "variable", azureVarName(k), "isOutput", "true"))
	}
	root := p.getenv("BUILD_SOURCESDIRECTORY")
	for _, f := range findings(res.Report) {
		typ := ""
		switch f.Severity {
		case report.Error:
			typ = "error"
		case report.Warning:
			typ = "warning"
		default:
			continue // Azure issues are errors or warnings only; the log has the rest
		}
		var line, col, src string
		if f.File != "" {
			src = relPath(root, f.File)
			if f.Line > 0 {
				line = fmt.Sprint(f.Line)
			}
			if f.Column > 0 {
				col = fmt.Sprint(f.Column)
			}
		}
		b.WriteString(azureCommand("task.logissue", title(f)+": "+message(f),
			"type", typ, "sourcepath", src, "linenumber", line, "columnnumber", col, "code", f.Code))
	}
	if res.Outcome() == "error" {
		b.WriteString(azureCommand("task.logissue",
			fmt.Sprintf("crs-ci tool error (exit %d): %s", res.ExitCode(), errText(res.Err)),
			"type", "error", "code", "tool-error"))
	}
	if !p.opts.NoSummary {
		path, err := p.azureSummaryFile(res)
		if err != nil {
			return err
		}
		b.WriteString(azureCommand("task.uploadsummary", path))
	}
	if _, err := fmt.Fprint(p.out, b.String()); err != nil {
		return fmt.Errorf("writing Azure Pipelines logging commands: %w", err)
	}
	return nil
}

// azureSummaryFile writes the summary Markdown beside the agent's temporary files and returns its
// absolute path (uploadsummary wants one).
func (p *Publisher) azureSummaryFile(res Result) (string, error) {
	md, err := summaryMarkdown(res)
	if err != nil {
		return "", err
	}
	dir := p.getenv("AGENT_TEMPDIRECTORY")
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "crs-ci-summary-*.md")
	if err != nil {
		return "", fmt.Errorf("writing the Azure Pipelines summary in %s: %w", dir, err)
	}
	if _, err := f.WriteString(md); err != nil {
		f.Close()
		return "", fmt.Errorf("writing the Azure Pipelines summary %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing the Azure Pipelines summary %s: %w", f.Name(), err)
	}
	return filepath.Abs(f.Name())
}

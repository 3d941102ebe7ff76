package policy

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/crs-ci/crs-ci/core/report"
)

// WriteFindings writes findings the way compilers do: `file:line:col: severity: code: message`, the source
// line with a caret under the column, and the hint. src is the file's content (nil: no snippet).
func WriteFindings(w io.Writer, fs []report.Finding, src []byte) error {
	var lines [][]byte
	if src != nil {
		lines = bytes.Split(src, []byte("\n"))
	}
	for _, f := range fs {
		if _, err := fmt.Fprintf(w, "%s:%d:%d: %s: %s: %s\n", f.File, f.Line, f.Column, f.Severity, f.Code, f.Message); err != nil {
			return err
		}
		if f.Line >= 1 && f.Line <= len(lines) {
			text := strings.TrimRight(string(lines[f.Line-1]), "\r")
			if len(text) <= 200 {
				gutter := fmt.Sprintf("%5d | ", f.Line)
				fmt.Fprintf(w, "%s%s\n", gutter, strings.ReplaceAll(text, "\t", " "))
				col := max(f.Column, 1)
				fmt.Fprintf(w, "%s%s^\n", strings.Repeat(" ", len(gutter)-2)+"| ", strings.Repeat(" ", min(col-1, len(text))))
			}
		}
		if f.Hint != "" {
			fmt.Fprintf(w, "      = hint: %s\n", f.Hint)
		}
	}
	return nil
}

package suggest

import (
	"fmt"
	"strings"
)

// UnifiedDiff returns the unified diff (3 lines of context) turning a into b, with the file names in
// the --- and +++ headers, or "" when they are equal. It is a plain longest-common-subsequence diff over
// the lines between the common head and tail: policy files are small.
func UnifiedDiff(nameA, nameB string, a, b []byte) string {
	if string(a) == string(b) {
		return ""
	}
	al, bl := splitLines(string(a)), splitLines(string(b))
	ops := diffLines(al, bl)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	const ctx = 3
	// Walk the edit script, emitting hunks around changes.
	type line struct {
		op   byte // ' ', '-', '+'
		text string
		ai   int // line number in a (1-based) of this or the next a line
		bi   int
	}
	var ls []line
	ai, bi := 1, 1
	for _, op := range ops {
		switch op.op {
		case ' ':
			ls = append(ls, line{' ', al[ai-1], ai, bi})
			ai++
			bi++
		case '-':
			ls = append(ls, line{'-', al[ai-1], ai, bi})
			ai++
		case '+':
			ls = append(ls, line{'+', bl[bi-1], ai, bi})
			bi++
		}
	}
	for i := 0; i < len(ls); {
		if ls[i].op == ' ' {
			i++
			continue
		}
		start := max(0, i-ctx)
		end := i
		for end < len(ls) {
			if ls[end].op != ' ' {
				end++
				continue
			}
			// a run of context: does another change follow within 2*ctx lines?
			j := end
			for j < len(ls) && ls[j].op == ' ' {
				j++
			}
			if j < len(ls) && j-end <= 2*ctx {
				end = j
				continue
			}
			end = min(len(ls), end+ctx)
			break
		}
		var na, nb int
		for _, l := range ls[start:end] {
			if l.op != '+' {
				na++
			}
			if l.op != '-' {
				nb++
			}
		}
		sa, sb := ls[start].ai, ls[start].bi
		if na == 0 {
			sa--
		}
		if nb == 0 {
			sb--
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(sa, na), hunkRange(sb, nb))
		for _, l := range ls[start:end] {
			out.WriteByte(l.op)
			text, noEOL := strings.CutSuffix(l.text, noEOLMark)
			out.WriteString(text)
			out.WriteByte('\n')
			if noEOL {
				out.WriteString("\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}

// splitLines splits text into lines without their newlines; a missing final newline is remembered
// by a trailing marker line.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	noEOL := !strings.HasSuffix(s, "\n")
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if noEOL {
		lines[len(lines)-1] += noEOLMark
	}
	return lines
}

// noEOLMark tags the last line of a text without a final newline, so that it differs from the same
// line with one (and the diff says so).
const noEOLMark = "\x00noeol"

type editOp struct{ op byte }

// diffLines returns an edit script (' ' keep, '-' delete from a, '+' insert from b).
func diffLines(a, b []string) []editOp {
	var ops []editOp
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	for i := 0; i < pre; i++ {
		ops = append(ops, editOp{' '})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	// LCS table over the middle.
	n, m := len(ma), len(mb)
	t := make([][]int32, n+1)
	for i := range t {
		t[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if ma[i] == mb[j] {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && ma[i] == mb[j]:
			ops = append(ops, editOp{' '})
			i++
			j++
		case i < n && (j == m || t[i+1][j] >= t[i][j+1]):
			ops = append(ops, editOp{'-'})
			i++
		default:
			ops = append(ops, editOp{'+'})
			j++
		}
	}
	for k := 0; k < suf; k++ {
		ops = append(ops, editOp{' '})
	}
	return ops
}

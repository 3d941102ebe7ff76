package policy

import (
	"fmt"
	"strings"
)

// didYouMean returns a hint naming the closest candidate to s, or "" when none is close.
func didYouMean(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf("did you mean %q?", c)
	}
	return ""
}

// synonyms are words from other tools (firewalls, Qualys CRS policy modes, Kubernetes) mapped to ours.
var synonyms = map[string]string{
	"outgoing": "outbound", "egress": "outbound", "incoming": "inbound", "ingress": "inbound", "both": "any",
	"block": "deny", "reject": "deny", "drop": "deny", "permit": "allow", "accept": "allow", "log": "alert",
	"warn": "alert", "active": "enforce", "permissive": "audit", "inactive": "off", "disabled": "off",
	"execute": "exec", "network_outbound": "outbound", "network_inbound": "inbound",
}

// closest returns the candidate with the smallest edit distance to s when that distance is small
// for the word's length (at most 1 for short words, 2 for ordinary ones, 3 for long ones).
func closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	if syn, ok := synonyms[ls]; ok {
		for _, c := range candidates {
			if c == syn {
				return c
			}
		}
	}
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	if bestD > 0 && len(ls) >= 4 {
		// a word cut short or run on ("enforcing" for "enforce") is also a near miss
		for _, c := range candidates {
			lc := strings.ToLower(c)
			if len(lc) >= 4 && (strings.HasPrefix(ls, lc[:len(lc)-1]) || strings.HasPrefix(lc, ls)) {
				return c
			}
		}
	}
	limit := 2
	switch {
	case len(s) <= 3:
		limit = 1
	case len(s) >= 10:
		limit = 3
	}
	if bestD <= limit && bestD < len(s) {
		return best
	}
	return ""
}

// editDistance is the Damerau–Levenshtein distance (with adjacent transpositions) of a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	rows := make([][]int, len(a)+1)
	for i := range rows {
		rows[i] = make([]int, len(b)+1)
		rows[i][0] = i
	}
	for j := 0; j <= len(b); j++ {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(rows[i-1][j]+1, rows[i][j-1]+1, rows[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, rows[i-2][j-2]+1)
			}
			rows[i][j] = v
		}
	}
	return rows[len(a)][len(b)]
}

// oneOf formats candidates as "a, b or c".
func oneOf(cands []string) string {
	switch len(cands) {
	case 0:
		return ""
	case 1:
		return cands[0]
	}
	return strings.Join(cands[:len(cands)-1], ", ") + " or " + cands[len(cands)-1]
}

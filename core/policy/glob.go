package policy

import (
	"fmt"
	"strings"
)

// Glob syntax (docs/compiled-policy.md, "Globs"): `*` within a component, `**` as a whole component
// (zero or more components; trailing `/**` one or more), `?`, classes `[abc]` `[a-z]` `[!a-z]` `[^a-z]`,
// `\` escaping the next character. A "character" is one byte, as in the C probe.

const globMeta = "*?[\\"

// isLiteral reports whether a pattern has no glob metacharacter (it is compared byte for byte).
func isLiteral(p string) bool { return !strings.ContainsAny(p, globMeta) }

// indexKey is the directory prefix a pattern is indexed under: its literal prefix (the bytes before
// the first metacharacter) cut after its last '/'.
func indexKey(p string) string {
	lit := p
	if i := strings.IndexAny(p, globMeta); i >= 0 {
		lit = p[:i]
	}
	if j := strings.LastIndexByte(lit, '/'); j >= 0 {
		return lit[:j+1]
	}
	return ""
}

// checkGlob validates an absolute glob; it returns a problem and a hint, or "" when the glob is fine.
func checkGlob(p string) (problem, hint string) {
	if p == "" {
		return "empty path", "write an absolute path such as /etc/shadow"
	}
	if p[0] != '/' {
		return fmt.Sprintf("path %q is relative", p), fmt.Sprintf("paths must be absolute: did you mean %q?", "/"+strings.TrimPrefix(p, "./"))
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Sprintf("path %q contains a NUL byte", p), "remove it"
	}
	if p == "/" {
		return "", ""
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Sprintf("path %q ends with '/'", p), fmt.Sprintf("write %q for everything below the directory, or %q for the directory itself", p+"**", strings.TrimSuffix(p, "/"))
	}
	for _, c := range strings.Split(p[1:], "/") {
		switch {
		case c == "":
			return fmt.Sprintf("path %q has an empty component ('//')", p), "paths are normalised: use a single '/'"
		case c == "." || c == "..":
			return fmt.Sprintf("path %q has a %q component", p, c), "paths are matched after lexical normalisation: write the normalised path"
		case c != "**" && strings.Contains(c, "**"):
			return fmt.Sprintf("path %q: '**' must be a whole path component", p), "use '*' inside a component, or '/**/' across components"
		}
		if prob, h := checkComponent(c); prob != "" {
			return fmt.Sprintf("path %q: %s", p, prob), h
		}
	}
	return "", ""
}

func checkComponent(c string) (string, string) {
	for i := 0; i < len(c); i++ {
		switch c[i] {
		case '\\':
			if i+1 >= len(c) {
				return "trailing '\\' escapes nothing", `write \\ for a literal backslash`
			}
			i++
		case '[':
			end, prob := classEnd(c, i)
			if prob != "" {
				return prob, "a class looks like [abc], [a-z] or [!a-z]; escape a literal '[' as \\["
			}
			i = end
		case ']':
			// a lone ']' is an ordinary character
		}
	}
	return "", ""
}

// classEnd validates the class starting at c[i] == '[' and returns the index of its closing ']'.
func classEnd(c string, i int) (int, string) {
	j := i + 1
	if j < len(c) && (c[j] == '!' || c[j] == '^') {
		j++
	}
	items := 0
	for j < len(c) && (c[j] != ']' || items == 0) { // a ']' first in the class is an ordinary member
		lo := c[j]
		if lo == '\\' {
			if j+1 >= len(c) {
				return 0, "unterminated character class"
			}
			j++
			lo = c[j]
		}
		j++
		if j+1 < len(c) && c[j] == '-' && c[j+1] != ']' {
			hi := c[j+1]
			j += 2
			if hi == '\\' {
				if j >= len(c) {
					return 0, "unterminated character class"
				}
				hi = c[j]
				j++
			}
			if hi < lo {
				return 0, fmt.Sprintf("character class range %c-%c is reversed", lo, hi)
			}
		}
		items++
	}
	if j >= len(c) {
		return 0, "unterminated character class"
	}
	return j, ""
}

// matchGlob reports whether the absolute path s matches the glob p.
func matchGlob(p, s string) bool {
	if isLiteral(p) {
		return p == s
	}
	if strings.HasPrefix(p, "/") != strings.HasPrefix(s, "/") {
		return false // a relative program name never matches an absolute glob
	}
	pc := splitPath(p)
	sc := splitPath(s)
	if n := len(pc); n > 0 && pc[n-1] == "**" {
		// a trailing /** needs at least one non-empty component below: "any component, then zero or more".
		pc = append(pc[:n-1:n-1], anyComponent, "**")
	}
	// Greedy matching with backtracking to the last "**", as for '*' within a component.
	pi, si := 0, 0
	starP, starS := -1, -1
	for si < len(sc) {
		if pi < len(pc) {
			if pc[pi] == "**" {
				starP, starS = pi, si
				pi++
				continue
			}
			if (pc[pi] == anyComponent && sc[si] != "") || (pc[pi] != anyComponent && matchComponent(pc[pi], sc[si])) {
				pi++
				si++
				continue
			}
		}
		if starP >= 0 {
			pi = starP + 1
			starS++
			si = starS
			continue
		}
		return false
	}
	for pi < len(pc) && pc[pi] == "**" {
		pi++
	}
	return pi == len(pc)
}

// anyComponent stands for one non-empty component (it cannot occur in a pattern: '/' splits them).
const anyComponent = "/"

// splitPath splits an absolute path into its components; "/" is one empty component, so "/*" matches
// it (a `*` matches the empty run) and "/**" does not (nothing lies below the root's name).
func splitPath(s string) []string {
	return strings.Split(strings.TrimPrefix(s, "/"), "/")
}

// matchComponent matches one path component against one pattern component.
func matchComponent(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, -1
	for si < len(s) {
		if pi < len(p) {
			if p[pi] == '*' {
				starP, starS = pi, si
				pi++
				continue
			}
			if ok, next := matchOne(p, pi, s[si]); ok {
				pi = next
				si++
				continue
			}
		}
		if starP >= 0 {
			pi = starP + 1
			starS++
			si = starS
			continue
		}
		return false
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchOne matches the single-character token at p[i] against b; it returns the index after the token.
func matchOne(p string, i int, b byte) (bool, int) {
	switch p[i] {
	case '?':
		return b != '/', i + 1
	case '\\':
		if i+1 < len(p) {
			return p[i+1] == b, i + 2
		}
		return b == '\\', i + 1
	case '[':
		if ok, next, valid := matchClass(p, i, b); valid {
			return ok, next
		}
		return b == '[', i + 1 // an unterminated class is a literal '['
	}
	return p[i] == b, i + 1
}

// matchClass matches b against the class at p[i] == '['. valid is false when the class is unterminated.
func matchClass(p string, i int, b byte) (match bool, next int, valid bool) {
	j := i + 1
	neg := false
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		neg = true
		j++
	}
	found, first := false, true
	for j < len(p) && (p[j] != ']' || first) {
		first = false
		lo := p[j]
		if lo == '\\' && j+1 < len(p) {
			j++
			lo = p[j]
		}
		j++
		hi := lo
		if j+1 < len(p) && p[j] == '-' && p[j+1] != ']' {
			hi = p[j+1]
			j += 2
			if hi == '\\' && j < len(p) {
				hi = p[j]
				j++
			}
		}
		if lo <= b && b <= hi {
			found = true
		}
	}
	if j >= len(p) {
		return false, 0, false
	}
	if b == '/' {
		return false, j + 1, true
	}
	return found != neg, j + 1, true
}

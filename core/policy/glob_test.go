package policy

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pat, path string
		want      bool
	}{
		{"/etc/shadow", "/etc/shadow", true},
		{"/etc/shadow", "/etc/shadow-", false},
		{"/etc/*", "/etc/passwd", true},
		{"/etc/*", "/etc/ssl/certs", false},
		{"/etc/*", "/etc", false},
		{"/usr/bin/*sh", "/usr/bin/bash", true},
		{"/usr/bin/*sh", "/usr/bin/sh", true},
		{"/usr/bin/*sh", "/usr/bin/shell", false},
		{"/root/**", "/root/x", true},
		{"/root/**", "/root/x/y/z", true},
		{"/root/**", "/root", false},
		{"/root/**", "/rootx/y", false},
		{"/**", "/anything/at/all", true},
		{"/**", "/", false},
		{"/a/**/b", "/a/b", true},
		{"/a/**/b", "/a/x/y/b", true},
		{"/a/**/b", "/a/x/y/c", false},
		{"/a/**/b", "/a/b/c", false},
		{"/**/b", "/b", true},
		{"/**/b", "/x/y/b", true},
		{"/a/**/b/**", "/a/x/b/y", true},
		{"/a/**/b/**", "/a/x/b", false},
		{"/a/**/**/b", "/a/b", true},
		{"/log/app?.log", "/log/app1.log", true},
		{"/log/app?.log", "/log/app12.log", false},
		{"/log/app?.log", "/log/app.log", false},
		{"/d/[abc]", "/d/b", true},
		{"/d/[abc]", "/d/d", false},
		{"/d/[a-c]x", "/d/cx", true},
		{"/d/[!a-c]x", "/d/cx", false},
		{"/d/[!a-c]x", "/d/dx", true},
		{"/d/[^a-c]x", "/d/dx", true},
		{"/d/[!a]", "/d//", false},
		{"/d/odd\\*name", "/d/odd*name", true},
		{"/d/odd\\*name", "/d/oddXname", false},
		{"/d/\\[x]", "/d/[x]", true},
		{"/d/*.[ch]", "/d/main.c", true},
		{"/d/[]a]", "/d/]", true},
		{"/d/[]a]", "/d/a", true},
		{"/d/[!]a]", "/d/]", false},
		{"/d/[!]a]", "/d/b", true},
		{"/d/*.[ch]", "/d/main.go", false},
		{"/d/*a*b*c", "/d/xaybzc", true},
		{"/d/*a*b*c", "/d/xaybzcd", false},
		{"/p/*/q", "/p//q", true},
		{"/", "/", true},
		{"/*", "/", true},
		{"/?", "/", false},
		{"/**/*", "/", true},
		{"/", "/a", false},
	}
	for _, tt := range tests {
		if got := matchGlob(tt.pat, tt.path); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tt.pat, tt.path, got, tt.want)
		}
		if got, want := matchGlob(tt.pat, tt.path), globRegexp(tt.pat).MatchString(tt.path); got != want && !strings.Contains(tt.path, "//") {
			t.Errorf("reference regexp disagrees on (%q, %q): regexp %v", tt.pat, tt.path, want)
		}
	}
}

func TestIndexKey(t *testing.T) {
	for pat, want := range map[string]string{
		"/etc/shadow": "/etc/", "/usr/bin/*sh": "/usr/bin/", "/root/**": "/root/", "/**": "/",
		"/a/b\\*c/d": "/a/", "/x/[ab]/y": "/x/", "/": "/", "/a/b?": "/a/",
	} {
		if got := indexKey(pat); got != want {
			t.Errorf("indexKey(%q) = %q, want %q", pat, got, want)
		}
	}
}

func TestCheckGlob(t *testing.T) {
	good := []string{"/", "/etc/shadow", "/**", "/a/**/b", "/d/[a-z]*", "/d/[!.]*", "/d/[^x]", "/d/\\*", "/d/a]b", "/d/[\\]]", "/d/[]a]", "/d/[!]]"}
	bad := []string{"", "etc", "./etc", "/etc/", "/a//b", "/a/./b", "/a/../b", "/a**", "/**a/b", "/a/b**", "/d/[ab", "/d/[]", "/d/[!]", "/d/[]", "/d/[z-a]", "/d/x\\"}
	for _, g := range good {
		if prob, _ := checkGlob(g); prob != "" {
			t.Errorf("checkGlob(%q) = %q, want valid", g, prob)
		}
	}
	for _, b := range bad {
		if prob, hint := checkGlob(b); prob == "" || hint == "" {
			t.Errorf("checkGlob(%q) accepted it (or gave no hint)", b)
		}
	}
}

// globRegexp is an independent reference for the glob semantics of docs/compiled-policy.md, written
// with regular expressions over normalised ASCII paths.
func globRegexp(p string) *regexp.Regexp {
	comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if p == "/" {
		return regexp.MustCompile(`^/$`)
	}
	var b strings.Builder
	b.WriteString("^")
	for i, c := range comps {
		switch {
		case c == "**" && i == len(comps)-1:
			b.WriteString(`(/[^/]+)+`)
		case c == "**":
			b.WriteString(`(/[^/]+)*`)
		default:
			b.WriteString("/")
			b.WriteString(componentRegexp(c))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func componentRegexp(c string) string {
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		switch c[i] {
		case '*':
			b.WriteString(`[^/]*`)
		case '?':
			b.WriteString(`[^/]`)
		case '\\':
			if i+1 < len(c) {
				i++
			}
			b.WriteString(regexp.QuoteMeta(string(c[i])))
		case '[':
			end, prob := classEnd(c, i)
			if prob != "" {
				b.WriteString(regexp.QuoteMeta("["))
				continue
			}
			// enumerate the ASCII bytes the class accepts, '/' never
			var set strings.Builder
			for ch := 1; ch < 128; ch++ {
				if ch == '/' {
					continue
				}
				if ok, _, _ := matchClassRef(c[i:end+1], byte(ch)); ok {
					fmt.Fprintf(&set, `\x{%x}`, ch)
				}
			}
			if set.Len() == 0 {
				b.WriteString(`[^\x00-\x{10FFFF}]`)
			} else {
				b.WriteString("[" + set.String() + "]")
			}
			i = end
		default:
			b.WriteString(regexp.QuoteMeta(string(c[i])))
		}
	}
	return b.String()
}

// matchClassRef decides one byte against a whole class "[...]" by listing its items plainly.
func matchClassRef(class string, ch byte) (bool, int, bool) {
	body := class[1 : len(class)-1]
	neg := false
	if body != "" && (body[0] == '!' || body[0] == '^') {
		neg, body = true, body[1:]
	}
	next := func(i int) (byte, int) { // one item character, escapes read
		if body[i] == '\\' && i+1 < len(body) {
			return body[i+1], i + 2
		}
		return body[i], i + 1
	}
	in := false
	for i := 0; i < len(body); {
		lo, j := next(i)
		hi := lo
		if j+1 < len(body) && body[j] == '-' {
			hi, j = next(j + 1)
		}
		in = in || (lo <= ch && ch <= hi)
		i = j
	}
	return in != neg, 0, true
}

// FuzzGlob compares matchGlob with the regular-expression reference on valid globs and normalised paths.
func FuzzGlob(f *testing.F) {
	f.Add("/a/**/b", "/a/x/b")
	f.Add("/usr/bin/*sh", "/usr/bin/bash")
	f.Add("/d/[!a-c]?x*", "/d/dyxz")
	f.Add("/**/[a-z]\\*", "/q/r/s*")
	f.Fuzz(func(t *testing.T, pat, path string) {
		if prob, _ := checkGlob(pat); prob != "" || !ascii(pat) || !ascii(path) || !normalised(path) {
			return
		}
		if got, want := matchGlob(pat, path), globRegexp(pat).MatchString(path); got != want {
			t.Fatalf("matchGlob(%q, %q) = %v, reference says %v", pat, path, got, want)
		}
	})
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func normalised(p string) bool {
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return false
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

func TestPathCovered(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"/etc/**", "/etc/passwd", true},
		{"/etc/**", "/etc/ssl/**", true},
		{"/etc/**", "/etc", false},
		{"/etc/**", "/etcx/a", false},
		{"/**", "/a/*", true},
		{"/**", "/*", false}, // "/*" also matches "/", which "/**" does not
		{"/**", "/", false},
		{"/usr/bin/*", "/usr/bin/sh", true},
		{"/usr/bin/*", "/usr/bin/*sh", false}, // undecided cases are not reported
		{"/a/b", "/a/b", true},
	}
	for _, tt := range tests {
		if got := pathCovered(tt.a, tt.b); got != tt.want {
			t.Errorf("pathCovered(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

/* libFuzzer target: the probe's glob matcher (crs_glob) on an arbitrary pattern and subject, under ASan and
 * UBSan. The input is PATTERN NUL SUBJECT (no NUL: the same bytes are both). Both must terminate quickly
 * (libFuzzer's -timeout catches exponential backtracking) and touch no memory outside the strings.
 * Invariants checked: the same answer as plain backtracking (ref_glob) on small inputs; a literal pattern (no * ? [ \) matches exactly itself; "/ **" (no space) matches every path below /
 * and not "/" itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/decide.h"

/* ref_glob is the probe's matcher before the pruning (plain backtracking, exponential in the worst case):
 * the reference for small inputs, so the pruned matcher is proven to give the same answers. */
static int ref_class(const char **pp, unsigned char c)
{
	const char *p = *pp + 1;
	int neg = 0, hit = 0, first = 1;
	if (*p == '!' || *p == '^')
		neg = 1, p++;
	while (*p && (*p != ']' || first)) {
		first = 0;
		unsigned char lo = (unsigned char)*p;
		if (lo == '\\' && p[1])
			lo = (unsigned char)*++p;
		p++;
		unsigned char hi = lo;
		if (*p == '-' && p[1] && p[1] != ']') {
			p++;
			hi = (unsigned char)*p;
			if (hi == '\\' && p[1])
				hi = (unsigned char)*++p;
			p++;
		}
		if (lo <= c && c <= hi)
			hit = 1;
	}
	if (*p != ']')
		return -1;
	*pp = p + 1;
	return hit != neg;
}

static int ref_glob(const char *start, const char *p, const char *s)
{
	for (;;) {
		switch (*p) {
		case 0:
			return *s == 0;
		case '*':
			if (p[1] == '*' && p > start && p[-1] == '/' && (p[2] == '/' || p[2] == 0)) {
				if (p[2] == 0)
					return *s != 0;
				if (ref_glob(start, p + 3, s))
					return 1;
				for (const char *q = s; *q; q++)
					if (*q == '/' && ref_glob(start, p + 3, q + 1))
						return 1;
				return 0;
			}
			while (*p == '*')
				p++;
			for (const char *q = s;; q++) {
				if (ref_glob(start, p, q))
					return 1;
				if (*q == 0 || *q == '/')
					return 0;
			}
		case '?':
			if (*s == 0 || *s == '/')
				return 0;
			p++, s++;
			break;
		case '[': {
			if (*s == 0 || *s == '/')
				return 0;
			const char *q = p;
			int m = ref_class(&q, (unsigned char)*s);
			if (m < 0) {
				if (*s != '[')
					return 0;
				p++, s++;
				break;
			}
			if (!m)
				return 0;
			p = q, s++;
			break;
		}
		case '\\':
			if (p[1])
				p++;
			/* fall through */
		default:
			if (*p != *s)
				return 0;
			p++, s++;
		}
	}
}

static int stars(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '*';
	return n;
}

static char *dupn(const uint8_t *b, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, b, n);
		s[n] = 0;
	}
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	const uint8_t *nul = memchr(data, 0, size);
	size_t plen = nul ? (size_t)(nul - data) : size;
	char *pat = dupn(data, plen);
	char *subj = nul ? dupn(nul + 1, size - plen - 1) : dupn(data, size);
	if (!pat || !subj)
		goto out;
	int m = crs_glob(pat, subj);
	if (m != 0 && m != 1)
		__builtin_trap();
	if (stars(pat) <= 5 && strlen(subj) <= 48 && ref_glob(pat, pat, subj) != m)
		__builtin_trap(); /* the pruned matcher differs from plain backtracking */
	if (!strpbrk(pat, "*?[\\") && (strcmp(pat, subj) == 0) != m)
		__builtin_trap(); /* a literal pattern matches exactly itself */
	if (subj[0] == '/' && subj[1] && !strstr(subj, "//") && subj[strlen(subj) - 1] != '/' &&
	    !strstr(subj, "/./") && !strstr(subj, "/../") && !crs_glob("/**", subj))
		__builtin_trap(); /* every normalised path below / matches the root globstar */
	if (crs_glob("/**", "/"))
		__builtin_trap();
out:
	free(pat);
	free(subj);
	return 0;
}

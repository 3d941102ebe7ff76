/* libFuzzer target: the probe's glob matcher (crs_glob) on an arbitrary pattern and subject, under ASan and
 * UBSan. The input is PATTERN NUL SUBJECT (no NUL: the same bytes are both). Both must terminate quickly
 * (libFuzzer's -timeout catches exponential backtracking) and touch no memory outside the strings.
 * Invariants checked: a literal pattern (no * ? [ \) matches exactly itself; "/ **" (no space) matches every path below /
 * and not "/" itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../src/decide.h"

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

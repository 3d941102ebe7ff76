/* Verifying a compiled policy and deciding requests from it (docs/compiled-policy.md, "Decision"). */
#include "decide.h"
#include "sha256.h"
#include "util.h"

const char *const crs_op_names[CRS_OP_COUNT] = {
	"read", "write", "unlink", "rename", "link", "mkdir", "chmod", "exec", "connect", "bind", "syscall",
};

/* Rule record fields (48 bytes). */
#define R_NAME 0
#define R_PROG 4
#define R_CAT 8
#define R_ACTION 9
#define R_MASK 10
#define R_PROTO 11
#define R_CIDR 12
#define R_NCIDR 16
#define R_PORT 20
#define R_NPORT 24
#define R_PATHS 28
#define R_NPATHS 32
#define R_SYS 36
#define R_NSYS 40
#define RULE_SIZE 48
#define IDX_SIZE 16

static int fits(uint32_t off, uint64_t count, uint64_t size, uint32_t total)
{
	return (uint64_t)off + count * size <= total;
}

static int strref_ok(const struct crs_policy *p, uint32_t ref) { return ref < p->strsize; }

static const char *str(const struct crs_policy *p, uint32_t ref) { return p->strs + ref; }

/* key_ok checks an index entry against its pattern: the pattern is absolute, the key is the pattern's literal
 * prefix (the bytes before the first * ? [ \) cut after its last '/', and the literal flag is set exactly
 * when the pattern has none of those characters. */
static int key_ok(const char *key, const char *pat, uint32_t literal)
{
	size_t meta = 0, cut = 0;
	if (pat[0] != '/')
		return 0;
	while (pat[meta] && pat[meta] != '*' && pat[meta] != '?' && pat[meta] != '[' && pat[meta] != '\\') {
		if (pat[meta] == '/')
			cut = meta + 1;
		meta++;
	}
	if (literal != (pat[meta] == 0))
		return 0;
	for (size_t i = 0; i < cut; i++)
		if (key[i] != pat[i])
			return 0;
	return key[cut] == 0;
}

/* keycmp compares two NUL-terminated strings bytewise, as strcmp (and Go's string order) does. */
static int keycmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (int)(unsigned char)*a - (int)(unsigned char)*b;
}

int crs_policy_load(struct crs_policy *p, const uint8_t *b, size_t len, const char **why)
{
	static const char magic[8] = {'C', 'R', 'S', 'C', 'I', 'P', 'O', 'L'};
	*why = 0;
	p->keys[0] = p->keys[1] = 0;
	if (len < CRS_HEADER_SIZE + 96 || len > 0xFFFFFFFFu)
		return *why = "file too small or too large for a compiled policy", -1;
	for (int i = 0; i < 8; i++)
		if (b[i] != (uint8_t)magic[i])
			return *why = "bad magic (not a crs-ci compiled policy)", -1;
	uint16_t version = crs_le16(b + 8);
	if (version == 0 || version > CRS_FORMAT_VERSION)
		return *why = "format version newer than this probe understands", -1;
	if (crs_le16(b + 10) != CRS_HEADER_SIZE)
		return *why = "bad header size", -1;
	if (crs_le32(b + 12) != len)
		return *why = "total size in header differs from the file size", -1;
	uint8_t sum[32];
	crs_sha256(b + CRS_HEADER_SIZE, len - CRS_HEADER_SIZE, sum);
	for (int i = 0; i < 32; i++)
		if (sum[i] != b[16 + i])
			return *why = "sha256 mismatch (corrupt or modified policy)", -1;

	const uint8_t *h = b + 64;
	uint32_t total = (uint32_t)len;
	p->base = b;
	p->size = total;
	p->mode = h[0];
	p->logmask = h[1];
	p->defaults[0] = 0;
	p->defaults[CRS_CAT_FILE] = h[2];
	p->defaults[CRS_CAT_NET] = h[3];
	p->defaults[CRS_CAT_EXEC] = h[4];
	p->defaults[CRS_CAT_SYSCALL] = h[5];
	p->sink_kind = h[6];
	p->ignore = crs_le32(h + 8);
	uint32_t name = crs_le32(h + 12), sink = crs_le32(h + 16);
	p->nrules = crs_le32(h + 20);
	uint32_t rules = crs_le32(h + 24);
	p->nfile = crs_le32(h + 28);
	uint32_t fidx = crs_le32(h + 32);
	p->nexec = crs_le32(h + 36);
	uint32_t eidx = crs_le32(h + 40);
	p->npool = crs_le32(h + 44);
	uint32_t pool = crs_le32(h + 48);
	p->ncidr = crs_le32(h + 52);
	uint32_t cidr = crs_le32(h + 56);
	p->nport = crs_le32(h + 60);
	uint32_t port = crs_le32(h + 64);
	p->strsize = crs_le32(h + 68);
	uint32_t strs = crs_le32(h + 72);

	if (p->mode > CRS_MODE_ENFORCE)
		return *why = "unknown mode", -1;
	for (int c = CRS_CAT_FILE; c <= CRS_CAT_SYSCALL; c++)
		if (p->defaults[c] > CRS_ALERT)
			return *why = "unknown default action", -1;
	if (p->sink_kind > CRS_SINK_UNIX)
		return *why = "unknown event sink kind", -1;
	if (!fits(strs, p->strsize, 1, total) || p->strsize == 0 || b[strs] != 0 || b[strs + p->strsize - 1] != 0)
		return *why = "string table out of bounds or not NUL-terminated", -1;
	p->strs = (const char *)b + strs;
	if (!fits(rules, p->nrules, RULE_SIZE, total) || !fits(fidx, p->nfile, IDX_SIZE, total) ||
	    !fits(eidx, p->nexec, IDX_SIZE, total) || !fits(pool, p->npool, 4, total) ||
	    !fits(cidr, p->ncidr, 32, total) || !fits(port, p->nport, 4, total))
		return *why = "a table lies outside the file", -1;
	p->rules = b + rules;
	p->fileidx = b + fidx;
	p->execidx = b + eidx;
	p->pool = b + pool;
	p->cidrs = b + cidr;
	p->ports = b + port;
	if (!strref_ok(p, name))
		return *why = "policy name out of bounds", -1;
	p->name = str(p, name);
	if (sink == CRS_NONE)
		p->sink_path = 0;
	else if (strref_ok(p, sink))
		p->sink_path = str(p, sink);
	else
		return *why = "sink path out of bounds", -1;

	for (uint32_t i = 0; i < p->nrules; i++) {
		const uint8_t *r = p->rules + (size_t)i * RULE_SIZE;
		uint32_t prog = crs_le32(r + R_PROG);
		if (!strref_ok(p, crs_le32(r + R_NAME)) || (prog != CRS_NONE && !strref_ok(p, prog)))
			return *why = "rule string out of bounds", -1;
		if (r[R_CAT] < CRS_CAT_FILE || r[R_CAT] > CRS_CAT_SYSCALL || r[R_ACTION] > CRS_ALERT ||
		    r[R_PROTO] > CRS_PROTO_UDP)
			return *why = "rule with unknown category, action or protocol", -1;
		if ((uint64_t)crs_le32(r + R_CIDR) + crs_le32(r + R_NCIDR) > p->ncidr ||
		    (uint64_t)crs_le32(r + R_PORT) + crs_le32(r + R_NPORT) > p->nport ||
		    (uint64_t)crs_le32(r + R_PATHS) + crs_le32(r + R_NPATHS) > p->npool ||
		    (uint64_t)crs_le32(r + R_SYS) + 2 * (uint64_t)crs_le32(r + R_NSYS) > p->npool)
			return *why = "rule range out of bounds", -1;
		uint32_t first = crs_le32(r + R_PATHS), n = crs_le32(r + R_NPATHS);
		for (uint32_t k = 0; k < n; k++)
			if (!strref_ok(p, crs_le32(p->pool + 4 * (size_t)(first + k))))
				return *why = "rule path pattern out of bounds", -1;
	}
	const uint8_t *idx[2] = {p->fileidx, p->execidx};
	uint32_t nidx[2] = {p->nfile, p->nexec};
	const uint8_t cat[2] = {CRS_CAT_FILE, CRS_CAT_EXEC};
	for (int t = 0; t < 2; t++)
		for (uint32_t i = 0; i < nidx[t]; i++) {
			const uint8_t *e = idx[t] + (size_t)i * IDX_SIZE;
			if (!strref_ok(p, crs_le32(e)) || !strref_ok(p, crs_le32(e + 4)) ||
			    crs_le32(e + 8) >= p->nrules)
				return *why = "path index entry out of bounds", -1;
			if (p->rules[(size_t)crs_le32(e + 8) * RULE_SIZE + R_CAT] != cat[t])
				return *why = "path index entry names a rule of another category", -1;
			/* the lookup compares only past the key and trusts the literal flag: both must be what the
			 * format says, or a crafted entry reads past its pattern (probe/fuzz found it) */
			if (!key_ok(str(p, crs_le32(e)), str(p, crs_le32(e + 4)), crs_le32(e + 12) & 1))
				return *why = "path index entry key or flags do not fit its pattern", -1;
			/* sorted by key, then rule index, as core/policy's Load requires: the binary search and the key
			 * hash tables only agree on a sorted index (probe/fuzz found a policy where they did not) */
			if (i > 0) {
				const uint8_t *prev = e - IDX_SIZE;
				int c = keycmp(str(p, crs_le32(prev)), str(p, crs_le32(e)));
				if (c > 0 || (c == 0 && crs_le32(prev + 8) > crs_le32(e + 8)))
					return *why = "path index not sorted", -1;
			}
		}
	return 0;
}

const char *crs_rule_name(const struct crs_policy *p, int32_t i)
{
	if (i < 0 || (uint32_t)i >= p->nrules)
		return "";
	return str(p, crs_le32(p->rules + (size_t)i * RULE_SIZE + R_NAME));
}

/* ---- globs ---- */

/* class matches c against the bracket expression at *pp ("[...]"); on success *pp points after ']'.
 * Returns -1 when the expression is not terminated (the '[' is then a literal). */
static int class(const char **pp, unsigned char c)
{
	const char *p = *pp + 1;
	int neg = 0, hit = 0;
	if (*p == '!' || *p == '^')
		neg = 1, p++;
	int first = 1;
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

/* glob returns 1 (match), 0 (no match), or one of two prunings (git's wildmatch prunes the same way):
 * GLOB_ABORT: the subject ran out while the pattern still needed a character, so no longer run for any
 * enclosing '*' or '**' can match either; GLOB_ABORT_COMPONENT: a '*' reached the '/' ending its component
 * without a match, so no longer run for an enclosing '*' of the same component can match (a '**' still tries
 * the next components); a '**' that tried every later component gives GLOB_ABORT too. Without them, '*a*a*a*a*b' against a long run of 'a's backtracks exponentially: a
 * workload could stall every hooked call with one long file name (probe/fuzz found it). */
#define GLOB_ABORT (-1)
#define GLOB_ABORT_COMPONENT (-2)

static int glob(const char *start, const char *p, const char *s)
{
	for (;;) {
		switch (*p) {
		case 0:
			return *s == 0;
		case '*':
			if (p[1] == '*' && p > start && p[-1] == '/' && (p[2] == '/' || p[2] == 0)) {
				if (p[2] == 0) /* trailing slash-star-star: anything below */
					return *s != 0;
				/* a globstar component: zero or more whole components */
				int m = glob(start, p + 3, s);
				if (m == 1 || m == GLOB_ABORT)
					return m;
				for (const char *q = s; *q; q++)
					if (*q == '/' && ((m = glob(start, p + 3, q + 1)) == 1 || m == GLOB_ABORT))
						return m;
				return GLOB_ABORT; /* every later start was tried: no enclosing star can do better */
			}
			while (*p == '*')
				p++;
			for (const char *q = s;; q++) {
				int m = glob(start, p, q);
				if (m != 0)
					return m;
				if (*q == 0)
					return GLOB_ABORT;
				if (*q == '/')
					return GLOB_ABORT_COMPONENT;
			}
		case '?':
			if (*s == 0)
				return GLOB_ABORT;
			if (*s == '/')
				return 0;
			p++, s++;
			break;
		case '[': {
			if (*s == 0)
				return GLOB_ABORT;
			if (*s == '/')
				return 0;
			const char *q = p;
			int m = class(&q, (unsigned char)*s);
			if (m < 0) { /* unterminated: a literal '[' */
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
			if (*s == 0)
				return GLOB_ABORT;
			if (*p != *s)
				return 0;
			p++, s++;
		}
	}
}

int crs_glob(const char *pat, const char *s) { return glob(pat, pat, s) == 1; }

/* ---- decisions ---- */

static const uint8_t *rule(const struct crs_policy *p, uint32_t i) { return p->rules + (size_t)i * RULE_SIZE; }

static int program_ok(const struct crs_policy *p, const uint8_t *r, const char *program)
{
	uint32_t g = crs_le32(r + R_PROG);
	return g == CRS_NONE || crs_glob(str(p, g), program ? program : "");
}


static int has_backslash(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\\')
			return 1;
	return 0;
}

/* startcmp compares the first n bytes of k with prefix: 0 when k starts with prefix. */
static int startcmp(const char *k, const char *prefix, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (k[j] != prefix[j])
			return k[j] == 0 ? -1 : (int)(unsigned char)k[j] - (int)(unsigned char)prefix[j];
	return 0;
}

/* lookup finds the smallest matching rule index for r->path. The prefixes of the path that end in '/' are
 * each a prefix of the next, so the keys starting with the next one lie inside the range of keys starting
 * with this one: the range narrows at every step and the walk stops as soon as it is empty. */
/* ---- key hash tables ---- */

/* key_hash hashes a prefix ending in '/' from its length and its last 8 bytes only, so a lookup looks at the
 * path's bytes once (to find the '/'s) and hashes at the '/'s alone; equal hashes are confirmed by comparing
 * the strings. */
static uint32_t key_hash(const char *k, size_t len)
{
	uint64_t tail = 0;
	if (len >= 8)
		__builtin_memcpy(&tail, k + len - 8, 8); /* one unaligned load */
	else
		for (size_t i = 0; i < len; i++)
			tail = tail << 8 | (uint8_t)k[i];
	uint64_t x = tail ^ (len * 0x9E3779B97F4A7C15ull); /* splitmix64's finaliser: every bit reaches the low ones */
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return (uint32_t)(x ^ (x >> 31));
}

static const char *key_at(const struct crs_policy *p, const uint8_t *idx, uint32_t i)
{
	return str(p, crs_le32(idx + (size_t)i * IDX_SIZE));
}

static uint32_t distinct_keys(const struct crs_policy *p, const uint8_t *idx, uint32_t n)
{
	uint32_t d = 0;
	for (uint32_t i = 0; i < n; i++)
		if (i == 0 || !crs_streq(key_at(p, idx, i), key_at(p, idx, i - 1)))
			d++;
	return d;
}

static uint32_t table_slots(uint32_t keys)
{
	uint32_t s = 8;
	while (s < 2 * keys)
		s <<= 1;
	return s;
}

size_t crs_policy_index_size(const struct crs_policy *p)
{
	return (table_slots(distinct_keys(p, p->fileidx, p->nfile)) +
		table_slots(distinct_keys(p, p->execidx, p->nexec))) *
	       sizeof(struct crs_keyslot);
}

void crs_policy_index(struct crs_policy *p, void *mem)
{
	struct crs_keyslot *slots = mem;
	const uint8_t *idx[2] = {p->fileidx, p->execidx};
	uint32_t n[2] = {p->nfile, p->nexec};
	for (int t = 0; t < 2; t++) {
		uint32_t size = table_slots(distinct_keys(p, idx[t], n[t]));
		p->keys[t] = slots;
		p->keymask[t] = size - 1;
		p->keylens[t] = 0;
		for (uint32_t i = 0; i < n[t];) {
			const char *k = key_at(p, idx[t], i);
			uint32_t j = i;
			while (j < n[t] && crs_streq(key_at(p, idx[t], j), k))
				j++;
			uint32_t len = (uint32_t)crs_strlen(k);
			uint32_t h = key_hash(k, len);
			p->keylens[t] |= 1ull << (len < 63 ? len : 63);
			uint32_t s = h & (size - 1);
			while (slots[s].key)
				s = (s + 1) & (size - 1);
			slots[s] = (struct crs_keyslot){h, i, j - i, len, k};
			i = j;
		}
		slots += size;
	}
}

/* scan_key decides among the entries of one key (sorted by rule index): the first that matches wins. */
static int32_t scan_key(const struct crs_policy *p, const uint8_t *idx, uint32_t first, uint32_t count,
			size_t plen, const struct crs_request *r, int32_t best);

static int32_t lookup_hashed(const struct crs_policy *p, int t, const uint8_t *idx, const struct crs_request *r)
{
	const struct crs_keyslot *slots = p->keys[t];
	uint32_t mask = p->keymask[t];
	uint64_t lens = p->keylens[t];
	const char *path = r->path;
	int32_t best = -1;
	for (size_t i = 0; path[i]; i++) {
		if (path[i] != '/' || !(lens >> (i + 1 < 63 ? i + 1 : 63) & 1))
			continue; /* not a '/', or no key has this length */
		uint32_t h = key_hash(path, i + 1);
		for (uint32_t s = h & mask; slots[s].key; s = (s + 1) & mask) {
			const struct crs_keyslot *k = &slots[s];
			if (k->hash != h || k->keylen != i + 1 || !crs_strneq(k->key, path, i + 1))
				continue;
			best = scan_key(p, idx, k->first, k->count, i + 1, r, best);
			break;
		}
	}
	return best;
}

static int32_t lookup(const struct crs_policy *p, const uint8_t *idx, uint32_t n, const struct crs_request *r)
{
	const char *path = r->path;
	int32_t best = -1;
	uint32_t lo = 0, hi = n;
	size_t done = 0; /* every key in [lo, hi) starts with path[0, done): compare only what follows */
	for (size_t i = 0; path[i] && lo < hi; i++) {
		if (path[i] != '/')
			continue;
		size_t plen = i + 1;
		const char *rest = path + done;
		size_t rlen = plen - done;
		if (plen == 1)
			goto scan; /* every key is absolute: they all start with "/" */
		uint32_t a = lo, b = hi; /* first key >= prefix */
		while (a < b) {
			uint32_t mid = a + (b - a) / 2;
			if (startcmp(str(p, crs_le32(idx + (size_t)mid * IDX_SIZE)) + done, rest, rlen) < 0)
				a = mid + 1;
			else
				b = mid;
		}
		uint32_t start = a;
		b = hi; /* first key > every key starting with prefix */
		while (a < b) {
			uint32_t mid = a + (b - a) / 2;
			if (startcmp(str(p, crs_le32(idx + (size_t)mid * IDX_SIZE)) + done, rest, rlen) <= 0)
				a = mid + 1;
			else
				b = mid;
		}
		lo = start, hi = a;
	scan:
		done = plen;
		/* the keys equal to the prefix come first in the range */
		uint32_t k = lo;
		while (k < hi && str(p, crs_le32(idx + (size_t)k * IDX_SIZE))[plen] == 0)
			k++; /* longer keys start with the prefix too (they are in the range): stop at the first */
		best = scan_key(p, idx, lo, k - lo, plen, r, best);
	}
	return best;
}

static int32_t scan_key(const struct crs_policy *p, const uint8_t *idx, uint32_t first, uint32_t count,
			size_t plen, const struct crs_request *r, int32_t best)
{
	const char *path = r->path;
	for (uint32_t k = first; k < first + count; k++) {
		const uint8_t *e = idx + (size_t)k * IDX_SIZE;
		uint32_t ri = crs_le32(e + 8);
		if (best >= 0 && ri >= (uint32_t)best)
			break; /* entries of one key are sorted by rule index */
		const uint8_t *ru = rule(p, ri);
		if (r->category == CRS_CAT_FILE && !(ru[R_MASK] & r->access))
			continue;
		/* the pattern starts with its key, which equals path[0, plen): match only the rest, unless the key
		 * holds a backslash (an escape in the glob, a byte in the key) */
		const char *pat = str(p, crs_le32(e + 4));
		int hit;
		if (crs_le32(e + 12) & 1)
			hit = crs_streq(pat + plen, path + plen);
		else if (has_backslash(pat, plen))
			hit = crs_glob(pat, path);
		else
			hit = glob(pat, pat + plen, path + plen) == 1;
		if (hit && program_ok(p, ru, r->program))
			return (int32_t)ri;
	}
	return best;
}

static int cmp16(const uint8_t *a, const uint8_t *b)
{
	for (int i = 0; i < 16; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

static int net_match(const struct crs_policy *p, const uint8_t *ru, const struct crs_request *r)
{
	if (!(ru[R_MASK] & r->access))
		return 0;
	if (ru[R_PROTO] != CRS_PROTO_ANY && ru[R_PROTO] != r->protocol)
		return 0;
	if (!program_ok(p, ru, r->program))
		return 0;
	uint32_t npaths = crs_le32(ru + R_NPATHS), ncidr = crs_le32(ru + R_NCIDR), nport = crs_le32(ru + R_NPORT);
	if (r->unix_path) {
		uint32_t first = crs_le32(ru + R_PATHS);
		if (npaths == 0)
			return ncidr == 0 && nport == 0; /* a rule with no CIDRs, ports or paths matches everything */
		for (uint32_t k = 0; k < npaths; k++)
			if (crs_glob(str(p, crs_le32(p->pool + 4 * (size_t)(first + k))), r->unix_path))
				return 1;
		return 0;
	}
	if (npaths != 0)
		return 0;
	if (ncidr) {
		int in = 0;
		const uint8_t *c = p->cidrs + 32 * (size_t)crs_le32(ru + R_CIDR);
		for (uint32_t k = 0; k < ncidr && !in; k++, c += 32)
			in = cmp16(c, r->addr) <= 0 && cmp16(r->addr, c + 16) <= 0;
		if (!in)
			return 0;
	}
	if (nport) {
		int in = 0;
		const uint8_t *pr = p->ports + 4 * (size_t)crs_le32(ru + R_PORT);
		for (uint32_t k = 0; k < nport && !in; k++, pr += 4)
			in = crs_le16(pr) <= r->port && r->port <= crs_le16(pr + 2);
		if (!in)
			return 0;
	}
	return 1;
}

static int sys_match(const struct crs_policy *p, const uint8_t *ru, const struct crs_request *r)
{
	if (!program_ok(p, ru, r->program))
		return 0;
	uint32_t first = crs_le32(ru + R_SYS), n = crs_le32(ru + R_NSYS);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t nr = crs_le32(p->pool + 4 * (size_t)(first + 2 * k + (uint32_t)r->arch));
		if (nr != CRS_NONE && (long)nr == r->sysno)
			return 1;
	}
	return 0;
}

void crs_decide(const struct crs_policy *p, const struct crs_request *r, struct crs_decision *d)
{
	int32_t best = -1;
	switch (r->category) {
	case CRS_CAT_FILE:
		best = p->keys[0] ? lookup_hashed(p, 0, p->fileidx, r) : lookup(p, p->fileidx, p->nfile, r);
		break;
	case CRS_CAT_EXEC:
		best = p->keys[1] ? lookup_hashed(p, 1, p->execidx, r) : lookup(p, p->execidx, p->nexec, r);
		break;
	case CRS_CAT_NET:
	case CRS_CAT_SYSCALL:
		for (uint32_t i = 0; i < p->nrules && best < 0; i++) {
			const uint8_t *ru = rule(p, i);
			if (ru[R_CAT] != r->category)
				continue;
			if (r->category == CRS_CAT_NET ? net_match(p, ru, r) : sys_match(p, ru, r))
				best = (int32_t)i;
		}
		break;
	}
	d->rule = best;
	if (best >= 0)
		d->action = rule(p, (uint32_t)best)[R_ACTION];
	else if (r->category >= CRS_CAT_FILE && r->category <= CRS_CAT_SYSCALL)
		d->action = p->defaults[r->category];
	else
		d->action = CRS_ALLOW;
}

/* The decision engine: verifies a compiled policy (docs/compiled-policy.md) once, then decides requests from
 * it without allocating, locking or calling libc. The probe and probe/harness/decide-harness.c share it. */
#ifndef CRS_DECIDE_H
#define CRS_DECIDE_H

#include <stddef.h>
#include <stdint.h>

#define CRS_FORMAT_VERSION 1
#define CRS_HEADER_SIZE 64
#define CRS_NONE 0xFFFFFFFFu

enum { CRS_MODE_OFF = 0, CRS_MODE_AUDIT = 1, CRS_MODE_ENFORCE = 2 };
enum { CRS_ALLOW = 0, CRS_DENY = 1, CRS_ALERT = 2 };
enum { CRS_LOG_DENY = 1, CRS_LOG_ALERT = 2, CRS_LOG_ALLOW = 4 };
enum { CRS_CAT_FILE = 1, CRS_CAT_NET = 2, CRS_CAT_EXEC = 3, CRS_CAT_SYSCALL = 4 };
enum { CRS_ACC_READ = 1, CRS_ACC_WRITE = 2 };
enum { CRS_DIR_OUT = 1, CRS_DIR_IN = 2 };
enum { CRS_PROTO_ANY = 0, CRS_PROTO_TCP = 1, CRS_PROTO_UDP = 2 };
enum { CRS_SINK_STDERR = 0, CRS_SINK_FILE = 1, CRS_SINK_UNIX = 2 };

/* Operations: bit numbers of the ignore mask and the `op` of events. */
enum {
	CRS_OP_READ, CRS_OP_WRITE, CRS_OP_UNLINK, CRS_OP_RENAME, CRS_OP_LINK, CRS_OP_MKDIR,
	CRS_OP_CHMOD, CRS_OP_EXEC, CRS_OP_CONNECT, CRS_OP_BIND, CRS_OP_SYSCALL, CRS_OP_COUNT
};

/* Architecture column of syscall pairs. */
enum { CRS_ARCH_X86_64 = 0, CRS_ARCH_AARCH64 = 1 };

struct crs_policy {
	const uint8_t *base;
	uint32_t size;
	uint8_t mode, logmask, sink_kind;
	uint8_t defaults[5]; /* indexed by category */
	uint32_t ignore;
	const char *name, *sink_path; /* sink_path NULL when none */
	uint32_t nrules;
	const uint8_t *rules;
	uint32_t nfile, nexec;
	const uint8_t *fileidx, *execidx;
	uint32_t npool;
	const uint8_t *pool;
	uint32_t ncidr, nport;
	const uint8_t *cidrs, *ports;
	uint32_t strsize;
	const char *strs;
	/* optional hash tables of the path index keys (crs_policy_index); NULL: binary search */
	struct crs_keyslot *keys[2]; /* [0] file index, [1] exec index */
	uint32_t keymask[2];
	uint64_t keylens[2]; /* bit n: a key of length n exists (n >= 63: bit 63) */
};

/* A hash table slot: one distinct key of a path index and its run of entries. */
struct crs_keyslot {
	uint32_t hash, first, count, keylen;
	const char *key; /* NULL: empty slot */
};

/* A request. For file and exec: path. For network: either unix_path (may be NULL for an unnamed socket) or
 * addr (16 bytes, IPv6; IPv4 v4-mapped) and port. For syscall: sysno in the numbering of arch. */
struct crs_request {
	int category, op, access, protocol, arch;
	const char *path, *program, *unix_path;
	const uint8_t *addr;
	uint16_t port;
	long sysno;
};

struct crs_decision {
	int action;
	int32_t rule; /* -1 for the category default */
};

/* crs_policy_load verifies buf (magic, version, sizes, hash, every offset, count and string ref) and fills p.
 * It returns 0, or -1 with *why set to a constant message. */
int crs_policy_load(struct crs_policy *p, const uint8_t *buf, size_t len, const char **why);

/* crs_policy_index_size returns the bytes crs_policy_index needs for p's key tables. */
size_t crs_policy_index_size(const struct crs_policy *p);

/* crs_policy_index builds hash tables of the distinct index keys in mem (zeroed, crs_policy_index_size bytes,
 * 8-byte aligned), so a lookup costs one probe per path component instead of binary searches. */
void crs_policy_index(struct crs_policy *p, void *mem);

void crs_decide(const struct crs_policy *p, const struct crs_request *r, struct crs_decision *d);

/* crs_rule_name returns the name of rule i ("" for -1). */
const char *crs_rule_name(const struct crs_policy *p, int32_t i);

/* crs_glob reports whether the normalised absolute path s matches pattern pat (syntax in the format doc). */
int crs_glob(const char *pat, const char *s);

extern const char *const crs_op_names[CRS_OP_COUNT];

#endif

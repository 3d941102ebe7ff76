/* libFuzzer target: the probe's compiled-policy loader (crs_policy_load), its key index (crs_policy_index)
 * and the matcher (crs_decide) on arbitrary bytes, under ASan and UBSan.
 *
 * Each input is loaded twice: as given (every refusal path of the reader), and with the header's total size
 * and SHA-256 rewritten to fit the bytes, so the fuzzer gets past the hash and explores the structure checks.
 * When a load succeeds, requests of every category (paths, programs and addresses built from a fixed list
 * and from the input) are decided with the hashed key index and with the binary search: both must give the
 * same decision (the probe uses the first, the decide-harness can use either), and the rule must exist. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/decide.h"
#include "../../src/sha256.h"

static const char *const paths[] = {
	"/", "/etc/shadow", "/etc/passwd", "/etc/ssl/certs/ca.pem", "/root/.ssh/id_rsa", "/usr/bin/sh",
	"/bin/bash", "/usr/bin/curl", "/tmp/x", "/srv/secret/key", "/a/b/c/d/e/f/g", "/proc/self/environ",
	"/etc/crs-ci/policy.bin", "/usr/lib/crs-ci/probe.so", "/etc/ld.so.preload", "/x]y", "/[a-z]", "/**",
};

static void check_same(const struct crs_decision *a, const struct crs_decision *b, const struct crs_policy *p)
{
	if (a->action != b->action || a->rule != b->rule)
		__builtin_trap(); /* the hashed index and the binary search disagree */
	if (a->action < CRS_ALLOW || a->action > CRS_ALERT)
		__builtin_trap();
	if (a->rule < -1 || (a->rule >= 0 && (uint32_t)a->rule >= p->nrules))
		__builtin_trap();
	(void)crs_rule_name(p, a->rule);
}

static void decide_both(struct crs_policy *indexed, struct crs_policy *plain, const struct crs_request *r)
{
	struct crs_decision a, b;
	crs_decide(indexed, r, &a);
	crs_decide(plain, r, &b);
	check_same(&a, &b, indexed);
}

static void exercise(struct crs_policy *p, const uint8_t *data, size_t size)
{
	struct crs_policy plain = *p;
	size_t n = crs_policy_index_size(p);
	void *mem = calloc(1, n + 8);
	if (!mem)
		return;
	crs_policy_index(p, mem);

	/* a path and a program taken from the input: its last bytes, made absolute, NUL-terminated */
	char own[256] = "/";
	size_t take = size < sizeof own - 2 ? size : sizeof own - 2;
	for (size_t i = 0; i < take; i++) {
		char c = (char)data[size - take + i];
		own[1 + i] = c ? c : '/';
	}
	own[1 + take] = 0;

	uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
	uint8_t v6[16];
	memcpy(v6, data + (size >= 16 ? size - 16 : 0), size >= 16 ? 16 : size);
	if (size < 16)
		memset(v6 + size, 0, 16 - size);

	const size_t np = sizeof paths / sizeof paths[0];
	for (size_t i = 0; i <= np; i++) {
		const char *path = i < np ? paths[i] : own;
		const char *prog = paths[(i * 7 + 3) % np];
		for (int op = CRS_OP_READ; op <= CRS_OP_CHMOD; op++) {
			struct crs_request r = {.category = CRS_CAT_FILE, .op = op, .path = path, .program = prog,
				.access = op == CRS_OP_READ ? CRS_ACC_READ : CRS_ACC_WRITE};
			decide_both(p, &plain, &r);
		}
		struct crs_request ex = {.category = CRS_CAT_EXEC, .op = CRS_OP_EXEC, .path = path, .program = own};
		decide_both(p, &plain, &ex);
		struct crs_request ux = {.category = CRS_CAT_NET, .op = CRS_OP_CONNECT, .access = CRS_DIR_OUT,
			.protocol = CRS_PROTO_ANY, .unix_path = path, .program = prog};
		decide_both(p, &plain, &ux);
	}
	for (int dir = CRS_DIR_OUT; dir <= CRS_DIR_IN; dir++)
		for (int proto = CRS_PROTO_ANY; proto <= CRS_PROTO_UDP; proto++) {
			uint16_t port = size >= 2 ? (uint16_t)(data[0] | data[size - 1] << 8) : 80;
			struct crs_request a = {.category = CRS_CAT_NET, .op = dir == CRS_DIR_OUT ? CRS_OP_CONNECT : CRS_OP_BIND,
				.access = dir, .protocol = proto, .addr = v4, .port = port, .program = own};
			decide_both(p, &plain, &a);
			a.addr = v6;
			decide_both(p, &plain, &a);
		}
	for (int arch = CRS_ARCH_X86_64; arch <= CRS_ARCH_AARCH64; arch++) {
		long nums[] = {0, 2, 59, 110, 257, 425, -1, 1L << 40, size ? (long)data[0] : 1};
		for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
			struct crs_request s = {.category = CRS_CAT_SYSCALL, .op = CRS_OP_SYSCALL, .arch = arch,
				.sysno = nums[i], .program = own};
			decide_both(p, &plain, &s);
		}
	}
	free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	/* an 8-byte aligned copy, as the probe's mmap gives it, with no slack after the end (ASan sees overreads) */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct crs_policy p;
	const char *why;
	if (crs_policy_load(&p, buf, size, &why) == 0)
		exercise(&p, data, size);
	else if (!why)
		__builtin_trap(); /* a refusal must say why */

	if (size >= CRS_HEADER_SIZE + 96) {
		memcpy(buf, "CRSCIPOL", 8);
		buf[8] = 1, buf[9] = 0, buf[10] = CRS_HEADER_SIZE, buf[11] = 0;
		uint32_t n = (uint32_t)size;
		buf[12] = n & 0xff, buf[13] = n >> 8 & 0xff, buf[14] = n >> 16 & 0xff, buf[15] = n >> 24;
		crs_sha256(buf + CRS_HEADER_SIZE, size - CRS_HEADER_SIZE, buf + 16);
		if (crs_policy_load(&p, buf, size, &why) == 0)
			exercise(&p, data, size);
		else if (!why)
			__builtin_trap();
	}
	free(buf);
	return 0;
}

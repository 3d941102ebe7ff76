/* decide-harness POLICY.bin: answers decision requests from the probe's own decide.c, for the differential
 * test against core/policy's Go Decide (protocol at the end of docs/compiled-policy.md).
 *
 * stdin, one request per line, tab-separated: CATEGORY OP SUBJECT ACCESS PROTOCOL PROGRAM
 * stdout, one line each: ACTION<TAB>RULEINDEX (-1 for a category default). Bad lines: "error<TAB>message".
 * CRS_HARNESS_NOINDEX=1 in the environment: decide without the key hash tables (the binary-search path). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../src/decide.h"

static int lookup(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static int parse_addr(const char *s, uint8_t addr[16], uint16_t *port)
{
	char host[128];
	const char *colon;
	memset(addr, 0, 16);
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
			return -1;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = 0;
		if (inet_pton(AF_INET6, host, addr) != 1)
			return -1;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof host)
			return -1;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
		addr[10] = addr[11] = 0xff;
		if (inet_pton(AF_INET, host, addr + 12) != 1)
			return -1;
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || p < 0 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const cats[] = {0, "file", "network", "exec", "syscall"};
	static const char *const actions[] = {"allow", "deny", "alert"};
	if (argc != 2) {
		fprintf(stderr, "usage: decide-harness POLICY.bin < requests\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 3;
	}
	static uint8_t buf[64 << 20];
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	struct crs_policy pol;
	const char *why;
	if (crs_policy_load(&pol, buf, len, &why) != 0) {
		fprintf(stderr, "%s: %s\n", argv[1], why);
		return 3;
	}
	if (!getenv("CRS_HARNESS_NOINDEX")) /* the probe's key hash tables; set it to test the binary search */
		crs_policy_index(&pol, calloc(1, crs_policy_index_size(&pol) + 8));
	char line[16384];
	setvbuf(stdout, 0, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\r\n")] = 0;
		char *field[6] = {0};
		char *p = line;
		int n = 0;
		for (; n < 6 && p; n++) {
			field[n] = p;
			p = strchr(p, '\t');
			if (p)
				*p++ = 0;
		}
		if (n < 6) {
			printf("error\twant 6 tab-separated fields, got %d\n", n);
			continue;
		}
		struct crs_request q = {0};
		uint8_t addr[16];
		q.category = lookup(cats, 5, field[0]);
		q.op = lookup(crs_op_names, CRS_OP_COUNT, field[1]);
		q.program = field[5];
		q.arch = CRS_ARCH_X86_64;
		const char *acc = field[3];
		q.access = !strcmp(acc, "read") || !strcmp(acc, "outbound") ? 1
			   : !strcmp(acc, "write") || !strcmp(acc, "inbound") ? 2
			   : !strcmp(acc, "rw")				       ? 3
										       : 0;
		q.protocol = !strcmp(field[4], "tcp") ? CRS_PROTO_TCP : !strcmp(field[4], "udp") ? CRS_PROTO_UDP : 0;
		if (q.category < 0 || q.op < 0) {
			printf("error\tunknown category %s or op %s\n", field[0], field[1]);
			continue;
		}
		if (q.category == CRS_CAT_FILE || q.category == CRS_CAT_EXEC) {
			q.path = field[2];
		} else if (q.category == CRS_CAT_NET) {
			if (!strncmp(field[2], "unix:", 5)) {
				q.unix_path = field[2] + 5;
			} else if (parse_addr(field[2], addr, &q.port) == 0) {
				q.addr = addr;
			} else {
				printf("error\tbad address %s\n", field[2]);
				continue;
			}
		} else {
			q.sysno = strtol(field[2], 0, 10);
		}
		struct crs_decision d;
		crs_decide(&pol, &q, &d);
		printf("%s\t%d\n", actions[d.action], d.rule);
	}
	return 0;
}

/* decide-bench POLICY.bin PATH ITERATIONS: times crs_decide (the probe's own decide.c) on one file read
 * request and prints the fastest and the median ns per decision over 7 runs, and the decision. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "../src/decide.h"

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return fprintf(stderr, "usage: decide-bench POLICY.bin PATH ITERATIONS\n"), 2;
	static unsigned char buf[64 << 20];
	FILE *f = fopen(argv[1], "rb");
	if (!f)
		return perror(argv[1]), 3;
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	struct crs_policy p;
	const char *why;
	if (crs_policy_load(&p, buf, len, &why))
		return fprintf(stderr, "%s: %s\n", argv[1], why), 3;
	if (!getenv("CRS_HARNESS_NOINDEX"))
		crs_policy_index(&p, calloc(1, crs_policy_index_size(&p) + 8));
	struct crs_request q = {.category = CRS_CAT_FILE, .op = CRS_OP_READ, .access = CRS_ACC_READ,
				.path = argv[2], .program = "/usr/bin/cat"};
	struct crs_decision d = {0};
	long n = atol(argv[3]);
	double runs[7];
	for (int r = 0; r < 7; r++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			crs_decide(&p, &q, &d);
			__asm__ volatile("" : : "r"(&d) : "memory");
		}
		runs[r] = (now_ns() - t0) / n;
	}
	qsort(runs, 7, sizeof runs[0], cmp);
	printf("%.1f %.1f %d %d\n", runs[0], runs[3], d.action, d.rule);
	return 0;
}

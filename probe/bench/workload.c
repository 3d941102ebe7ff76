/* workload MODE N [PATH]: the loops the probe benchmarks time; prints the elapsed nanoseconds.
 *   openclose N PATH  open(PATH)+close, N times (an allowed, unlogged call)
 *   denied N PATH     open(PATH) that the policy denies, N times (hook + decision + errno, no syscall)
 *   spawn N PATH      posix_spawn(PATH) + waitpid, N times (process start with the probe loaded) */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	if (argc != 4)
		return fprintf(stderr, "usage: workload openclose|denied|spawn N PATH\n"), 2;
	long n = atol(argv[2]);
	const char *path = argv[3];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (!strcmp(argv[1], "openclose") || !strcmp(argv[1], "denied")) {
		int want_fail = argv[1][0] == 'd';
		for (long i = 0; i < n; i++) {
			int fd = open(path, O_RDONLY);
			if ((fd < 0) != want_fail)
				return fprintf(stderr, "open %s: unexpected result\n", path), 1;
			if (fd >= 0)
				close(fd);
		}
	} else if (!strcmp(argv[1], "spawn")) {
		char *args[] = {(char *)path, 0};
		for (long i = 0; i < n; i++) {
			pid_t pid;
			int st;
			if (posix_spawn(&pid, path, 0, 0, args, environ) != 0)
				return fprintf(stderr, "spawn %s failed\n", path), 1;
			waitpid(pid, &st, 0);
		}
	} else {
		return fprintf(stderr, "unknown mode %s\n", argv[1]), 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.0f\n", (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec));
	return 0;
}

/* robust: workloads that try to break the probe (core/internal/hardening/robustness_test.go).
 *   robust stress SECONDS DENIED ALLOWED   4 threads open DENIED and ALLOWED in a loop, the main thread forks
 *                                          children that do the same, a 1 ms interval timer's SIGALRM handler opens
 *                                          DENIED too; prints "ok denied=N allowed=N signals=N children=N" or "bad …"
 *   robust spam N PATH                     N opens of PATH, each must fail with EACCES; prints "ok N" or "bad …"
 *   robust tamper                          every way to change the probe's files; prints one line per attempt
 *                                          "OP PATH ok|ERRNO"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *denied, *allowed;
static volatile sig_atomic_t stop;
static volatile sig_atomic_t signals, sigbad;
static long ndenied, nallowed, bad;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int try_open(const char *p)
{
	int fd = open(p, O_RDONLY);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno;
}

static void on_alarm(int s)
{
	int saved = errno;
	if (try_open(denied) != EACCES)
		sigbad++;
	signals++;
	errno = saved;
}

static void *worker(void *arg)
{
	long d = 0, a = 0, b = 0;
	while (!stop) {
		if (try_open(denied) == EACCES)
			d++;
		else
			b++;
		if (try_open(allowed) == 0)
			a++;
		else
			b++;
	}
	pthread_mutex_lock(&mu);
	ndenied += d, nallowed += a, bad += b;
	pthread_mutex_unlock(&mu);
	return 0;
}

static int stress(int seconds)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, 0);
	struct itimerval it = {{0, 1000}, {0, 1000}};
	setitimer(ITIMER_REAL, &it, 0);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], 0, worker, 0);
	time_t end = time(0) + seconds;
	int children = 0, childbad = 0;
	while (time(0) < end) {
		pid_t pid = fork();
		if (pid == 0) {
			int ok = try_open(denied) == EACCES && try_open(allowed) == 0;
			_exit(ok ? 0 : 1);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		children++;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			childbad++;
	}
	stop = 1;
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], 0);
	printf("%s denied=%ld allowed=%ld signals=%d children=%d bad=%ld sigbad=%d childbad=%d\n",
	       bad || sigbad || childbad ? "bad" : "ok", ndenied, nallowed, (int)signals, children, bad, (int)sigbad, childbad);
	return 0;
}

static void report(const char *op, const char *path, int r)
{
	printf("%s %s %s\n", op, path, r == 0 ? "ok" : strerrorname_np(errno));
}

static int tamper(void)
{
	const char *files[] = {"/usr/lib/crs-ci/probe.so", "/etc/crs-ci/policy.bin", "/etc/ld.so.preload"};
	for (int i = 0; i < 3; i++) {
		const char *f = files[i];
		char other[256];
		snprintf(other, sizeof other, "/tmp/tamper-%d", i);
		int fd = open(f, O_WRONLY | O_TRUNC);
		report("open-trunc", f, fd < 0 ? -1 : (close(fd), 0));
		fd = open(f, O_RDWR);
		report("open-rdwr", f, fd < 0 ? -1 : (close(fd), 0));
		fd = open(f, O_WRONLY | O_APPEND);
		report("open-append", f, fd < 0 ? -1 : (close(fd), 0));
		FILE *fp = fopen(f, "w");
		report("fopen-w", f, fp ? (fclose(fp), 0) : -1);
		int dfd = open("/", O_RDONLY | O_DIRECTORY);
		fd = openat(dfd, f + 1, O_WRONLY | O_TRUNC);
		report("openat-trunc", f, fd < 0 ? -1 : (close(fd), 0));
		close(dfd);
		report("truncate", f, truncate(f, 0));
		report("chmod", f, chmod(f, 0666));
		report("chown", f, chown(f, 1, 1));
		report("unlink", f, unlink(f));
		report("rename-away", f, rename(f, other));
		fd = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			write(fd, "x\n", 2);
			close(fd);
		}
		report("rename-over", f, rename(other, f));
		report("link", f, link(f, "/tmp/hardlink"));
		unlink("/tmp/hardlink");
		report("symlink-over", f, symlink("/tmp/x", f));
	}
	report("rename-dir", "/etc/crs-ci", rename("/etc/crs-ci", "/tmp/crs-ci-moved"));
	report("rmdir", "/usr/lib/crs-ci", rmdir("/usr/lib/crs-ci"));
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, 0, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "stress")) {
		denied = argv[3], allowed = argv[4];
		return stress(atoi(argv[2]));
	}
	if (argc == 4 && !strcmp(argv[1], "spam")) {
		long n = atol(argv[2]), badn = 0;
		for (long i = 0; i < n; i++)
			if (try_open(argv[3]) != EACCES)
				badn++;
		printf("%s %ld\n", badn ? "bad" : "ok", n - badn);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "tamper"))
		return tamper();
	fprintf(stderr, "usage: robust stress SECONDS DENIED ALLOWED | spam N PATH | tamper\n");
	return 2;
}

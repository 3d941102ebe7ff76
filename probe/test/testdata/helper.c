/* probe-helper: calls one libc entry point the way a real program would and prints what it got, so the
 * probe tests can assert the decision and errno. Output: "ok [detail]" or "err ERRNO" on one line. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
extern int renameat2(int, const char *, int, const char *, unsigned) __attribute__((weak));
#ifdef CRS_BASELINE
/* the baseline build (baseline.h) may not import renameat2 (glibc 2.28) or execveat (2.34): it looks them up
 * when called, which finds what a linked call would reach (the probe's hook first, as it is preloaded) */
#include <dlfcn.h>
#define LATE(f) ((__typeof__(&f))dlsym(RTLD_DEFAULT, #f))
#else
#define LATE(f) (&f)
#endif
#ifdef __GLIBC__
/* glibc's exported internal names: programs rarely call them directly, but libraries do */
extern int __open(const char *, int, ...);
extern int __open64(const char *, int, ...);
extern int __connect(int, const struct sockaddr *, socklen_t);
extern int __open64_2(const char *, int);
extern int __openat64_2(int, const char *, int);
#endif

static const char *ename(int e)
{
	switch (e) {
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case EEXIST: return "EEXIST";
	case ENOTDIR: return "ENOTDIR";
	case EBADF: return "EBADF";
	}
	static char b[32];
	snprintf(b, sizeof b, "E%d", e);
	return b;
}

static int fd_result(int fd)
{
	if (fd < 0)
		printf("err %s\n", ename(errno));
	else
		printf("ok\n");
	return 0;
}

static int int_result(int r)
{
	if (r < 0)
		printf("err %s\n", ename(errno));
	else
		printf("ok %d\n", r);
	return 0;
}

static const char *sig_path;
static volatile int sig_errno = -1;
static void on_signal(int s)
{
	(void)s;
	int fd = open(sig_path, O_RDONLY);
	sig_errno = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
}

static void *thread_open(void *arg)
{
	int fd = open((const char *)arg, O_RDONLY);
	return (void *)(long)(fd < 0 ? errno : 0);
}

static void *thread_fork(void *arg)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open((const char *)arg, O_RDONLY);
		_exit(fd < 0 ? (errno == EACCES ? 13 : 1) : 0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return (void *)(long)WEXITSTATUS(st);
}

static int sockaddr_of(const char *ip, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(port));
		*len = sizeof *in;
		return AF_INET;
	}
	if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)atoi(port));
		*len = sizeof *in6;
		return AF_INET6;
	}
	fprintf(stderr, "bad address %s\n", ip);
	exit(2);
}

static int spawn_result(int r)
{
	if (r != 0) {
		printf("err %s\n", ename(r));
		return 0;
	}
	int st;
	wait(&st);
	printf("ok %d\n", WEXITSTATUS(st));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: probe-helper OP ARGS...\n");
		return 2;
	}
	const char *op = argv[1], *a = argv[2], *b = argc > 3 ? argv[3] : "";
	setvbuf(stdout, 0, _IONBF, 0);
	if (!strcmp(op, "open"))
		return fd_result(open(a, argc > 3 ? atoi(b) : O_RDONLY));
	if (!strcmp(op, "open64"))
		return fd_result(open64(a, O_RDONLY));
	if (!strcmp(op, "openat")) { /* openat DIR REL */
		int d = open(a, O_RDONLY | O_DIRECTORY);
		return fd_result(openat(d, b, argc > 4 ? atoi(argv[4]) : O_RDONLY));
	}
	if (!strcmp(op, "openat-reused") || !strcmp(op, "openat-dup2")) { /* OP DIR1 DIR2 REL */
		/* a descriptor number that named DIR1 (and was resolved once) now names DIR2: decided as DIR2 */
		int d = open(a, O_RDONLY | O_DIRECTORY), f = openat(d, argv[4], O_RDONLY);
		if (f >= 0)
			close(f);
		if (op[7] == 'r') { /* closed behind the probe's back (a raw close, like closedir's), number reused */
			syscall(SYS_close, d);
			if (open(b, O_RDONLY | O_DIRECTORY) != d)
				return printf("err descriptor not reused\n"), 1;
		} else if (dup2(open(b, O_RDONLY | O_DIRECTORY), d) != d) {
			return printf("err dup2\n"), 1;
		}
		return fd_result(openat(d, argv[4], O_RDONLY));
	}
	if (!strcmp(op, "creat"))
		return fd_result(creat(a, 0644));
	if (!strcmp(op, "fopen")) {
		FILE *f = fopen(a, argc > 3 ? b : "r");
		return fd_result(f ? 0 : -1);
	}
	if (!strcmp(op, "fopen64")) {
		FILE *f = fopen64(a, argc > 3 ? b : "r");
		return fd_result(f ? 0 : -1);
	}
	if (!strcmp(op, "freopen")) {
		FILE *f = freopen(a, "r", stdin);
		return fd_result(f ? 0 : -1);
	}
	if (!strcmp(op, "syscall-openat"))
		return fd_result((int)syscall(SYS_openat, AT_FDCWD, a, O_RDONLY));
	if (!strcmp(op, "syscall-openat2")) { /* struct open_how {flags, mode, resolve} */
		unsigned long long how[3] = {O_RDONLY, 0, 0};
		return fd_result((int)syscall(437 /* openat2, the same on x86_64 and aarch64 */, AT_FDCWD, a, how, sizeof how));
	}
	if (!strcmp(op, "syscall"))
		return int_result((int)syscall(atol(a)));
	if (!strcmp(op, "unlink"))
		return int_result(unlink(a));
	if (!strcmp(op, "rename"))
		return int_result(rename(a, b));
	if (!strcmp(op, "mkdir"))
		return int_result(mkdir(a, 0755));
	if (!strcmp(op, "chmod"))
		return int_result(chmod(a, 0600));
	if (!strcmp(op, "symlink"))
		return int_result(symlink(a, b));
	if (!strcmp(op, "link"))
		return int_result(link(a, b));
	if (!strcmp(op, "truncate"))
		return int_result(truncate(a, 0));
	if (!strcmp(op, "system")) {
		int r = system(a);
		if (r == -1)
			printf("err %s\n", ename(errno));
		else
			printf("ok %d\n", WEXITSTATUS(r));
		return 0;
	}
	if (!strcmp(op, "popen")) {
		FILE *f = popen(a, "r");
		if (!f)
			return fd_result(-1);
		printf("ok %d\n", WEXITSTATUS(pclose(f)));
		return 0;
	}
	if (!strcmp(op, "spawn")) {
		pid_t pid;
		return spawn_result(posix_spawn(&pid, a, 0, 0, argv + 2, environ));
	}
	if (!strcmp(op, "spawnp")) {
		pid_t pid;
		return spawn_result(posix_spawnp(&pid, a, 0, 0, argv + 2, environ));
	}
	if (!strcmp(op, "execve")) {
		execve(a, argv + 2, environ);
		return fd_result(-1);
	}
	if (!strcmp(op, "execve-noenv")) { /* an empty environment: the probe must stay loaded */
		char *none[] = {0};
		execve(a, argv + 2, none);
		return fd_result(-1);
	}
	if (!strcmp(op, "execv")) {
		execv(a, argv + 2);
		return fd_result(-1);
	}
	if (!strcmp(op, "execvp")) {
		execvp(a, argv + 2);
		return fd_result(-1);
	}
	if (!strcmp(op, "execl")) {
		execl(a, a, (char *)0);
		return fd_result(-1);
	}
	if (!strcmp(op, "execlp")) {
		execlp(a, a, (char *)0);
		return fd_result(-1);
	}
	if (!strcmp(op, "execle")) {
		execle(a, a, (char *)0, environ);
		return fd_result(-1);
	}
	if (!strcmp(op, "threads")) { /* 4 threads open PATH; then a thread forks and the child opens it */
		pthread_t t[4];
		int denied = 0;
		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], 0, thread_open, (void *)a);
		for (int i = 0; i < 4; i++) {
			void *r;
			pthread_join(t[i], &r);
			denied += (long)r == EACCES;
		}
		pthread_t f;
		void *code;
		pthread_create(&f, 0, thread_fork, (void *)a);
		pthread_join(f, &code);
		printf("ok denied=%d child=%ld\n", denied, (long)code);
		return 0;
	}
	if (!strcmp(op, "signal")) {
		sig_path = a;
		signal(SIGUSR1, on_signal);
		raise(SIGUSR1);
		if (sig_errno > 0)
			printf("err %s\n", ename(sig_errno));
		else
			printf("ok\n");
		return 0;
	}
	if (!strcmp(op, "connect") || !strcmp(op, "connect-udp") || !strcmp(op, "bind") || !strcmp(op, "sendto")) {
		struct sockaddr_storage ss;
		socklen_t len;
		int fam = sockaddr_of(a, b, &ss, &len);
		int udp = strcmp(op, "connect-udp") == 0 || strcmp(op, "sendto") == 0;
		int s = socket(fam, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
		if (!strcmp(op, "bind"))
			return int_result(bind(s, (struct sockaddr *)&ss, len));
		if (!strcmp(op, "sendto"))
			return int_result((int)sendto(s, "x", 1, 0, (struct sockaddr *)&ss, len));
		return int_result(connect(s, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(op, "connect-unix")) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		strncpy(un.sun_path, a, sizeof un.sun_path - 1);
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		return int_result(connect(s, (struct sockaddr *)&un, sizeof un));
	}
	/* the rest of the entry points, one op each (glibc only where marked) */
#ifdef __GLIBC__
	if (!strcmp(op, "__open"))
		return fd_result(__open(a, O_RDONLY));
	if (!strcmp(op, "__open64"))
		return fd_result(__open64(a, O_RDONLY));
	if (!strcmp(op, "__open64_2"))
		return fd_result(__open64_2(a, O_RDONLY));
	if (!strcmp(op, "__openat64_2"))
		return fd_result(__openat64_2(AT_FDCWD, a, O_RDONLY));
	if (!strcmp(op, "__connect")) {
		struct sockaddr_storage ss;
		socklen_t len;
		int fam = sockaddr_of(a, b, &ss, &len);
		return int_result(__connect(socket(fam, SOCK_STREAM, 0), (struct sockaddr *)&ss, len));
	}
#endif
	if (!strcmp(op, "openat64"))
		return fd_result(openat64(AT_FDCWD, a, O_RDONLY));
	if (!strcmp(op, "creat64"))
		return fd_result(creat64(a, 0644));
	if (!strcmp(op, "freopen64")) {
		FILE *f = freopen64(a, "r", stdin);
		return fd_result(f ? 0 : -1);
	}
	if (!strcmp(op, "unlinkat"))
		return int_result(unlinkat(AT_FDCWD, a, 0));
	if (!strcmp(op, "rmdir"))
		return int_result(rmdir(a));
	if (!strcmp(op, "renameat"))
		return int_result(renameat(AT_FDCWD, a, AT_FDCWD, b));
	if (!strcmp(op, "renameat2")) {
		int (*fn)(int, const char *, int, const char *, unsigned) = LATE(renameat2);
		if (!fn)
			return printf("err ENOSYS\n"), 0;
		return int_result(fn(AT_FDCWD, a, AT_FDCWD, b, 0));
	}
	if (!strcmp(op, "linkat"))
		return int_result(linkat(AT_FDCWD, a, AT_FDCWD, b, 0));
	if (!strcmp(op, "symlinkat"))
		return int_result(symlinkat(a, AT_FDCWD, b));
	if (!strcmp(op, "mkdirat"))
		return int_result(mkdirat(AT_FDCWD, a, 0755));
	if (!strcmp(op, "mknod"))
		return int_result(mknod(a, S_IFIFO | 0644, 0));
	if (!strcmp(op, "mkfifoat"))
		return int_result(mkfifoat(AT_FDCWD, a, 0644));
	if (!strcmp(op, "mknodat"))
		return int_result(mknodat(AT_FDCWD, a, S_IFIFO | 0644, 0));
	if (!strcmp(op, "fchmodat"))
		return int_result(fchmodat(AT_FDCWD, a, 0600, 0));
	if (!strcmp(op, "chown"))
		return int_result(chown(a, 0, 0));
	if (!strcmp(op, "lchown"))
		return int_result(lchown(a, 0, 0));
	if (!strcmp(op, "fchownat"))
		return int_result(fchownat(AT_FDCWD, a, 0, 0, 0));
	if (!strcmp(op, "truncate64"))
		return int_result(truncate64(a, 0));
	if (!strcmp(op, "execvpe")) {
		execvpe(a, argv + 2, environ);
		return fd_result(-1);
	}
	if (!strcmp(op, "fexecve")) {
		int fd = open(a, O_RDONLY | O_CLOEXEC);
		fexecve(fd, argv + 2, environ);
		return fd_result(-1);
	}
	if (!strcmp(op, "execveat")) {
		extern int execveat(int, const char *, char *const[], char *const[], int) __attribute__((weak));
		int (*fn)(int, const char *, char *const[], char *const[], int) = LATE(execveat);
		if (!fn)
			return printf("err ENOSYS\n"), 0;
		fn(AT_FDCWD, a, argv + 2, environ, 0);
		return fd_result(-1);
	}
	if (!strcmp(op, "sendmsg") || !strcmp(op, "listen") || !strcmp(op, "accept") ||
	    !strcmp(op, "accept4")) {
		struct sockaddr_storage ss;
		socklen_t len;
		int fam = sockaddr_of(a, b, &ss, &len);
		if (!strcmp(op, "sendmsg")) {
			struct iovec iov = {"x", 1};
			struct msghdr m = {.msg_name = &ss, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
			return int_result((int)sendmsg(socket(fam, SOCK_DGRAM, 0), &m, 0));
		}
		/* listen/accept: bind with raw syscall (so only listen/accept decide), then listen; for accept,
		 * connect to ourselves and accept the connection */
		int s = socket(fam, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (syscall(SYS_bind, s, &ss, len) != 0)
			return int_result(-1);
		if (!strcmp(op, "listen"))
			return int_result(listen(s, 1));
		if (listen(s, 1) != 0)
			return int_result(-1);
		int c = socket(fam, SOCK_STREAM, 0);
		syscall(SYS_connect, c, &ss, len);
		if (!strcmp(op, "accept"))
			return int_result(accept(s, 0, 0) < 0 ? -1 : 0);
		return int_result(accept4(s, 0, 0, SOCK_CLOEXEC) < 0 ? -1 : 0);
	}
	if (!strcmp(op, "deep")) { /* mkdir+chdir 200-byte names under A until mkdir fails */
		char name[201];
		memset(name, 'd', 200);
		name[200] = 0;
		if (chdir(a) != 0)
			return fd_result(-1);
		for (int depth = 0; depth < 100; depth++) {
			if (mkdir(name, 0755) != 0) {
				printf("err %s depth=%d\n", ename(errno), depth);
				return 0;
			}
			if (chdir(name) != 0)
				return fd_result(-1);
		}
		printf("ok\n");
		return 0;
	}
	if (!strcmp(op, "openat-socket")) { /* a directory descriptor that is not a directory of the root */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		return fd_result(openat(s, a, O_RDONLY));
	}
	if (!strcmp(op, "vfork-exec")) { /* the exec hook running in a vfork child */
		char *args[] = {(char *)a, 0};
		pid_t pid = vfork();
		if (pid == 0) {
			execve(a, args, environ);
			_exit(errno == EPERM ? 13 : 1);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		printf("ok child=%d\n", WEXITSTATUS(st));
		return 0;
	}
	if (!strcmp(op, "openat-badfd"))
		return fd_result(openat(999, a, O_RDONLY));
	if (!strcmp(op, "twice")) { /* open A (denied, event dropped: no sink dir), mkdir B, open A again */
		int r1 = open(a, O_RDONLY);
		int e1 = errno;
		mkdir(b, 0755);
		int r2 = open(a, O_RDONLY);
		printf("%s %s %s\n", r1 < 0 && r2 < 0 ? "ok" : "err", ename(e1), ename(errno));
		return 0;
	}
	fprintf(stderr, "unknown op %s\n", op);
	return 2;
}

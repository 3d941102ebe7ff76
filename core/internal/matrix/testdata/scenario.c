/* The fixed scenario of the truth matrix for images without a dynamically linked shell of their own (the
 * musl image, built with musl-gcc; the static-only image, built with gcc -static). It does what
 * scenario.sh does with the image's programs, itself, and prints the same lines:
 *   @@ STEP rc=EXIT out=OUTPUT
 * Modes: no argument = the scenario; "sh CMD" = a minimal shell that runs CMD (fork + execvp, exit 126 on a
 * failed exec, as sh does); "tree N" = N more levels of itself, the deepest reading the secret. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *self = "/opt/matrix/scenario";

/* cat: copy a file to stdout; 0 on success, else prints the error and returns 1 */
static int cat(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("cat: %s: %s\n", path, strerror(errno));
		return 1;
	}
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	return 0;
}

/* run argv in a child with its output in out; returns the exit code */
static int capture(char *const argv[], char *out, size_t outlen)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		printf("exec %s: %s\n", argv[0], strerror(errno));
		fflush(stdout);
		_exit(126);
	}
	close(p[1]);
	size_t used = 0;
	ssize_t n;
	while ((n = read(p[0], out + used, outlen - 1 - used)) > 0)
		used += (size_t)n;
	out[used] = 0;
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void report(const char *step, int rc, const char *out)
{
	printf("@@ %s rc=%d out=", step, rc);
	for (const char *c = out; *c; c++)
		putchar(*c == '\n' ? ' ' : *c);
	putchar('\n');
	fflush(stdout);
}

static int shell(const char *cmd)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execlp(cmd, cmd, (char *)NULL);
		printf("sh: %s: %s\n", cmd, strerror(errno));
		fflush(stdout);
		_exit(126);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int tree(int levels)
{
	if (levels <= 0)
		return cat("/srv/secret/key");
	char n[16];
	snprintf(n, sizeof n, "%d", levels - 1);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self, self, "tree", n, (char *)NULL);
		printf("exec %s: %s\n", self, strerror(errno));
		fflush(stdout);
		_exit(126);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int connect25(char *out, size_t outlen)
{
	out[0] = 0;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0) {
		snprintf(out, outlen, "socket: %s", strerror(errno));
		return 1;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(25)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
		snprintf(out, outlen, "connect: %s", strerror(errno));
		close(s);
		return 1;
	}
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "sh") == 0)
		return shell(argv[2]);
	if (argc == 3 && strcmp(argv[1], "tree") == 0)
		return tree(atoi(argv[2]));
	if (argc == 2 && strcmp(argv[1], "cat") == 0)
		return cat("/srv/secret/key");

	static char out[8192];
	printf("@@ begin pid=%d\n", (int)getpid());
	/* loaded: is the probe mapped into this process? */
	int fd = open("/proc/self/maps", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, out, sizeof out - 1);
	int mapped = 0;
	while (n > 0) {
		out[n] = 0;
		if (strstr(out, "/usr/lib/crs-ci/probe.so"))
			mapped = 1;
		n = read(fd, out, sizeof out - 1);
	}
	if (fd >= 0)
		close(fd);
	report("maps", fd < 0, mapped ? "probe=yes" : "probe=no");

	char *catv[] = {(char *)self, "cat", NULL};
	report("read-denied", capture(catv, out, sizeof out), out);
	char *shv[] = {(char *)self, "sh", "id", NULL};
	report("exec-denied", capture(shv, out, sizeof out), out);
	int crc = connect25(out, sizeof out);
	report("connect-denied", crc, out);
	int fd2 = open("/srv/public/watched", O_RDONLY);
	if (fd2 < 0) {
		snprintf(out, sizeof out, "cat: /srv/public/watched: %s", strerror(errno));
		report("alert-read", 1, out);
	} else {
		n = read(fd2, out, sizeof out - 1);
		out[n < 0 ? 0 : n] = 0;
		close(fd2);
		report("alert-read", 0, out);
	}
	char *treev[] = {(char *)self, "tree", "3", NULL};
	report("tree", capture(treev, out, sizeof out), out);
	printf("@@ end\n");
	return 0;
}

/* readfile: prints each file named on the command line, or why it could not be opened. Built with
 * musl-gcc by TestEndToEndMusl as a dynamically linked musl program. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[4096];
	for (int i = 1; i < argc; i++) {
		int fd = open(argv[i], O_RDONLY);
		if (fd < 0) {
			printf("%s: open failed: %s\n", argv[i], strerror(errno));
			continue;
		}
		ssize_t n;
		printf("%s: ", argv[i]);
		fflush(stdout);
		while ((n = read(fd, buf, sizeof buf)) > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		close(fd);
	}
	return 0;
}

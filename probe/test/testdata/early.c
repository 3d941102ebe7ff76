/* A library whose constructor runs before the probe's (it is loaded after the probe, so it is initialised
 * first) and opens a denied file: the probe must decide it even though its own constructor has not run. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void early(void)
{
	int fd = open("/srv/secret/key", O_RDONLY);
	char line[64];
	int n = snprintf(line, sizeof line, "early %s\n", fd < 0 ? (errno == EACCES ? "EACCES" : strerror(errno)) : "opened");
	write(1, line, (size_t)n);
}

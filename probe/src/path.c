/* Paths: joining with the working directory or a directory descriptor and normalising lexically (".", ".."
 * and repeated "/" removed; symlinks are not resolved). No allocation: the caller gives the buffer. */
#include <errno.h>
#include <fcntl.h>
#include "probe.h"
#include "sys.h"
#include "util.h"

int crs_fd_path(int fd, char *out, size_t outsize)
{
	char proc[32] = "/proc/self/fd/";
	char digits[12];
	int n = 0;
	unsigned v = (unsigned)fd;
	if (fd < 0)
		return -EBADF;
	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < 11);
	size_t at = 14;
	while (n)
		proc[at++] = digits[--n];
	proc[at] = 0;
	long r = crs_sys4(SYS_readlinkat, AT_FDCWD, proc, out, outsize - 1);
	if (r <= 0 || out[0] != '/')
		return -EBADF; /* no /proc, a closed fd, or not a path (socket, pipe, anon inode) */
	if ((size_t)r >= outsize - 1)
		return -ENAMETOOLONG;
	out[r] = 0;
	return 0;
}

/* append adds the components of rel to the normalised absolute path in out (length *len). */
static int append(char *out, size_t *len, size_t outsize, const char *rel)
{
	const char *p = rel;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *c = p;
		while (*p && *p != '/')
			p++;
		size_t clen = (size_t)(p - c);
		if (clen == 1 && c[0] == '.')
			continue;
		if (clen == 2 && c[0] == '.' && c[1] == '.') {
			while (*len > 0 && out[*len - 1] != '/')
				(*len)--;
			if (*len > 1)
				(*len)--; /* drop the separator, but keep the root's */
			if (*len == 0)
				*len = 1;
			out[*len] = 0;
			continue;
		}
		size_t need = *len + (out[*len - 1] == '/' ? 0 : 1) + clen;
		if (need + 1 > outsize)
			return -ENAMETOOLONG;
		if (out[*len - 1] != '/')
			out[(*len)++] = '/';
		crs_memcpy(out + *len, c, clen);
		*len += clen;
		out[*len] = 0;
	}
	return 0;
}

int crs_path(int dirfd, const char *path, char *out, size_t outsize)
{
	size_t len;
	if (!path)
		return -EBADF;
	if (path[0] == '/') {
		out[0] = '/', out[1] = 0;
	} else if (dirfd == AT_FDCWD) {
		long r = crs_sys2(SYS_getcwd, out, outsize);
		if (r < 0)
			return r == -ERANGE ? -ENAMETOOLONG : -EBADF;
		if (out[0] != '/')
			return -EBADF; /* "(unreachable)": the cwd lies outside our root */
	} else {
		/* readlinkat on /proc/self/fd/N fails for a descriptor that is not open too; only then (rare) ask
		 * fcntl whether it is open, to tell "not open" (the kernel refuses the call) from "not placeable" */
		int r = crs_fd_path(dirfd, out, outsize);
		if (r == -EBADF && crs_sys2(SYS_fcntl, dirfd, F_GETFD) == -EBADF)
			return -ENOENT; /* not open: the kernel fails the call with EBADF itself */
		if (r)
			return r;
	}
	/* the base is already canonical (from the kernel) except for a trailing slash on "/" */
	len = crs_strlen(out);
	return append(out, &len, outsize, path);
}

const char *crs_getenv(char *const *env, const char *name)
{
	size_t n = crs_strlen(name);
	for (; env && *env; env++)
		if (crs_strneq(*env, name, n) && (*env)[n] == '=')
			return *env + n + 1;
	return 0;
}

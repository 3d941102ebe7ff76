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

/* ---- the directory-descriptor cache ----
 * Resolving a dirfd through /proc/self/fd/N costs a readlinkat (~1 us: a procfs walk, an access check, d_path);
 * tar, find, grep -r and rm -r make one call per file relative to a directory descriptor. A small table keeps,
 * per descriptor number, the path last read for it and the identity of the directory it named: mount id,
 * device, inode (statx, ~0.15 us). A hit needs that identity again, so a descriptor closed and reused for
 * another directory, by any means (closedir's internal close, dup2, a raw syscall, another thread), misses.
 * Left: a directory renamed while held open keeps its old path here; renames through this process's hooks
 * clear the table (crs_fd_cache_clear), renames by other processes are the documented path TOCTOU limit.
 * No locks: each slot has a sequence number (a seqlock); a writer claims a slot by moving it from even to odd
 * with a compare-and-swap and skips it when that fails (another thread or an interrupted writer of this one),
 * a reader copies and uses the copy only when the number was even and unchanged. A fork child inherits the
 * table along with the descriptors it describes; a slot left odd by a writer the fork cut off stays unused. */
#define FDC_SLOTS 32
#define FDC_PATH 480
struct fdc_slot {
	unsigned seq;
	unsigned gen; /* crs_fd_cache_gen when written */
	int fd;
	unsigned len;
	unsigned long long mnt, dev, ino;
	char path[FDC_PATH];
};
static struct fdc_slot fdc[FDC_SLOTS];
static unsigned fdc_gen;

void crs_fd_cache_clear(void)
{
	__atomic_add_fetch(&fdc_gen, 1, __ATOMIC_SEQ_CST);
}

struct fdc_id {
	unsigned long long mnt, dev, ino;
};

/* fd_identity fills id for an open directory descriptor; 0, or -1 when statx cannot say (old kernel: no
 * statx or no mount id, seccomp) or fd is not a directory. */
static int fd_identity(int fd, struct fdc_id *id)
{
#ifdef SYS_statx
	/* struct statx by offset: the probe builds with headers that may not declare it */
	unsigned long long b[32];
	b[0] = 0;
	if (crs_sys5(SYS_statx, fd, "", 0x1000 /* AT_EMPTY_PATH */, 0x1001 /* STATX_TYPE|STATX_MNT_ID */, b) != 0)
		return -1;
	unsigned mask = (unsigned)b[0];
	unsigned mode = (unsigned)(b[3] >> 32) & 0xffff; /* stx_mode at 28 */
	if (!(mask & 0x1000) || !(mask & 0x1) || (mode & 0170000) != 0040000)
		return -1;
	const unsigned *w = (const unsigned *)b;
	id->ino = b[4];                                              /* stx_ino at 32 */
	id->dev = (unsigned long long)w[34] << 32 | w[35];           /* stx_dev_major, stx_dev_minor at 136 */
	id->mnt = b[18];                                             /* stx_mnt_id at 144 */
	return 0;
#else
	(void)fd, (void)id;
	return -1;
#endif
}

/* fdc_get copies the cached path of fd into out when the slot describes the same directory; 0 or -1. */
static int fdc_get(int fd, const struct fdc_id *id, char *out, size_t outsize)
{
	struct fdc_slot *s = &fdc[(unsigned)fd % FDC_SLOTS];
	unsigned seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
	if (seq & 1)
		return -1;
	unsigned len = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
	int ok = __atomic_load_n(&s->fd, __ATOMIC_RELAXED) == fd &&
		 __atomic_load_n(&s->gen, __ATOMIC_RELAXED) == __atomic_load_n(&fdc_gen, __ATOMIC_ACQUIRE) &&
		 __atomic_load_n(&s->mnt, __ATOMIC_RELAXED) == id->mnt &&
		 __atomic_load_n(&s->dev, __ATOMIC_RELAXED) == id->dev &&
		 __atomic_load_n(&s->ino, __ATOMIC_RELAXED) == id->ino && len > 0 && len < FDC_PATH && len < outsize;
	if (!ok)
		return -1;
	for (unsigned i = 0; i < len; i++)
		out[i] = __atomic_load_n(&s->path[i], __ATOMIC_RELAXED);
	out[len] = 0;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != seq)
		return -1; /* written meanwhile */
	return out[0] == '/' ? 0 : -1;
}

static void fdc_put(int fd, const struct fdc_id *id, unsigned gen, const char *path)
{
	size_t len = crs_strlen(path);
	if (len == 0 || len >= FDC_PATH)
		return;
	struct fdc_slot *s = &fdc[(unsigned)fd % FDC_SLOTS];
	unsigned seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
	if ((seq & 1) || !__atomic_compare_exchange_n(&s->seq, &seq, seq + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&s->fd, fd, __ATOMIC_RELAXED);
	__atomic_store_n(&s->gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&s->mnt, id->mnt, __ATOMIC_RELAXED);
	__atomic_store_n(&s->dev, id->dev, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ino, id->ino, __ATOMIC_RELAXED);
	__atomic_store_n(&s->len, (unsigned)len, __ATOMIC_RELAXED);
	for (size_t i = 0; i < len; i++)
		__atomic_store_n(&s->path[i], path[i], __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

/* dir_path resolves an open directory descriptor through the cache, else /proc (and fills the cache when the
 * directory's identity is the same before and after reading its path). */
static int dir_path(int fd, char *out, size_t outsize)
{
	struct fdc_id a, b;
	if (fd < 0 || fd_identity(fd, &a) != 0)
		return crs_fd_path(fd, out, outsize);
	if (fdc_get(fd, &a, out, outsize) == 0)
		return 0;
	unsigned gen = __atomic_load_n(&fdc_gen, __ATOMIC_ACQUIRE);
	int r = crs_fd_path(fd, out, outsize);
	if (r == 0 && fd_identity(fd, &b) == 0 && a.mnt == b.mnt && a.dev == b.dev && a.ino == b.ino)
		fdc_put(fd, &a, gen, out);
	return r;
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
		int r = dir_path(dirfd, out, outsize);
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

/* File entry points: the open family (every name glibc exports, fortified ones included), stdio opens and
 * the calls that change the file system. Each decides, then calls the real function. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include "probe.h"

#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);

/* access_of maps open flags to the policy's access and op. */
static int access_of(int flags, int *op)
{
	int acc = 0;
	switch (flags & O_ACCMODE) {
	case O_RDONLY: acc = CRS_ACC_READ; break;
	case O_WRONLY: acc = CRS_ACC_WRITE; break;
	default: acc = CRS_ACC_READ | CRS_ACC_WRITE; break;
	}
	if (flags & (O_CREAT | O_TRUNC) || (flags & O_TMPFILE) == O_TMPFILE)
		acc |= CRS_ACC_WRITE;
	*op = acc & CRS_ACC_WRITE ? CRS_OP_WRITE : CRS_OP_READ;
	return acc;
}

static int check_open(int dirfd, const char *path, int flags)
{
	int op, acc = access_of(flags, &op);
	return crs_check_file(op, acc, dirfd, path);
}

static int needs_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

#define FAIL(e) (errno = (e), -1)
#define NOSYS() (errno = ENOSYS, -1)

#define OPEN_HOOK(name)                                                                                    \
	CRS_EXPORT int name(const char *path, int flags, ...)                                              \
	{                                                                                                  \
		unsigned mode = 0;                                                                         \
		if (needs_mode(flags)) {                                                                   \
			va_list ap;                                                                        \
			va_start(ap, flags);                                                               \
			mode = va_arg(ap, unsigned);                                                       \
			va_end(ap);                                                                        \
		}                                                                                          \
		int e = check_open(AT_FDCWD, path, flags);                                                 \
		if (e)                                                                                     \
			return FAIL(e);                                                                    \
		open_fn real = REAL(name, open_fn);                                                        \
		return real ? real(path, flags, mode) : NOSYS();                                           \
	}

#define OPENAT_HOOK(name)                                                                                  \
	CRS_EXPORT int name(int dirfd, const char *path, int flags, ...)                                   \
	{                                                                                                  \
		unsigned mode = 0;                                                                         \
		if (needs_mode(flags)) {                                                                   \
			va_list ap;                                                                        \
			va_start(ap, flags);                                                               \
			mode = va_arg(ap, unsigned);                                                       \
			va_end(ap);                                                                        \
		}                                                                                          \
		int e = check_open(dirfd, path, flags);                                                    \
		if (e)                                                                                     \
			return FAIL(e);                                                                    \
		openat_fn real = REAL(name, openat_fn);                                                    \
		return real ? real(dirfd, path, flags, mode) : NOSYS();                                    \
	}

/* _FORTIFY_SOURCE builds call these (no mode argument: they abort on O_CREAT without one). */
#define OPEN2_HOOK(name)                                                                                   \
	CRS_EXPORT int name(const char *path, int flags)                                                   \
	{                                                                                                  \
		int e = check_open(AT_FDCWD, path, flags);                                                 \
		if (e)                                                                                     \
			return FAIL(e);                                                                    \
		open2_fn real = REAL(name, open2_fn);                                                      \
		return real ? real(path, flags) : NOSYS();                                                 \
	}

#define OPENAT2_HOOK(name)                                                                                 \
	CRS_EXPORT int name(int dirfd, const char *path, int flags)                                        \
	{                                                                                                  \
		int e = check_open(dirfd, path, flags);                                                    \
		if (e)                                                                                     \
			return FAIL(e);                                                                    \
		openat2_fn real = REAL(name, openat2_fn);                                                  \
		return real ? real(dirfd, path, flags) : NOSYS();                                          \
	}

OPEN_HOOK(open)
OPEN_HOOK(open64)
OPEN_HOOK(__open)
OPEN_HOOK(__open64)
OPENAT_HOOK(openat)
OPENAT_HOOK(openat64)
OPEN2_HOOK(__open_2)
OPEN2_HOOK(__open64_2)
OPENAT2_HOOK(__openat_2)
OPENAT2_HOOK(__openat64_2)

#define CREAT_HOOK(name)                                                                                   \
	CRS_EXPORT int name(const char *path, mode_t mode)                                                 \
	{                                                                                                  \
		int e = crs_check_file(CRS_OP_WRITE, CRS_ACC_WRITE, AT_FDCWD, path);                       \
		if (e)                                                                                     \
			return FAIL(e);                                                                    \
		int (*real)(const char *, mode_t) = REAL(name, int (*)(const char *, mode_t));             \
		return real ? real(path, mode) : NOSYS();                                                  \
	}
CREAT_HOOK(creat)
CREAT_HOOK(creat64)

/* ---- stdio ---- */

static int check_fopen(const char *path, const char *mode)
{
	int acc = 0;
	for (const char *m = mode; m && *m; m++) {
		if (*m == 'r')
			acc |= CRS_ACC_READ;
		else if (*m == 'w' || *m == 'a')
			acc |= CRS_ACC_WRITE;
		else if (*m == '+')
			acc |= CRS_ACC_READ | CRS_ACC_WRITE;
		else if (*m == ',')
			break; /* glibc's ",ccs=" suffix */
	}
	if (!acc)
		acc = CRS_ACC_READ;
	return crs_check_file(acc & CRS_ACC_WRITE ? CRS_OP_WRITE : CRS_OP_READ, acc, AT_FDCWD, path);
}

typedef FILE *(*fopen_fn)(const char *, const char *);
typedef FILE *(*freopen_fn)(const char *, const char *, FILE *);

#define FOPEN_HOOK(name)                                                                                   \
	CRS_EXPORT FILE *name(const char *path, const char *mode)                                          \
	{                                                                                                  \
		int e = check_fopen(path, mode);                                                           \
		if (e)                                                                                     \
			return errno = e, (FILE *)0;                                                       \
		fopen_fn real = REAL(name, fopen_fn);                                                      \
		if (!real)                                                                                 \
			return errno = ENOSYS, (FILE *)0;                                                  \
		return real(path, mode);                                                                   \
	}
FOPEN_HOOK(fopen)
FOPEN_HOOK(fopen64)

#define FREOPEN_HOOK(name)                                                                                 \
	CRS_EXPORT FILE *name(const char *path, const char *mode, FILE *stream)                            \
	{                                                                                                  \
		int e = path ? check_fopen(path, mode) : 0;                                                \
		if (e)                                                                                     \
			return errno = e, (FILE *)0;                                                       \
		freopen_fn real = REAL(name, freopen_fn);                                                  \
		if (!real)                                                                                 \
			return errno = ENOSYS, (FILE *)0;                                                  \
		return real(path, mode, stream);                                                           \
	}
FREOPEN_HOOK(freopen)
FREOPEN_HOOK(freopen64)

/* ---- changes to the file system ---- */

#define CHECK(op, dirfd, path)                                                                             \
	do {                                                                                               \
		int e_ = crs_check_file((op), CRS_ACC_WRITE, (dirfd), (path));                             \
		if (e_)                                                                                    \
			return FAIL(e_);                                                                   \
	} while (0)
#define CALL(name, type, ...)                                                                              \
	do {                                                                                               \
		__typeof__(type) real_ = REAL(name, type);                                                           \
		return real_ ? real_(__VA_ARGS__) : NOSYS();                                               \
	} while (0)

CRS_EXPORT int unlink(const char *p)
{
	CHECK(CRS_OP_UNLINK, AT_FDCWD, p);
	CALL(unlink, int (*)(const char *), p);
}

CRS_EXPORT int unlinkat(int fd, const char *p, int flags)
{
	CHECK(CRS_OP_UNLINK, fd, p);
	CALL(unlinkat, int (*)(int, const char *, int), fd, p, flags);
}

CRS_EXPORT int rmdir(const char *p)
{
	CHECK(CRS_OP_UNLINK, AT_FDCWD, p);
	CALL(rmdir, int (*)(const char *), p);
}

CRS_EXPORT int rename(const char *a, const char *b)
{
	CHECK(CRS_OP_RENAME, AT_FDCWD, a);
	CHECK(CRS_OP_RENAME, AT_FDCWD, b);
	CALL(rename, int (*)(const char *, const char *), a, b);
}

CRS_EXPORT int renameat(int fa, const char *a, int fb, const char *b)
{
	CHECK(CRS_OP_RENAME, fa, a);
	CHECK(CRS_OP_RENAME, fb, b);
	CALL(renameat, int (*)(int, const char *, int, const char *), fa, a, fb, b);
}

CRS_EXPORT int renameat2(int fa, const char *a, int fb, const char *b, unsigned flags)
{
	CHECK(CRS_OP_RENAME, fa, a);
	CHECK(CRS_OP_RENAME, fb, b);
	CALL(renameat2, int (*)(int, const char *, int, const char *, unsigned), fa, a, fb, b, flags);
}

#define CHECK_LINK_SOURCE(dirfd, path)                                                                     \
	do {                                                                                               \
		int e_ = crs_check_link_source((dirfd), (path));                                           \
		if (e_)                                                                                    \
			return FAIL(e_);                                                                   \
	} while (0)

CRS_EXPORT int link(const char *a, const char *b)
{
	CHECK_LINK_SOURCE(AT_FDCWD, a);
	CHECK(CRS_OP_LINK, AT_FDCWD, b);
	CALL(link, int (*)(const char *, const char *), a, b);
}

CRS_EXPORT int linkat(int fa, const char *a, int fb, const char *b, int flags)
{
	CHECK_LINK_SOURCE(fa, a);
	CHECK(CRS_OP_LINK, fb, b);
	CALL(linkat, int (*)(int, const char *, int, const char *, int), fa, a, fb, b, flags);
}

CRS_EXPORT int symlink(const char *target, const char *b)
{
	CHECK(CRS_OP_LINK, AT_FDCWD, b);
	CALL(symlink, int (*)(const char *, const char *), target, b);
}

CRS_EXPORT int symlinkat(const char *target, int fd, const char *b)
{
	CHECK(CRS_OP_LINK, fd, b);
	CALL(symlinkat, int (*)(const char *, int, const char *), target, fd, b);
}

CRS_EXPORT int mkdir(const char *p, mode_t m)
{
	CHECK(CRS_OP_MKDIR, AT_FDCWD, p);
	CALL(mkdir, int (*)(const char *, mode_t), p, m);
}

CRS_EXPORT int mkdirat(int fd, const char *p, mode_t m)
{
	CHECK(CRS_OP_MKDIR, fd, p);
	CALL(mkdirat, int (*)(int, const char *, mode_t), fd, p, m);
}

CRS_EXPORT int mknod(const char *p, mode_t m, dev_t d)
{
	CHECK(CRS_OP_MKDIR, AT_FDCWD, p);
	CALL(mknod, int (*)(const char *, mode_t, dev_t), p, m, d);
}

CRS_EXPORT int mknodat(int fd, const char *p, mode_t m, dev_t d)
{
	CHECK(CRS_OP_MKDIR, fd, p);
	CALL(mknodat, int (*)(int, const char *, mode_t, dev_t), fd, p, m, d);
}

CRS_EXPORT int mkfifo(const char *p, mode_t m)
{
	CHECK(CRS_OP_MKDIR, AT_FDCWD, p);
	CALL(mkfifo, int (*)(const char *, mode_t), p, m);
}

CRS_EXPORT int mkfifoat(int fd, const char *p, mode_t m)
{
	CHECK(CRS_OP_MKDIR, fd, p);
	CALL(mkfifoat, int (*)(int, const char *, mode_t), fd, p, m);
}

/* glibc before 2.33 routes mknod through these. */
CRS_EXPORT int __xmknod(int ver, const char *p, mode_t m, dev_t *d)
{
	CHECK(CRS_OP_MKDIR, AT_FDCWD, p);
	CALL(__xmknod, int (*)(int, const char *, mode_t, dev_t *), ver, p, m, d);
}

CRS_EXPORT int __xmknodat(int ver, int fd, const char *p, mode_t m, dev_t *d)
{
	CHECK(CRS_OP_MKDIR, fd, p);
	CALL(__xmknodat, int (*)(int, int, const char *, mode_t, dev_t *), ver, fd, p, m, d);
}

CRS_EXPORT int chmod(const char *p, mode_t m)
{
	CHECK(CRS_OP_CHMOD, AT_FDCWD, p);
	CALL(chmod, int (*)(const char *, mode_t), p, m);
}

CRS_EXPORT int fchmodat(int fd, const char *p, mode_t m, int flags)
{
	CHECK(CRS_OP_CHMOD, fd, p);
	CALL(fchmodat, int (*)(int, const char *, mode_t, int), fd, p, m, flags);
}

CRS_EXPORT int chown(const char *p, uid_t u, gid_t g)
{
	CHECK(CRS_OP_CHMOD, AT_FDCWD, p);
	CALL(chown, int (*)(const char *, uid_t, gid_t), p, u, g);
}

CRS_EXPORT int lchown(const char *p, uid_t u, gid_t g)
{
	CHECK(CRS_OP_CHMOD, AT_FDCWD, p);
	CALL(lchown, int (*)(const char *, uid_t, gid_t), p, u, g);
}

CRS_EXPORT int fchownat(int fd, const char *p, uid_t u, gid_t g, int flags)
{
	CHECK(CRS_OP_CHMOD, fd, p);
	CALL(fchownat, int (*)(int, const char *, uid_t, gid_t, int), fd, p, u, g, flags);
}

CRS_EXPORT int truncate(const char *p, off_t len)
{
	CHECK(CRS_OP_CHMOD, AT_FDCWD, p);
	CALL(truncate, int (*)(const char *, off_t), p, len);
}

CRS_EXPORT int truncate64(const char *p, off_t len)
{
	CHECK(CRS_OP_CHMOD, AT_FDCWD, p);
	CALL(truncate64, int (*)(const char *, off_t), p, len);
}

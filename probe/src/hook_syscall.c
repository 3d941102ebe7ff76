/* The syscall() escape hatch: decided by number against syscall rules, and calls that have a named hook
 * (open, openat, openat2, execve, connect, unlink, ...) are decided like that hook, so syscall() does not
 * bypass them. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include "probe.h"

#define FAIL(e) (errno = (e), -1)

static int open_access(long flags, int *op)
{
	int acc = (flags & O_ACCMODE) == O_RDONLY ? CRS_ACC_READ
		  : (flags & O_ACCMODE) == O_WRONLY ? CRS_ACC_WRITE
						    : CRS_ACC_READ | CRS_ACC_WRITE;
	if (flags & (O_CREAT | O_TRUNC))
		acc |= CRS_ACC_WRITE;
	*op = acc & CRS_ACC_WRITE ? CRS_OP_WRITE : CRS_OP_READ;
	return acc;
}

/* named decides a raw call the way its named hook would; 0 when it has none. */
static int named(long nr, const long *a)
{
	int op, acc;
	switch (nr) {
#ifdef SYS_open
	case SYS_open:
		acc = open_access(a[1], &op);
		return crs_check_file(op, acc, AT_FDCWD, (const char *)a[0]);
#endif
	case SYS_openat:
		acc = open_access(a[2], &op);
		return crs_check_file(op, acc, (int)a[0], (const char *)a[1]);
#ifdef SYS_openat2
	case SYS_openat2: /* struct open_how: the flags come first */
		if (!a[2])
			return 0;
		acc = open_access((long)*(const unsigned long long *)a[2], &op);
		return crs_check_file(op, acc, (int)a[0], (const char *)a[1]);
#endif
#ifdef SYS_unlink
	case SYS_unlink:
		return crs_check_file(CRS_OP_UNLINK, CRS_ACC_WRITE, AT_FDCWD, (const char *)a[0]);
#endif
	case SYS_unlinkat:
		return crs_check_file(CRS_OP_UNLINK, CRS_ACC_WRITE, (int)a[0], (const char *)a[1]);
	case SYS_renameat2: {
		int e = crs_check_file(CRS_OP_RENAME, CRS_ACC_WRITE, (int)a[0], (const char *)a[1]);
		return e ? e : crs_check_file(CRS_OP_RENAME, CRS_ACC_WRITE, (int)a[2], (const char *)a[3]);
	}
	case SYS_execve:
		return crs_check_exec(AT_FDCWD, (const char *)a[0]);
	case SYS_connect:
		return crs_check_net((int)a[0], CRS_OP_CONNECT, (const void *)a[1], (unsigned)a[2]);
	case SYS_bind:
		return crs_check_net((int)a[0], CRS_OP_BIND, (const void *)a[1], (unsigned)a[2]);
	}
	return 0;
}

CRS_EXPORT long syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	int e = crs_check_syscall(nr, a);
	if (!e && crs.active)
		e = named(nr, a);
	if (e)
		return FAIL(e);
	long (*real)(long, ...) = REAL(syscall, long (*)(long, ...));
	return real ? real(nr, a[0], a[1], a[2], a[3], a[4], a[5]) : FAIL(ENOSYS);
}

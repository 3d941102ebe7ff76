/* Shared state and helpers of the preloaded probe (not used by the decide-harness). */
#ifndef CRS_PROBE_H
#define CRS_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include "decide.h"

#define CRS_HIDDEN __attribute__((visibility("hidden")))
#define CRS_EXPORT __attribute__((visibility("default")))

#define CRS_LIBRARY_PATH "/usr/lib/crs-ci/probe.so"
#define CRS_POLICY_PATH "/etc/crs-ci/policy.bin"
#define CRS_PATH_MAX 4096

#if defined(__x86_64__)
#define CRS_ARCH CRS_ARCH_X86_64
#else
#define CRS_ARCH CRS_ARCH_AARCH64
#endif

/* Real libc functions, resolved once (crs_lookup: what dlsym(RTLD_NEXT) would return). Absent ones (statx before 2.28, execveat before
 * 2.34, __open on musl, ...) stay NULL and their hooks fail with ENOSYS. */
#define CRS_REAL_LIST(X)                                                                                   \
	X(open) X(open64) X(__open) X(__open64) X(openat) X(openat64) X(__open_2) X(__open64_2) X(__openat_2) \
	X(__openat64_2) X(creat) X(creat64) X(fopen) X(fopen64) X(freopen) X(freopen64) X(popen) X(unlink)     \
	X(unlinkat) X(rmdir) X(rename) X(renameat) X(renameat2) X(link) X(linkat) X(symlink) X(symlinkat)      \
	X(mkdir) X(mkdirat) X(mknod) X(mknodat) X(mkfifo) X(mkfifoat) X(__xmknod) X(__xmknodat) X(chmod) X(fchmodat) X(chown)        \
	X(lchown) X(fchownat) X(truncate) X(truncate64) X(execve) X(execv) X(execvp) X(execvpe) X(fexecve)     \
	X(execveat) X(posix_spawn) X(posix_spawnp) X(system) X(connect) X(__connect) X(bind) X(listen)         \
	X(accept) X(accept4) X(sendto) X(sendmsg) X(syscall)

enum {
#define CRS_ENUM(n) CRS_R_##n,
	CRS_REAL_LIST(CRS_ENUM)
#undef CRS_ENUM
	CRS_R_COUNT
};

/* resolve.c: crs_resolve_init records the symbol tables of the objects loaded after the probe; crs_lookup
 * finds a function's default version in them (NULL when absent). */
CRS_HIDDEN void crs_resolve_init(void);
CRS_HIDDEN void *crs_lookup(const char *name);

/* crs_real returns the real function, or NULL; looked up on first use. */
CRS_HIDDEN extern void *crs_real_fns[];
CRS_HIDDEN void *crs_real_slow(int idx);
static inline void *crs_real(int idx)
{
	void *f = __atomic_load_n(&crs_real_fns[idx], __ATOMIC_ACQUIRE);
	return f ? f : crs_real_slow(idx);
}
#define REAL(name, type) ((type)crs_real(CRS_R_##name))

struct crs_state {
	int active;     /* a policy is loaded and its mode is not off */
	int protect;    /* deny writes to the probe's own files (on unless the mode is off) */
	int have_policy;
	int mode;       /* CRS_MODE_* (enforce when no policy: only the own-file protection applies) */
	struct crs_policy pol;
	char program[CRS_PATH_MAX];
};
CRS_HIDDEN extern struct crs_state crs;


/* crs_ready initialises the probe on first use and reports whether hooks should decide (0: pass through). */
CRS_HIDDEN extern int crs_state; /* 2 once initialised */
CRS_HIDDEN int crs_ready_slow(void);
static inline int crs_ready(void)
{
	if (__builtin_expect(__atomic_load_n(&crs_state, __ATOMIC_ACQUIRE) == 2, 1))
		return crs.protect;
	return crs_ready_slow();
}

/* Paths: crs_path joins path with dirfd (AT_FDCWD: the working directory) and normalises it lexically into
 * out. Returns 0, -ENAMETOOLONG when the result does not fit, -EBADF when the directory is unknown, or -ENOENT
 * when dirfd is not an open descriptor (the call will fail in the kernel anyway). */
CRS_HIDDEN int crs_path(int dirfd, const char *path, char *out, size_t outsize);
CRS_HIDDEN int crs_fd_path(int fd, char *out, size_t outsize);
/* crs_fd_cache_clear forgets every cached directory-descriptor path (path.c); called before a rename. */
CRS_HIDDEN void crs_fd_cache_clear(void);
CRS_HIDDEN const char *crs_getenv(char *const *env, const char *name);

/* Checks: each returns 0 to let the call proceed or a positive errno to fail it with. They decide, apply the
 * mode and write the event. */
CRS_HIDDEN int crs_check_file(int op, int access, int dirfd, const char *path);
CRS_HIDDEN int crs_check_link_source(int dirfd, const char *path);
CRS_HIDDEN int crs_check_exec_path(const char *normalised);
CRS_HIDDEN int crs_check_exec(int dirfd, const char *path);
CRS_HIDDEN int crs_check_execp(const char *file);
CRS_HIDDEN int crs_check_net(int fd, int op, const void *sa, unsigned len);
CRS_HIDDEN int crs_check_syscall(long nr, const long *args);

/* Events. */
struct crs_event {
	int op;
	const char *path; /* file / exec subject, or NULL */
	const char *addr; /* network subject, or NULL */
	long sysno;       /* syscall op */
	int action;
	const char *rule;
	const char *error; /* probe errors (op "probe") */
};
CRS_HIDDEN void crs_sink_init(char *const *env);
CRS_HIDDEN void crs_emit(const struct crs_event *ev);
CRS_HIDDEN void crs_probe_error(const char *what, const char *why);
/* crs_apply applies a decision's effect (logging, mode) and returns the errno to fail with, or 0. */
CRS_HIDDEN int crs_apply(int op, const char *path, const char *addr, long sysno, const struct crs_decision *d,
			 int deny_errno);

extern char **environ __attribute__((visibility("default")));

#ifdef CRS_MUSL
/* musl has no /etc/ld.so.preload: exec hooks keep the probe in LD_PRELOAD of the new program. Returns env,
 * or a fixed copy (mmapped; *mapped set to its size so the caller can unmap it if the exec fails). */
CRS_HIDDEN char *const *crs_keep_preload(char *const *env, size_t *mapped);
CRS_HIDDEN void crs_unmap(char *const *env, size_t mapped);
#endif

#endif

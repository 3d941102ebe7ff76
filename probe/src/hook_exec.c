/* Exec entry points: every exec and spawn variant glibc and musl export, system() and popen(). The subject
 * is the program as the call would find it (a PATH search for the p variants), normalised lexically. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include "probe.h"
#include "sys.h"
#include "util.h"

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
			char *const[], char *const[]);

#ifdef CRS_MUSL
/* ---- musl: keep the probe in LD_PRELOAD across exec ---- */
static const char preload_var[] = "LD_PRELOAD=";

static int has_probe(const char *v)
{
	size_t n = sizeof CRS_LIBRARY_PATH - 1;
	for (const char *p = v; *p;) {
		const char *e = p;
		while (*e && *e != ':' && *e != ' ')
			e++;
		if ((size_t)(e - p) == n && crs_strneq(p, CRS_LIBRARY_PATH, n))
			return 1;
		p = *e ? e + 1 : e;
	}
	return 0;
}

char *const *crs_keep_preload(char *const *env, size_t *mapped)
{
	size_t count = 0, at = (size_t)-1;
	*mapped = 0;
	for (; env && env[count]; count++)
		if (crs_strneq(env[count], preload_var, sizeof preload_var - 1))
			at = count;
	if (at != (size_t)-1 && has_probe(env[at] + sizeof preload_var - 1))
		return env;
	size_t old = at == (size_t)-1 ? 0 : crs_strlen(env[at] + sizeof preload_var - 1);
	size_t strbytes = sizeof preload_var - 1 + sizeof CRS_LIBRARY_PATH + 1 + old;
	size_t size = (count + 2) * sizeof(char *) + strbytes;
	long m = crs_sys6(SYS_mmap, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m < 0 && m > -4096)
		return env;
	char **out = (char **)m;
	char *s = (char *)(out + count + 2);
	crs_memcpy(s, preload_var, sizeof preload_var - 1);
	crs_memcpy(s + sizeof preload_var - 1, CRS_LIBRARY_PATH, sizeof CRS_LIBRARY_PATH - 1);
	size_t n = sizeof preload_var - 1 + sizeof CRS_LIBRARY_PATH - 1;
	if (old) {
		s[n++] = ':';
		crs_memcpy(s + n, env[at] + sizeof preload_var - 1, old);
		n += old;
	}
	s[n] = 0;
	size_t j = 0;
	out[j++] = s;
	for (size_t i = 0; i < count; i++)
		if (i != at)
			out[j++] = env[i];
	out[j] = 0;
	*mapped = size;
	return out;
}

void crs_unmap(char *const *env, size_t mapped)
{
	if (mapped)
		crs_sys2(SYS_munmap, env, mapped);
}
#define KEEP(env, mapped) crs_keep_preload((env), &(mapped))
#define UNKEEP(env, mapped) crs_unmap((env), (mapped))
#else
#define KEEP(env, mapped) ((void)(mapped), (env))
#define UNKEEP(env, mapped) ((void)(env), (void)(mapped))
#endif

#define FAIL(e) (errno = (e), -1)

CRS_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	int e = crs_check_exec(AT_FDCWD, path);
	if (e)
		return FAIL(e);
	execve_fn real = REAL(execve, execve_fn);
	if (!real)
		return FAIL(ENOSYS);
	size_t mapped = 0;
	char *const *env = KEEP(envp, mapped);
	int r = real(path, argv, env);
	int saved = errno;
	UNKEEP(env, mapped);
	errno = saved;
	return r;
}

/* execv is execve with the process's environment (the same check, the same LD_PRELOAD keeping). */
CRS_EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }

/* execvp_env runs the real execvp (environ) or execvpe (envp). */
static int execvp_env(const char *file, char *const argv[], char *const envp[], int has_envp)
{
	int e = crs_check_execp(file);
	if (e)
		return FAIL(e);
	size_t mapped = 0;
	int r;
#ifdef CRS_MUSL
	has_envp = 1;
	if (!envp)
		envp = environ;
#endif
	if (has_envp) {
		int (*real)(const char *, char *const[], char *const[]) =
			REAL(execvpe, int (*)(const char *, char *const[], char *const[]));
		if (!real)
			return FAIL(ENOSYS);
		char *const *env = KEEP(envp, mapped);
		r = real(file, argv, env);
		int saved = errno;
		UNKEEP(env, mapped);
		errno = saved;
	} else {
		execv_fn real = REAL(execvp, execv_fn);
		if (!real)
			return FAIL(ENOSYS);
		r = real(file, argv);
	}
	return r;
}

CRS_EXPORT int execvp(const char *file, char *const argv[]) { return execvp_env(file, argv, 0, 0); }

CRS_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return execvp_env(file, argv, envp, 1);
}

/* The execl family: collect the variadic arguments into an argv on the stack. */
#define COLLECT_ARGV(arg0, last, argv)                                                                     \
	size_t argc_ = 1;                                                                                  \
	va_list ap_;                                                                                       \
	va_start(ap_, arg0);                                                                               \
	while (va_arg(ap_, char *))                                                                        \
		argc_++;                                                                                   \
	va_end(ap_);                                                                                       \
	char *argv[argc_ + 1];                                                                             \
	argv[0] = (char *)(arg0);                                                                          \
	va_start(ap_, arg0);                                                                               \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                                             \
		argv[i_] = va_arg(ap_, char *);                                                            \
	last;                                                                                              \
	va_end(ap_)

CRS_EXPORT int execl(const char *path, const char *arg0, ...)
{
	COLLECT_ARGV(arg0, (void)0, argv);
	return execv(path, argv);
}

CRS_EXPORT int execlp(const char *file, const char *arg0, ...)
{
	COLLECT_ARGV(arg0, (void)0, argv);
	return execvp(file, argv);
}

CRS_EXPORT int execle(const char *path, const char *arg0, ...)
{
	char *const *envp;
	COLLECT_ARGV(arg0, envp = va_arg(ap_, char *const *), argv);
	return execve(path, argv, envp);
}

CRS_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	if (crs_ready() && crs.active) {
		char buf[CRS_PATH_MAX];
		int r = crs_fd_path(fd, buf, sizeof buf);
		int e = r ? EPERM : crs_check_exec_path(buf);
		if (e)
			return FAIL(e);
	}
	execve_fn real = (execve_fn)REAL(fexecve, void *);
	int (*f)(int, char *const[], char *const[]) = (int (*)(int, char *const[], char *const[]))(void *)real;
	if (!f)
		return FAIL(ENOSYS);
	size_t mapped = 0;
	char *const *env = KEEP(envp, mapped);
	int r = f(fd, argv, env);
	int saved = errno;
	UNKEEP(env, mapped);
	errno = saved;
	return r;
}

CRS_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
	int e;
	if ((flags & AT_EMPTY_PATH) && path && !*path) {
		e = 0;
		if (crs_ready() && crs.active) {
			char buf[CRS_PATH_MAX];
			e = crs_fd_path(dirfd, buf, sizeof buf) ? EPERM : crs_check_exec_path(buf);
		}
	} else {
		e = crs_check_exec(dirfd, path);
	}
	if (e)
		return FAIL(e);
	int (*real)(int, const char *, char *const[], char *const[], int) =
		REAL(execveat, int (*)(int, const char *, char *const[], char *const[], int));
	if (!real)
		return FAIL(ENOSYS);
	size_t mapped = 0;
	char *const *env = KEEP(envp, mapped);
	int r = real(dirfd, path, argv, env, flags);
	int saved = errno;
	UNKEEP(env, mapped);
	errno = saved;
	return r;
}

/* posix_spawn reports failure as its return value, not in errno. */
CRS_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	int e = crs_check_exec(AT_FDCWD, path);
	if (e)
		return e;
	spawn_fn real = REAL(posix_spawn, spawn_fn);
	if (!real)
		return ENOSYS;
	size_t mapped = 0;
	char *const *env = KEEP(envp, mapped);
	int r = real(pid, path, fa, attr, argv, env);
	UNKEEP(env, mapped);
	return r;
}

CRS_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			    const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	int e = crs_check_execp(file);
	if (e)
		return e;
	spawn_fn real = REAL(posix_spawnp, spawn_fn);
	if (!real)
		return ENOSYS;
	size_t mapped = 0;
	char *const *env = KEEP(envp, mapped);
	int r = real(pid, file, fa, attr, argv, env);
	UNKEEP(env, mapped);
	return r;
}

/* system() and popen() run "/bin/sh -c": the shell is the program executed (the shell, itself probed, then
 * decides what it runs). A denied system() returns -1 with errno EPERM; a denied popen() returns NULL. */
CRS_EXPORT int system(const char *cmd)
{
	if (cmd) {
		int e = crs_check_exec(AT_FDCWD, "/bin/sh");
		if (e)
			return FAIL(e);
	}
	int (*real)(const char *) = REAL(system, int (*)(const char *));
	return real ? real(cmd) : FAIL(ENOSYS);
}

CRS_EXPORT FILE *popen(const char *cmd, const char *mode)
{
	int e = crs_check_exec(AT_FDCWD, "/bin/sh");
	if (e)
		return errno = e, (FILE *)0;
	FILE *(*real)(const char *, const char *) = REAL(popen, FILE * (*)(const char *, const char *));
	return real ? real(cmd, mode) : (errno = ENOSYS, (FILE *)0);
}

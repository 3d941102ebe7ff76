/* A stand-in probe with the kinds of loader needs a preloaded library has: DT_NEEDED libraries (libdl.so.2,
 * libc.so.6) and a versioned libc symbol (dlsym at the baseline version). The in-process tests read its
 * needs with probe.Analyze; the command tests use the real probes embedded in crs-ci. */
#define _GNU_SOURCE
#include <dlfcn.h>
#ifdef __x86_64__
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
#else
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
#endif
int open(const char *path, int flags, ...) {
	static int (*real)(const char *, int, ...);
	if (!real)
		real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	return real(path, flags, 0);
}

/* A stand-in for the real probe, built the same way (see ../../../../shared notes, "Building one .so"):
 * dlsym bound to the baseline version, libdl.so.2 kept as DT_NEEDED. Tests read its needs with probe.Analyze. */
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

/* A stand-in for the real musl probe: a shared library built with musl-gcc (DT_NEEDED libc.so). */
#define _GNU_SOURCE
#include <dlfcn.h>
int open(const char *path, int flags, ...) {
	static int (*real)(const char *, int, ...);
	if (!real)
		real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	return real(path, flags, 0);
}

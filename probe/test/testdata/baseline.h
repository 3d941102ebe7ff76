/* baseline.h: force-included (-include) when the helper is built to run on every glibc from 2.17 on x86_64
 * (see buildHelpers in probe/test/env_test.go). It binds every libc import to its oldest symbol version,
 * the way the probe itself is built, so one binary runs in xenial (2.23) as in trixie (2.41):
 * - no __libc_start_main@GLIBC_2.34: the helper brings its own _start (linked with -nostartfiles);
 * - pthread_create/pthread_join@GLIBC_2.2.5 come from libpthread.so.0 (a link-time stub gives the soname);
 * - mknod/mknodat (2.33) are the old __xmknod/__xmknodat (2.2.5/2.4) calls, which the probe also hooks;
 * - renameat2 (2.28) and execveat (2.34) are weak: absent on older roots, and the tests skip them there. */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/stat.h>
#if !defined(__x86_64__) || !defined(__GLIBC__)
#error baseline.h is for glibc x86_64 builds only
#endif

__asm__(".symver __libc_start_main,__libc_start_main@GLIBC_2.2.5\n"
	".symver pthread_create,pthread_create@GLIBC_2.2.5\n"
	".symver pthread_join,pthread_join@GLIBC_2.2.5\n"
	".symver posix_spawn,posix_spawn@GLIBC_2.2.5\n"
	".symver posix_spawnp,posix_spawnp@GLIBC_2.2.5\n"
	".symver __xmknod,__xmknod@GLIBC_2.2.5\n"
	".symver __xmknodat,__xmknodat@GLIBC_2.4\n");

/* _start: what crt1.o does, for __libc_start_main@GLIBC_2.2.5 (main, argc, argv, init, fini, rtld_fini,
 * stack_end); init and fini are NULL (the helper has no constructors), which every glibc accepts. */
__asm__(".text\n"
	".globl _start\n"
	".type _start,@function\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	mov %rdx, %r9\n"
	"	pop %rsi\n"
	"	mov %rsp, %rdx\n"
	"	and $-16, %rsp\n"
	"	push %rax\n"
	"	push %rsp\n"
	"	xor %r8d, %r8d\n"
	"	xor %ecx, %ecx\n"
	"	lea main(%rip), %rdi\n"
	"	call *__libc_start_main@GOTPCREL(%rip)\n"
	"	hlt\n"
	".size _start, .-_start\n");

extern int __xmknod(int, const char *, mode_t, dev_t *);
extern int __xmknodat(int, int, const char *, mode_t, dev_t *);
static inline int crs_mknod(const char *p, mode_t m, dev_t d) { return __xmknod(0, p, m, &d); }
static inline int crs_mknodat(int fd, const char *p, mode_t m, dev_t d) { return __xmknodat(0, fd, p, m, &d); }
#define mknod crs_mknod
#define mknodat crs_mknodat

/* Raw system calls. The probe never calls libc for its own work: every libc entry point it might call is
 * one it may also hook, and each libc function carries a symbol version the oldest supported glibc may lack.
 * Raw calls keep the probe's needs at the baseline and make its internals async-signal-safe. */
#ifndef CRS_SYS_H
#define CRS_SYS_H

#include <stddef.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
static inline long crs_sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static inline long crs_sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
#else
#error "unsupported architecture"
#endif

/* Each returns the kernel's value: >= 0 on success, -errno on failure. */
#define crs_sys0(n) crs_sys6((n), 0, 0, 0, 0, 0, 0)
#define crs_sys1(n, a) crs_sys6((n), (long)(a), 0, 0, 0, 0, 0)
#define crs_sys2(n, a, b) crs_sys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define crs_sys3(n, a, b, c) crs_sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define crs_sys4(n, a, b, c, d) crs_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define crs_sys5(n, a, b, c, d, e) crs_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

#endif

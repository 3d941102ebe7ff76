/* Initialisation: find the acting program, map and verify the policy, note the event sink. It is lazy: it
 * runs at the first hooked call of a process (which may come before our constructor: another library's
 * constructor), so a process that never calls a hooked function (/bin/true) pays nothing. Real functions are
 * looked up one by one on their first use (probe/src/resolve.c), in tables recorded by the constructor. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "probe.h"
#include "sys.h"
#include "util.h"


CRS_HIDDEN struct crs_state crs;

static const char *const real_names[CRS_R_COUNT] = {
#define CRS_NAME(n) #n,
	CRS_REAL_LIST(CRS_NAME)
#undef CRS_NAME
};
CRS_HIDDEN void *crs_real_fns[CRS_R_COUNT];

enum { ST_NONE, ST_BUSY, ST_READY };
CRS_HIDDEN int crs_state;
#define state crs_state
static long init_tid, init_pid;

static void load_policy(void)
{
	int fd = (int)crs_sys4(SYS_openat, AT_FDCWD, CRS_POLICY_PATH, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		crs_probe_error("policy", fd == -ENOENT ? "policy file " CRS_POLICY_PATH " missing: not enforcing"
							: "cannot open policy " CRS_POLICY_PATH ": not enforcing");
		return;
	}
	struct stat st;
	long r = crs_sys2(SYS_fstat, fd, &st);
	if (r < 0 || st.st_size <= 0 || st.st_size > (1l << 30)) {
		crs_sys1(SYS_close, fd);
		crs_probe_error("policy", "policy " CRS_POLICY_PATH " is empty or unreadable: not enforcing");
		return;
	}
	long m = crs_sys6(SYS_mmap, 0, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	crs_sys1(SYS_close, fd);
	if (m < 0 && m > -4096) {
		crs_probe_error("policy", "cannot map policy " CRS_POLICY_PATH ": not enforcing");
		return;
	}
	const char *why;
	if (crs_policy_load(&crs.pol, (const uint8_t *)m, (size_t)st.st_size, &why) != 0) {
		crs_sys2(SYS_munmap, m, st.st_size);
		crs_probe_error("policy", why);
		return;
	}
	/* the key hash tables: one probe per path component instead of binary searches (fall back if no memory) */
	size_t isz = crs_policy_index_size(&crs.pol);
	long im = crs_sys6(SYS_mmap, 0, isz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!(im < 0 && im > -4096)) {
		crs_policy_index(&crs.pol, (void *)im);
		crs_sys3(SYS_mprotect, im, isz, PROT_READ);
	}
	crs.have_policy = 1;
	crs.mode = crs.pol.mode;
	crs.active = crs.pol.mode != CRS_MODE_OFF;
	crs.protect = crs.active;
}

static void init(void)
{
	long n = crs_sys4(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", crs.program, sizeof crs.program - 1);
	crs.program[n > 0 ? n : 0] = 0;
	crs.mode = CRS_MODE_ENFORCE;
	crs.protect = 1; /* without a policy the own-file protection still applies */
	crs_sink_init(environ);
	load_policy();
}

int crs_ready_slow(void)
{
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_READY)
		return crs.protect;
	long tid = crs_sys0(SYS_gettid);
	int expect = ST_NONE;
	if (__atomic_compare_exchange_n(&state, &expect, ST_BUSY, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&init_tid, tid, __ATOMIC_RELAXED);
		__atomic_store_n(&init_pid, crs_sys0(SYS_getpid), __ATOMIC_RELAXED);
		init();
		__atomic_store_n(&state, ST_READY, __ATOMIC_RELEASE);
		return crs.protect;
	}
	if (__atomic_load_n(&init_tid, __ATOMIC_RELAXED) == tid)
		return 0; /* a call made by the initialisation itself: pass through */
	while (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_READY) {
		long owner = __atomic_load_n(&init_pid, __ATOMIC_RELAXED);
		if (owner && crs_sys0(SYS_getpid) != owner) {
			/* forked while another thread was initialising: that thread does not exist here */
			init();
			__atomic_store_n(&state, ST_READY, __ATOMIC_RELEASE);
			break;
		}
		crs_sys0(SYS_sched_yield);
	}
	return crs.protect;
}

void *crs_real_slow(int idx)
{
	void *f = crs_lookup(real_names[idx]); /* racing threads find the same address */
	__atomic_store_n(&crs_real_fns[idx], f, __ATOMIC_RELEASE);
	return f;
}

/* The constructor records the symbol tables of the objects after the probe (one dl_iterate_phdr, which takes
 * the loader's lock: later lookups take none, so hooks in vfork children are safe). */
__attribute__((constructor)) static void crs_constructor(void) { crs_resolve_init(); }

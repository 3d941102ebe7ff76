/* Events: one JSON object per line, written with a single write (file sink: O_APPEND, so lines from many
 * processes never interleave) or a single datagram (unix sink). A failing sink never blocks or fails the
 * workload: the event is dropped, counted, and the count is reported in the process's next event. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include "probe.h"
#include "sha256.h"
#include "sys.h"
#include "util.h"

#define LINE_MAX_BYTES 8192

static struct {
	int kind; /* CRS_SINK_* */
	int fd;
	unsigned long dev, ino; /* identity of fd, to notice the workload closing and reusing its number */
	char path[256];
	struct sockaddr_un sun;
	unsigned sunlen;
} sink = {CRS_SINK_STDERR, 2, 0, 0, {0}, {0}, 0};

static unsigned long dropped;
static char policy_hex[65];
static int policy_hex_ready;

/* is_own_file reports whether fd is one of the probe's own files, by device and inode (so links and ".."
 * tricks count too): CRS_EVENTS=file:/etc/crs-ci/policy.bin would otherwise let a workload corrupt the policy
 * through the probe's own writes and turn enforcement off for every later process (core/internal/hardening). */
static int is_own_file(int fd)
{
	static const char *const own[] = {"/etc/ld.so.preload", CRS_POLICY_PATH, "/usr/lib/crs-ci/probe.so"};
	struct stat a, b;
	if (crs_sys2(SYS_fstat, fd, &a) != 0)
		return 1;
	for (unsigned i = 0; i < sizeof own / sizeof own[0]; i++)
		if (crs_sys4(SYS_newfstatat, AT_FDCWD, own[i], &b, 0) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return 1;
	return 0;
}

static int open_sink(void)
{
	int fd;
	if (sink.kind == CRS_SINK_FILE) {
		/* O_NONBLOCK: a FIFO without a reader must not block the workload (open fails ENXIO: dropped) */
		fd = (int)crs_sys4(SYS_openat, AT_FDCWD, sink.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
		if (fd >= 0 && is_own_file(fd)) {
			crs_sys1(SYS_close, fd);
			return -1;
		}
	} else
		fd = (int)crs_sys3(SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	/* keep out of the low numbers a workload expects to get from its own opens */
	int hi = (int)crs_sys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 900);
	if (hi >= 0) {
		crs_sys1(SYS_close, fd);
		fd = hi;
	}
	return fd;
}

static void remember(int fd)
{
	struct stat st;
	if (crs_sys2(SYS_fstat, fd, &st) == 0) {
		sink.dev = st.st_dev;
		sink.ino = st.st_ino;
	}
}

static int env_kind = -1; /* sink chosen by CRS_EVENTS, or -1 */
static int sink_state;     /* 0 not opened, 2 open, -TID while thread TID opens it */

void crs_sink_init(char *const *env)
{
	const char *v = crs_getenv(env, "CRS_EVENTS");
	const char *p = 0;
	if (!v)
		return;
	if (crs_strneq(v, "file:/", 6))
		env_kind = CRS_SINK_FILE, p = v + 5;
	else if (crs_strneq(v, "unix:/", 6))
		env_kind = CRS_SINK_UNIX, p = v + 5;
	else if (crs_streq(v, "stderr"))
		env_kind = CRS_SINK_STDERR;
	/* anything else (a relative path too: every process has its own cwd): ignored, the policy's sink applies */
	if (p) {
		size_t n = crs_strlen(p);
		if (n >= sizeof sink.path)
			n = sizeof sink.path - 1;
		crs_memcpy(sink.path, p, n);
		sink.path[n] = 0;
	}
}

/* open_once opens the sink on the first event: CRS_EVENTS, else the policy's sink, else stderr. It returns 0
 * when the sink is ready, -1 when this very thread is already opening it: a signal handler interrupted the
 * opening and made an event of its own (waiting would never end; core/internal/hardening found the hang), so
 * that event is dropped and counted. A thread of another process (forked while it was opening) is replaced. */
static int open_once(void)
{
	if (__atomic_load_n(&sink_state, __ATOMIC_ACQUIRE) == 2)
		return 0;
	int me = (int)crs_sys0(SYS_gettid), expect = 0;
	while (!__atomic_compare_exchange_n(&sink_state, &expect, -me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		if (expect == 2)
			return 0;
		if (expect == -me)
			return -1;
		/* thread -expect opens it; if it is not a thread of this process (we were forked), take over */
		if (crs_sys3(SYS_tgkill, crs_sys0(SYS_getpid), -expect, 0) == -ESRCH)
			continue; /* retry the exchange from -expect */
		crs_sys0(SYS_sched_yield);
		expect = 0;
	}
	if (env_kind >= 0) {
		sink.kind = env_kind;
	} else if (crs.have_policy && crs.pol.sink_kind != CRS_SINK_STDERR && crs.pol.sink_path) {
		size_t n = crs_strlen(crs.pol.sink_path);
		if (n >= sizeof sink.path)
			n = sizeof sink.path - 1;
		crs_memcpy(sink.path, crs.pol.sink_path, n);
		sink.path[n] = 0;
		sink.kind = crs.pol.sink_kind;
	} else {
		sink.kind = CRS_SINK_STDERR;
	}
	if (sink.kind == CRS_SINK_UNIX) {
		sink.sun.sun_family = AF_UNIX;
		size_t n = crs_strlen(sink.path);
		if (n >= sizeof sink.sun.sun_path)
			n = sizeof sink.sun.sun_path - 1;
		crs_memcpy(sink.sun.sun_path, sink.path, n);
		sink.sunlen = (unsigned)(__builtin_offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	if (sink.kind != CRS_SINK_STDERR) {
		sink.fd = open_sink();
		if (sink.fd >= 0)
			remember(sink.fd);
	}
	__atomic_store_n(&sink_state, 2, __ATOMIC_RELEASE);
	return 0;
}

/* ---- formatting ---- */

struct buf {
	char *p;
	size_t n, cap;
	int truncated;
};

/* Strings stop this far before the end of the line buffer, leaving room for the fields after them. */
#define RESERVE 512

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->n + n > b->cap)
		return;
	crs_memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void puts_(struct buf *b, const char *s) { put(b, s, crs_strlen(s)); }

static void putu(struct buf *b, unsigned long v, int width)
{
	char d[24];
	int n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) || n < width);
	char o[24];
	for (int i = 0; i < n; i++)
		o[i] = d[n - 1 - i];
	put(b, o, (size_t)n);
}

/* putjson writes s as a JSON string. Long ones (limited: path, program, address) stop RESERVE bytes before
 * the end of the line buffer, the others 160 bytes before it, so the fields after them and the closing
 * brace always fit. */
static void putjson_n(struct buf *b, const char *s, int limited)
{
	static const char hex[] = "0123456789abcdef";
	put(b, "\"", 1);
	for (; *s; s++) {
		if (b->n + 6 + (limited ? RESERVE : 160) > b->cap) {
			b->truncated = 1;
			break;
		}
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			put(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			put(b, e, 6);
		} else {
			put(b, (const char *)&c, 1);
		}
	}
	put(b, "\"", 1);
}

static void putjson(struct buf *b, const char *s) { putjson_n(b, s, 0); }
static void putlong(struct buf *b, const char *s) { putjson_n(b, s, 1); }

/* civil converts days since 1970-01-01 to a date (Howard Hinnant's algorithm). */
static void civil(long z, long *y, unsigned *m, unsigned *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned long doe = (unsigned long)(z - era * 146097);
	unsigned long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long yy = (long)yoe + era * 400;
	unsigned long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned long mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yy + (*m <= 2);
}

static void putts(struct buf *b)
{
	struct timespec ts = {0, 0};
	crs_sys2(SYS_clock_gettime, CLOCK_REALTIME, &ts);
	long days = ts.tv_sec / 86400, rem = ts.tv_sec % 86400;
	long y;
	unsigned m, d;
	civil(days, &y, &m, &d);
	put(b, "\"", 1);
	putu(b, (unsigned long)y, 4);
	put(b, "-", 1);
	putu(b, m, 2);
	put(b, "-", 1);
	putu(b, d, 2);
	put(b, "T", 1);
	putu(b, (unsigned long)(rem / 3600), 2);
	put(b, ":", 1);
	putu(b, (unsigned long)(rem / 60 % 60), 2);
	put(b, ":", 1);
	putu(b, (unsigned long)(rem % 60), 2);
	put(b, ".", 1);
	putu(b, (unsigned long)ts.tv_nsec, 9);
	put(b, "Z\"", 2);
}

static const char *policy_id(void)
{
	if (!crs.have_policy)
		return "";
	if (!__atomic_load_n(&policy_hex_ready, __ATOMIC_ACQUIRE)) {
		static const char hex[] = "0123456789abcdef";
		uint8_t sum[32];
		char h[65];
		crs_sha256(crs.pol.base, crs.pol.size, sum);
		for (int i = 0; i < 32; i++)
			h[2 * i] = hex[sum[i] >> 4], h[2 * i + 1] = hex[sum[i] & 15];
		h[64] = 0;
		crs_memcpy(policy_hex, h, 65); /* racing writers write the same bytes */
		__atomic_store_n(&policy_hex_ready, 1, __ATOMIC_RELEASE);
	}
	return policy_hex;
}

/* ---- writing ---- */

static int same_sink(int fd)
{
	struct stat st;
	if (crs_sys2(SYS_fstat, fd, &st) != 0)
		return 0;
	return st.st_dev == sink.dev && st.st_ino == sink.ino;
}

static long send_line(int fd, const char *p, size_t n)
{
	if (sink.kind == CRS_SINK_UNIX)
		return crs_sys6(SYS_sendto, fd, (long)p, (long)n, MSG_DONTWAIT | MSG_NOSIGNAL, (long)&sink.sun, sink.sunlen);
	/* a closed pipe must not kill the workload with SIGPIPE: block it around the write and swallow the
	 * one this write raised (unless one was already pending) */
	unsigned long pipe = 1ul << (SIGPIPE - 1), old = 0, pending = 0;
	crs_sys4(SYS_rt_sigprocmask, SIG_BLOCK, &pipe, &old, 8);
	crs_sys2(SYS_rt_sigpending, &pending, 8);
	long r = crs_sys3(SYS_write, fd, p, n);
	if (r == -EPIPE && !(pending & pipe)) {
		struct timespec zero = {0, 0};
		crs_sys4(SYS_rt_sigtimedwait, &pipe, 0, &zero, 8);
	}
	crs_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &old, 0, 8);
	return r;
}

static void write_line(const char *p, size_t n)
{
	long r;
	if (sink.kind == CRS_SINK_STDERR) {
		r = send_line(2, p, n);
	} else if (sink.fd >= 0 && same_sink(sink.fd)) {
		r = send_line(sink.fd, p, n);
	} else {
		/* our descriptor was closed (and maybe reused) by the workload: use a fresh one for this line */
		int fd = open_sink();
		r = fd < 0 ? fd : send_line(fd, p, n);
		if (fd >= 0)
			crs_sys1(SYS_close, fd);
	}
	if (r != (long)n)
		__atomic_fetch_add(&dropped, 1, __ATOMIC_RELAXED);
}

static const char *action_name(int a) { return a == CRS_DENY ? "deny" : a == CRS_ALERT ? "alert" : "allow"; }

void crs_emit(const struct crs_event *ev)
{
	char line[LINE_MAX_BYTES];
	struct buf b = {line, 0, sizeof line, 0};
	if (open_once() < 0) {
		__atomic_fetch_add(&dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	puts_(&b, "{\"ts\":");
	putts(&b);
	puts_(&b, ",\"pid\":");
	putu(&b, (unsigned long)crs_sys0(SYS_getpid), 1);
	puts_(&b, ",\"program\":");
	putlong(&b, crs.program);
	puts_(&b, ",\"op\":");
	putjson(&b, ev->error ? "probe" : crs_op_names[ev->op]);
	if (ev->path) {
		puts_(&b, ",\"path\":");
		putlong(&b, ev->path);
	}
	if (ev->addr) {
		puts_(&b, ",\"addr\":");
		putlong(&b, ev->addr);
	}
	if (!ev->error && ev->op == CRS_OP_SYSCALL) {
		puts_(&b, ",\"syscall\":");
		putu(&b, (unsigned long)ev->sysno, 1);
	}
	if (ev->error) {
		puts_(&b, ",\"action\":\"error\",\"error\":");
		putjson(&b, ev->error);
	} else {
		puts_(&b, ",\"action\":");
		putjson(&b, action_name(ev->action));
		puts_(&b, ",\"rule\":");
		putjson(&b, ev->rule ? ev->rule : "");
		puts_(&b, ",\"mode\":");
		putjson(&b, crs.mode == CRS_MODE_AUDIT ? "audit" : "enforce");
	}
	puts_(&b, ",\"policy\":");
	putjson(&b, policy_id());
	unsigned long drops = __atomic_exchange_n(&dropped, 0, __ATOMIC_RELAXED);
	if (drops) {
		puts_(&b, ",\"dropped\":");
		putu(&b, drops, 1);
	}
	if (b.truncated)
		puts_(&b, ",\"truncated\":true");
	put(&b, "}\n", 2);
	write_line(line, b.n);
}

void crs_probe_error(const char *what, const char *why)
{
	(void)what;
	struct crs_event ev = {0};
	ev.error = why;
	ev.path = CRS_POLICY_PATH;
	crs_emit(&ev);
}

int crs_apply(int op, const char *path, const char *addr, long sysno, const struct crs_decision *d, int deny_errno)
{
	int bit = d->action == CRS_DENY ? CRS_LOG_DENY : d->action == CRS_ALERT ? CRS_LOG_ALERT : CRS_LOG_ALLOW;
	if ((crs.pol.logmask & bit) && !(crs.pol.ignore & (1u << op))) {
		struct crs_event ev = {0};
		ev.op = op, ev.path = path, ev.addr = addr, ev.sysno = sysno, ev.action = d->action;
		ev.rule = crs_rule_name(&crs.pol, d->rule);
		crs_emit(&ev);
	}
	if (d->action == CRS_DENY && crs.mode == CRS_MODE_ENFORCE)
		return deny_errno;
	return 0;
}

/* Checks shared by the hooks: build the request, decide, apply the mode, write the event. Each returns 0 to
 * let the call proceed or the errno to fail it with. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "probe.h"
#include "sys.h"
#include "util.h"

/* The probe's own files: the workload may read them but never write, rename, unlink or chmod them. */
static int is_protected(const char *p)
{
	static const char *const dirs[] = {"/etc/crs-ci", "/usr/lib/crs-ci", "/lib/crs-ci"};
	if (crs_streq(p, "/etc/ld.so.preload"))
		return 1;
	for (unsigned i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		size_t n = crs_strlen(dirs[i]);
		if (crs_strneq(p, dirs[i], n) && (p[n] == 0 || p[n] == '/'))
			return 1;
	}
	return 0;
}

static int deny_unchecked(int op, const char *shown, int err)
{
	struct crs_decision d = {CRS_DENY, -1};
	struct crs_event ev = {0};
	ev.op = op, ev.path = shown, ev.action = CRS_DENY, ev.rule = "crs-ci:unchecked-path";
	if (!crs.have_policy || (crs.pol.logmask & CRS_LOG_DENY))
		crs_emit(&ev);
	(void)d;
	return crs.mode == CRS_MODE_ENFORCE ? err : 0;
}

/* is_clean reports whether an absolute path is already normalised (no "//", "." or ".." components, no
 * trailing "/"), so it can be decided without a copy. */
static int is_clean(const char *p)
{
	size_t i = 0;
	for (; p[i]; i++) {
		if (p[i] != '/')
			continue;
		if (p[i + 1] == '/' || (p[i + 1] == 0 && i > 0))
			return 0;
		if (p[i + 1] == '.' && (p[i + 2] == '/' || p[i + 2] == 0 || (p[i + 2] == '.' && (p[i + 3] == '/' || p[i + 3] == 0))))
			return 0;
	}
	return i < CRS_PATH_MAX;
}

int crs_check_file(int op, int access, int dirfd, const char *path)
{
	char store[CRS_PATH_MAX];
	char *buf = store;
	if (op == CRS_OP_RENAME)
		crs_fd_cache_clear(); /* a renamed directory changes the paths of descriptors open on it */
	if (!path || !crs_ready())
		return 0;
	int r = 0;
	if (path[0] == '/' && is_clean(path))
		buf = (char *)path; /* the common case: decided in place */
	else
		r = crs_path(dirfd, path, store, sizeof store);
	if (r == -ENOENT)
		return 0; /* dirfd is not open: the kernel refuses the call (EBADF) */
	if (r == -ENAMETOOLONG) /* cannot be checked: fail closed (the kernel has the same limit for one path) */
		return crs.active ? deny_unchecked(op, path, ENAMETOOLONG) : 0;
	if (r) /* unknown directory descriptor: the path cannot be placed, fail closed */
		return crs.active ? deny_unchecked(op, path, EACCES) : 0;
	if ((access & CRS_ACC_WRITE) && is_protected(buf)) {
		struct crs_event ev = {0};
		ev.op = op, ev.path = buf, ev.action = CRS_DENY, ev.rule = "crs-ci:protected-file";
		crs_emit(&ev);
		return EACCES; /* in audit mode too: the probe's own files are never the workload's */
	}
	if (!crs.active)
		return 0;
	struct crs_request q = {0};
	q.category = CRS_CAT_FILE, q.op = op, q.access = access, q.path = buf, q.program = crs.program;
	struct crs_decision d;
	crs_decide(&crs.pol, &q, &d);
	return crs_apply(op, buf, 0, -1, &d, EACCES);
}

/* crs_check_link_source refuses a hard link to one of the probe's own files: writing through the new name
 * would change the file (core/internal/hardening). Only the protection applies to the source, not the policy. */
int crs_check_link_source(int dirfd, const char *path)
{
	char buf[CRS_PATH_MAX];
	if (!path || !crs_ready() || crs_path(dirfd, path, buf, sizeof buf) != 0 || !is_protected(buf))
		return 0;
	struct crs_event ev = {0};
	ev.op = CRS_OP_LINK, ev.path = buf, ev.action = CRS_DENY, ev.rule = "crs-ci:protected-file";
	crs_emit(&ev);
	return EACCES;
}

int crs_check_exec_path(const char *normalised)
{
	struct crs_request q = {0};
	q.category = CRS_CAT_EXEC, q.op = CRS_OP_EXEC, q.path = normalised, q.program = crs.program;
	struct crs_decision d;
	crs_decide(&crs.pol, &q, &d);
	return crs_apply(CRS_OP_EXEC, normalised, 0, -1, &d, EPERM);
}

int crs_check_exec(int dirfd, const char *path)
{
	char buf[CRS_PATH_MAX];
	if (!path || !crs_ready() || !crs.active)
		return 0;
	int r = crs_path(dirfd, path, buf, sizeof buf);
	if (r == -ENOENT)
		return 0;
	if (r)
		return deny_unchecked(CRS_OP_EXEC, path, r == -ENAMETOOLONG ? ENAMETOOLONG : EPERM);
	return crs_check_exec_path(buf);
}

/* default_exec_logged reports whether crs_apply would write an event for the exec category default. */
static int default_exec_logged(void)
{
	int a = crs.pol.defaults[CRS_CAT_EXEC];
	int bit = a == CRS_DENY ? CRS_LOG_DENY : a == CRS_ALERT ? CRS_LOG_ALERT : CRS_LOG_ALLOW;
	return (crs.pol.logmask & bit) && !(crs.pol.ignore & (1u << CRS_OP_EXEC));
}

/* crs_check_execp decides an exec by file name the way execvp finds it: a name with a '/' is a path; else the
 * first executable PATH entry (PATH unset: "/bin:/usr/bin", glibc's default). */
int crs_check_execp(const char *file)
{
	if (!file || !crs_ready() || !crs.active)
		return 0;
	for (const char *c = file; *c; c++)
		if (*c == '/')
			return crs_check_exec(AT_FDCWD, file);
	if (!*file)
		return 0;
	/* No exec rule and an unlogged default: the decision is the same for every candidate and no event shows
	 * the path, so the first candidate stands for all of them and the search (a faccessat per PATH entry, which
	 * the real execvp repeats anyway) is skipped. */
	int search = crs.pol.nexec != 0 || default_exec_logged();
	const char *path = crs_getenv(environ, "PATH");
	if (!path)
		path = "/bin:/usr/bin";
	char cand[CRS_PATH_MAX], first[CRS_PATH_MAX];
	first[0] = 0;
	size_t flen = crs_strlen(file);
	for (const char *p = path;;) {
		const char *e = p;
		while (*e && *e != ':')
			e++;
		size_t dlen = (size_t)(e - p);
		char dir[CRS_PATH_MAX];
		if (dlen == 0)
			dir[0] = '.', dlen = 1; /* an empty entry is the working directory */
		else if (dlen < sizeof dir)
			crs_memcpy(dir, p, dlen);
		if (dlen + 1 + flen < sizeof dir) {
			dir[dlen] = '/';
			crs_memcpy(dir + dlen + 1, file, flen + 1);
			if (crs_path(AT_FDCWD, dir, cand, sizeof cand) == 0) {
				if (!first[0])
					crs_memcpy(first, cand, crs_strlen(cand) + 1);
				if (!search)
					break;
				if (crs_sys4(SYS_faccessat, AT_FDCWD, cand, 1 /* X_OK */, 0) == 0)
					return crs_check_exec_path(cand);
			}
		}
		if (!*e)
			break;
		p = e + 1;
	}
	return first[0] ? crs_check_exec_path(first) : 0;
}

/* ---- network ---- */

static size_t fmt_u(char *o, unsigned long v)
{
	char d[24];
	size_t n = 0, i;
	do
		d[n++] = (char)('0' + v % 10);
	while (v /= 10);
	for (i = 0; i < n; i++)
		o[i] = d[n - 1 - i];
	return n;
}

/* fmt_addr writes "a.b.c.d:port" or "[v6]:port" (zeros not compressed) into o. */
static void fmt_addr(char *o, const uint8_t a[16], unsigned port)
{
	static const char hex[] = "0123456789abcdef";
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	size_t n = 0;
	int v4 = 1;
	for (int i = 0; i < 12; i++)
		v4 &= a[i] == mapped[i];
	if (v4) {
		for (int i = 12; i < 16; i++) {
			n += fmt_u(o + n, a[i]);
			if (i < 15)
				o[n++] = '.';
		}
	} else { /* RFC 5952: lower-case hex, no leading zeros, the longest run of 2+ zero groups as "::" */
		unsigned w[8];
		int best = -1, bestlen = 1;
		for (int i = 0; i < 8; i++)
			w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
		for (int i = 0; i < 8;) {
			int j = i;
			while (j < 8 && w[j] == 0)
				j++;
			if (j - i > bestlen)
				best = i, bestlen = j - i;
			i = j > i ? j : i + 1;
		}
		o[n++] = '[';
		for (int i = 0; i < 8; i++) {
			if (i == best) {
				o[n++] = ':';
				if (i == 0)
					o[n++] = ':';
				i += bestlen - 1;
				continue;
			}
			int started = 0;
			for (int s = 12; s >= 0; s -= 4) {
				unsigned x = (w[i] >> s) & 15;
				if (x || started || s == 0)
					o[n++] = hex[x], started = 1;
			}
			if (i < 7)
				o[n++] = ':';
		}
		o[n++] = ']';
	}
	o[n++] = ':';
	n += fmt_u(o + n, port);
	o[n] = 0;
}

int crs_check_net(int fd, int op, const void *sav, unsigned len)
{
	const struct sockaddr *sa = sav;
	if (!sa || len < sizeof(sa_family_t) || !crs_ready() || !crs.active)
		return 0;
	struct crs_request q = {0};
	char shown[CRS_PATH_MAX + 8];
	char upath[CRS_PATH_MAX];
	uint8_t addr[16] = {0};
	q.category = CRS_CAT_NET, q.op = op, q.program = crs.program;
	q.access = op == CRS_OP_CONNECT ? CRS_DIR_OUT : CRS_DIR_IN;
	int type = 0;
	unsigned tl = sizeof type;
	if (crs_sys5(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0)
		q.protocol = type == SOCK_STREAM ? CRS_PROTO_TCP : type == SOCK_DGRAM ? CRS_PROTO_UDP : CRS_PROTO_ANY;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = sav;
		addr[10] = addr[11] = 0xff;
		crs_memcpy(addr + 12, &in->sin_addr, 4);
		q.port = __builtin_bswap16(in->sin_port);
		q.addr = addr;
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = sav;
		crs_memcpy(addr, &in6->sin6_addr, 16);
		q.port = __builtin_bswap16(in6->sin6_port);
		q.addr = addr;
	} else if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = sav;
		size_t max = len - __builtin_offsetof(struct sockaddr_un, sun_path), n = 0;
		if (max > sizeof un->sun_path)
			max = sizeof un->sun_path;
		if (max == 0)
			return 0; /* unnamed */
		char raw[sizeof un->sun_path + 2];
		if (un->sun_path[0] == 0) { /* abstract namespace: shown as @name, matched by no absolute glob */
			raw[0] = '@';
			for (n = 1; n < max && un->sun_path[n]; n++)
				raw[n] = un->sun_path[n];
			raw[n] = 0;
			crs_memcpy(upath, raw, n + 1);
		} else {
			for (n = 0; n < max && un->sun_path[n]; n++)
				raw[n] = un->sun_path[n];
			raw[n] = 0;
			if (crs_path(AT_FDCWD, raw, upath, sizeof upath) != 0)
				crs_memcpy(upath, raw, n + 1);
		}
		q.unix_path = upath;
	} else {
		return 0; /* netlink, packet, vsock...: not decided */
	}
	if (q.unix_path) {
		crs_memcpy(shown, "unix:", 5);
		crs_memcpy(shown + 5, q.unix_path, crs_strlen(q.unix_path) + 1);
	} else {
		fmt_addr(shown, addr, q.port);
	}
	struct crs_decision d;
	crs_decide(&crs.pol, &q, &d);
	return crs_apply(op, 0, shown, -1, &d, EPERM);
}

int crs_check_syscall(long nr, const long *args)
{
	(void)args;
	if (!crs_ready() || !crs.active)
		return 0;
	struct crs_request q = {0};
	q.category = CRS_CAT_SYSCALL, q.op = CRS_OP_SYSCALL, q.sysno = nr, q.arch = CRS_ARCH, q.program = crs.program;
	struct crs_decision d;
	crs_decide(&crs.pol, &q, &d);
	return crs_apply(CRS_OP_SYSCALL, 0, 0, nr, &d, EPERM);
}

/* Network entry points. Outbound: connect, sendto/sendmsg with an address. Inbound: bind and listen (the
 * local address) and accept/accept4 (the peer's address and the local port; a denied connection is closed and
 * the call fails). */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "probe.h"
#include "sys.h"

#define FAIL(e) (errno = (e), -1)

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

CRS_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int e = crs_check_net(fd, CRS_OP_CONNECT, sa, len);
	if (e)
		return FAIL(e);
	connect_fn real = REAL(connect, connect_fn);
	return real ? real(fd, sa, len) : FAIL(ENOSYS);
}

CRS_EXPORT int __connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int e = crs_check_net(fd, CRS_OP_CONNECT, sa, len);
	if (e)
		return FAIL(e);
	connect_fn real = REAL(__connect, connect_fn);
	return real ? real(fd, sa, len) : FAIL(ENOSYS);
}

CRS_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int e = crs_check_net(fd, CRS_OP_BIND, sa, len);
	if (e)
		return FAIL(e);
	connect_fn real = REAL(bind, connect_fn);
	return real ? real(fd, sa, len) : FAIL(ENOSYS);
}

CRS_EXPORT int listen(int fd, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (crs_sys3(SYS_getsockname, fd, &ss, &len) == 0) {
		int e = crs_check_net(fd, CRS_OP_BIND, &ss, len);
		if (e)
			return FAIL(e);
	}
	int (*real)(int, int) = REAL(listen, int (*)(int, int));
	return real ? real(fd, backlog) : FAIL(ENOSYS);
}

/* check_accepted decides an accepted connection: the peer's address with our local port ("inbound from
 * 10.0.0.0/8 to port 443"); for unix sockets, our own socket path. A denied connection is closed. */
static int check_accepted(int nfd)
{
	struct sockaddr_storage peer, local;
	socklen_t plen = sizeof peer, llen = sizeof local;
	if (nfd < 0 || crs_sys3(SYS_getsockname, nfd, &local, &llen) != 0)
		return 0;
	const void *sa = &local;
	socklen_t len = llen;
	if (local.ss_family != AF_UNIX && crs_sys3(SYS_getpeername, nfd, &peer, &plen) == 0 &&
	    peer.ss_family == local.ss_family) {
		/* sin_port and sin6_port share their offset */
		((struct sockaddr_in *)&peer)->sin_port = ((struct sockaddr_in *)&local)->sin_port;
		sa = &peer, len = plen;
	}
	int e = crs_check_net(nfd, CRS_OP_BIND, sa, len);
	if (e)
		crs_sys1(SYS_close, nfd);
	return e;
}

CRS_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	int (*real)(int, struct sockaddr *, socklen_t *) = REAL(accept, int (*)(int, struct sockaddr *, socklen_t *));
	if (!real)
		return FAIL(ENOSYS);
	int nfd = real(fd, sa, len);
	int e = check_accepted(nfd);
	return e ? FAIL(e) : nfd;
}

CRS_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	int (*real)(int, struct sockaddr *, socklen_t *, int) =
		REAL(accept4, int (*)(int, struct sockaddr *, socklen_t *, int));
	if (!real)
		return FAIL(ENOSYS);
	int nfd = real(fd, sa, len, flags);
	int e = check_accepted(nfd);
	return e ? FAIL(e) : nfd;
}

CRS_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len)
{
	if (sa) {
		int e = crs_check_net(fd, CRS_OP_CONNECT, sa, len);
		if (e)
			return FAIL(e);
	}
	ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t) =
		REAL(sendto, ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t));
	return real ? real(fd, buf, n, flags, sa, len) : FAIL(ENOSYS);
}

CRS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (msg && msg->msg_name) {
		int e = crs_check_net(fd, CRS_OP_CONNECT, msg->msg_name, msg->msg_namelen);
		if (e)
			return FAIL(e);
	}
	ssize_t (*real)(int, const struct msghdr *, int) = REAL(sendmsg, ssize_t (*)(int, const struct msghdr *, int));
	return real ? real(fd, msg, flags) : FAIL(ENOSYS);
}

// Linux-only declarations LingerProbe and the test fixture need that Glibc does not export to Swift.
// Everything is prefixed so nothing collides with Glibc's own names.
#ifndef CLINGER_LINUX_H
#define CLINGER_LINUX_H

#ifdef __linux__
#include <stdint.h>
#include <sys/types.h>

/// NETLINK_SOCK_DIAG (linux/netlink.h): the protocol `ss` uses to dump sockets.
#define CLINGER_NETLINK_SOCK_DIAG 4
/// SOCK_DIAG_BY_FAMILY (linux/sock_diag.h).
#define CLINGER_SOCK_DIAG_BY_FAMILY 20

/// Joins the network namespace behind `fd` for the calling thread: setns(2) with CLONE_NEWNET.
/// Returns 0 or -1 with errno set. setns needs _GNU_SOURCE, which Swift's Glibc import does not define.
int clinger_setns_net(int fd);

/// Binds an AF_NETLINK socket to the kernel-assigned port id (sockaddr_nl is not in Glibc's Swift overlay).
int clinger_netlink_bind(int fd);

/// Sends one netlink request to the kernel (pid 0). Returns bytes sent or -1 with errno.
ssize_t clinger_netlink_send(int fd, const void *buffer, size_t length);

/// Sets SO_LINGER on a socket; the fixture uses {1, 0} to reset connections on purpose.
int clinger_set_linger(int fd, int on, int seconds);

/// getxattr(2) (sys/xattr.h is not in Glibc's Swift overlay): the doctor reads `system.sockprotoname` of
/// `/proc/PID/fd/N` to learn a socket's protocol. Returns the value's length or -1 with errno.
ssize_t clinger_getxattr(const char *path, const char *name, void *value, size_t size);

#endif // __linux__
#endif // CLINGER_LINUX_H

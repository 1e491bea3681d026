#ifdef __linux__
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <sys/xattr.h>
#include "CLingerLinux.h"

int clinger_setns_net(int fd) {
    return setns(fd, CLONE_NEWNET);
}

int clinger_netlink_bind(int fd) {
    struct sockaddr_nl address;
    memset(&address, 0, sizeof(address));
    address.nl_family = AF_NETLINK;
    return bind(fd, (struct sockaddr *)&address, sizeof(address));
}

ssize_t clinger_netlink_send(int fd, const void *buffer, size_t length) {
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof(kernel));
    kernel.nl_family = AF_NETLINK;
    return sendto(fd, buffer, length, 0, (struct sockaddr *)&kernel, sizeof(kernel));
}

int clinger_set_linger(int fd, int on, int seconds) {
    struct linger value = { .l_onoff = on, .l_linger = seconds };
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, sizeof(value));
}
ssize_t clinger_getxattr(const char *path, const char *name, void *value, size_t size) {
    return getxattr(path, name, value, size);
}
#endif

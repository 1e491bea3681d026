/* The C ceiling for bench-link: the same job as `linger send FILE` -> `linger serve --sink discard`, in
 * plain C over one loopback socket. Lines become frames `u32 len | u8 3 | u64 seq | bytes`, written in
 * 1 MiB batches; the server parses every frame, keeps the highest sequence, and answers each read with an
 * 8-byte cumulative ack; the client exits when the ack for the last line arrives. No dedupe state, no
 * reconnect: the fastest honest version of the protocol.
 *
 *   c-ceiling server PORT          c-ceiling client PORT FILE
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF (1 << 20)

static void die(const char *what) { perror(what); exit(1); }

static uint64_t be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static int server(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (void *)&a, sizeof a) || listen(l, 16)) die("listen");
    printf("ready\n");
    fflush(stdout);
    int c = accept(l, 0, 0);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned char *buf = malloc(BUF * 2);
    size_t have = 0;
    uint64_t highest = 0;
    for (;;) {
        ssize_t n = read(c, buf + have, BUF * 2 - have);
        if (n <= 0) break;
        have += n;
        size_t off = 0;
        while (have - off >= 4) {
            uint32_t len = ntohl(*(uint32_t *)(buf + off));
            if (have - off < 4 + (size_t)len) break;
            if (buf[off + 4] == 3) {
                uint64_t seq = be64(buf + off + 5);
                if (seq == highest + 1) highest = seq;
            }
            off += 4 + len;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        uint64_t ack = highest;
        if (write(c, &ack, 8) != 8) break;
    }
    close(c);
    close(l);
    return 0;
}

static int client(int port, const char *path) {
    int f = open(path, O_RDONLY);
    struct stat st;
    if (f < 0 || fstat(f, &st)) die(path);
    const unsigned char *data = mmap(0, st.st_size, PROT_READ, MAP_PRIVATE, f, 0);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (void *)&a, sizeof a)) die("connect");
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned char *out = malloc(BUF + 65536);
    uint64_t seq = 0, acked = 0;
    size_t pos = 0, used = 0;
    while (pos < (size_t)st.st_size) {
        const unsigned char *nl = memchr(data + pos, '\n', st.st_size - pos);
        size_t end = nl ? (size_t)(nl - data) : (size_t)st.st_size, len = end - pos;
        uint32_t flen = htonl(9 + len);
        memcpy(out + used, &flen, 4);
        out[used + 4] = 3;
        seq++;
        for (int i = 0; i < 8; i++) out[used + 5 + i] = (unsigned char)(seq >> (56 - 8 * i));
        memcpy(out + used + 13, data + pos, len);
        used += 13 + len;
        pos = end + 1;
        if (used >= BUF || pos >= (size_t)st.st_size) {
            size_t w = 0;
            while (w < used) {
                ssize_t n = write(s, out + w, used - w);
                if (n < 0) die("write");
                w += n;
                uint64_t ack;  /* drain acks without blocking, so neither side stalls */
                while (recv(s, &ack, 8, MSG_DONTWAIT) == 8) acked = ack;
            }
            used = 0;
        }
    }
    while (acked < seq) {
        uint64_t ack;
        if (read(s, &ack, 8) != 8) die("ack");
        acked = ack;
    }
    printf("%llu\n", (unsigned long long)seq);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "client")) return client(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: c-ceiling server PORT | client PORT FILE\n");
    return 2;
}

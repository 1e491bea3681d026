/* ZeroMQ PUSH -> PULL over loopback TCP, the same lines as bench-link, no acknowledgements (ZeroMQ has
 * none): the receiver counts messages and exits after the last one.
 *
 *   zmq-pushpull pull PORT COUNT          zmq-pushpull push PORT FILE
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <zmq.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: zmq-pushpull pull PORT COUNT | push PORT FILE\n"); return 2; }
    void *ctx = zmq_ctx_new();
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%s", argv[2]);
    if (!strcmp(argv[1], "pull")) {
        void *s = zmq_socket(ctx, ZMQ_PULL);
        int hwm = 1000000;
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_bind(s, endpoint)) { perror("bind"); return 1; }
        printf("ready\n");
        fflush(stdout);
        long count = atol(argv[3]);
        char buf[65536];
        for (long i = 0; i < count; i++) zmq_recv(s, buf, sizeof buf, 0);
        printf("%ld\n", count);
        zmq_close(s);
    } else {
        int f = open(argv[3], O_RDONLY);
        struct stat st;
        fstat(f, &st);
        const char *data = mmap(0, st.st_size, PROT_READ, MAP_PRIVATE, f, 0);
        void *s = zmq_socket(ctx, ZMQ_PUSH);
        int hwm = 1000000, linger = -1;
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(s, endpoint)) { perror("connect"); return 1; }
        size_t pos = 0;
        while (pos < (size_t)st.st_size) {
            const char *nl = memchr(data + pos, '\n', st.st_size - pos);
            size_t end = nl ? (size_t)(nl - data) : (size_t)st.st_size;
            zmq_send(s, data + pos, end - pos, 0);
            pos = end + 1;
        }
        zmq_close(s);
    }
    zmq_ctx_term(ctx);
    return 0;
}

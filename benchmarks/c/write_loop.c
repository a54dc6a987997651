/* write_loop CALLS: writes one byte to /dev/null CALLS times (after 1000 warm-up writes) and prints
 * "ns_per_call=X", its loop timed inside the program as foo_loop does: what each write() costs the program,
 * whatever a tracer does outside it. The trace lines and stalled-ring benchmarks run it bare and traced. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 1000

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long calls;
    if (argc < 2 || (calls = atol(argv[1])) <= 0) {
        fprintf(stderr, "usage: %s CALLS\n", argv[0]);
        return 2;
    }
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) {
        perror("/dev/null");
        return 1;
    }
    for (int i = 0; i < WARMUP; i++)
        if (write(fd, "x", 1) != 1) return 1;
    double start = now_ns();
    for (long i = 0; i < calls; i++)
        if (write(fd, "x", 1) != 1) return 1;
    double end = now_ns();
    printf("ns_per_call=%.3f\n", (end - start) / (double)calls);
    return 0;
}

/* write_wait CALLS: waits for SIGUSR1 (so that a tracer can attach first), then writes one byte to /dev/null
 * CALLS times and prints "ns_per_call=X", timed inside the program: the per-call cost of a write() attached to
 * (mrhooker trace -p) against launched traced and bare. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
    (void)sig;
    go = 1;
}

int main(int argc, char **argv)
{
    long calls;
    if (argc < 2 || (calls = atol(argv[1])) <= 0) {
        fprintf(stderr, "usage: %s CALLS\n", argv[0]);
        return 2;
    }
    signal(SIGUSR1, on_usr1);
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) {
        perror("/dev/null");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    while (!go) usleep(1000);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < calls; i++)
        if (write(fd, "x", 1) != 1) return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("ns_per_call=%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / calls);
    return 0;
}

/* foo_loop CALLS [main|thread] [SLEEP_MS]: calls foo() from libbench.so CALLS times in a tight loop and prints
 * "ns_per_call=X", timed inside the program with clock_gettime, so that the start-up of whatever hooks it
 * (Python, a Frida agent, ltrace) is not counted.
 *
 *   thread     run the loop on a new thread instead of the main thread
 *   SLEEP_MS   sleep first (a spawned Frida script gets time to attach; harmless otherwise)
 *
 * It also prints "vm_hwm_kb=N", its peak resident memory.
 *
 * WARMUP calls on the same thread come before the timed loop: the first hooked call starts Python (mrhooker)
 * and gives the thread its Python thread state. The program ends with exit(), which the Frida script hooks.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 1000

int foo(int x);

static long calls;
static volatile int sink;   /* the results go somewhere, so the calls are made */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *timed_loop(void *result)
{
    for (int i = 0; i < WARMUP; i++) sink += foo(i);
    double start = now_ns();
    for (long i = 0; i < calls; i++) sink += foo((int)i);
    double end = now_ns();
    *(double *)result = (end - start) / (double)calls;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (calls = atol(argv[1])) <= 0) {
        fprintf(stderr, "usage: %s CALLS [main|thread] [SLEEP_MS]\n", argv[0]);
        return 2;
    }
    int on_thread = argc > 2 && strcmp(argv[2], "thread") == 0;
    int sleep_ms = argc > 3 ? atoi(argv[3]) : 0;
    if (sleep_ms > 0) usleep(sleep_ms * 1000);

    double ns_per_call = 0;
    if (on_thread) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, timed_loop, &ns_per_call) != 0) {
            perror("pthread_create");
            return 1;
        }
        pthread_join(thread, NULL);
    } else {
        timed_loop(&ns_per_call);
    }
    printf("ns_per_call=%.3f\n", ns_per_call);
    /* The peak resident memory, for the memory figure (what starting the hooks costs). */
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "VmHWM:", 6) == 0) printf("vm_hwm_kb=%ld\n", atol(line + 6));
    if (status) fclose(status);
    fflush(stdout);
    exit(0);
}

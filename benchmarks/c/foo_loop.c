/* foo_loop CALLS [main|thread|callgrind] [SLEEP_MS]: calls foo() from libbench.so CALLS times in a tight loop and
 * prints "ns_per_call=X", timed inside the program with clock_gettime, so that the start-up of whatever hooks it
 * (Python, a Frida agent, ltrace) is not counted.
 *
 *   thread     run the loop on a new thread instead of the main thread
 *   callgrind  under valgrind's callgrind (--collect-atstart=no): two loops on the main thread, CALLS / 10 calls
 *              then CALLS calls, each counted alone and dumped (parts 1 and 2 of the callgrind output); their
 *              difference over the difference of calls is the cost of a call, with neither the start-up nor the
 *              loop's own fixed cost in it, and within one process (a Python hook's cost a call depends on its
 *              interpreter's hash seed, which is drawn per process)
 *   SLEEP_MS   sleep first (a spawned Frida script gets time to attach; harmless otherwise)
 *
 * It also prints "vm_hwm_kb=N", its peak resident memory.
 *
 * With FOO_LOOP_DIRECT=1 in its environment the loops call foo through a pointer dlsym gave from libbench.so
 * itself, so no PLT is involved: the calls reach a hook only at foo's own entry (`trace --entry`).
 *
 * WARMUP calls on the same thread come before the timed loop: the first hooked call starts Python (mrhooker)
 * and gives the thread its Python thread state. The program ends with exit(), which the Frida script hooks.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND   /* no valgrind headers: the callgrind mode runs its loops uncounted (the harness says so) */
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(what)
#endif

#define WARMUP 1000

int foo(int x);

static long calls;
static int (*direct_foo)(int);   /* FOO_LOOP_DIRECT: libbench.so's own foo, called through this pointer */

/* The loops call foo by name (through the PLT, where ltrace's breakpoints are) unless FOO_LOOP_DIRECT. */
#define FOO(x) (direct_foo ? direct_foo(x) : foo(x))
static volatile int sink;   /* the results go somewhere, so the calls are made */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* One loop counted by callgrind alone, then dumped as a part of its own. */
static void counted_loop(long n, const char *what)
{
    CALLGRIND_TOGGLE_COLLECT;
    if (direct_foo)
        for (long i = 0; i < n; i++) sink += direct_foo((int)i);
    else
        for (long i = 0; i < n; i++) sink += foo((int)i);
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(what);
}

static void *timed_loop(void *result)
{
    for (int i = 0; i < WARMUP; i++) sink += FOO(i);
    double start = now_ns(), end;
    if (direct_foo) {
        for (long i = 0; i < calls; i++) sink += direct_foo((int)i);
    } else {
        for (long i = 0; i < calls; i++) sink += foo((int)i);
    }
    end = now_ns();
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
    if (getenv("FOO_LOOP_DIRECT")) {
        void *lib = dlopen("libbench.so", RTLD_NOW | RTLD_NOLOAD);
        direct_foo = lib ? (int (*)(int))dlsym(lib, "foo") : NULL;
        if (!direct_foo) {
            fprintf(stderr, "FOO_LOOP_DIRECT: no foo in libbench.so\n");
            return 2;
        }
    }
    if (argc > 2 && strcmp(argv[2], "callgrind") == 0) {
        for (int i = 0; i < WARMUP; i++) sink += FOO(i);
        counted_loop(calls / 10, "short loop");
        counted_loop(calls, "long loop");
        exit(0);
    }
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

/* The floor: a hand-written C LD_PRELOAD wrapper of foo(), the original looked up once with dlsym(RTLD_NEXT). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>

static int (*real_foo)(int);

int foo(int x)
{
    if (!real_foo) real_foo = (int (*)(int))dlsym(RTLD_NEXT, "foo");
    return real_foo(x);
}

/* Says it is loaded, so the harness knows the loop ran through it. */
__attribute__((constructor)) static void announce(void)
{
    static const char msg[] = "c_wrapper_loaded\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
}

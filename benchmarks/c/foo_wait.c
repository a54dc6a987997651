/* foo_wait: calls foo() from libbench.so once (under .py or .pyx hooks, Python starts in the process), prints
 * "ready PID", and waits until its stdin is closed: the memory benchmark reads /proc/PID/smaps meanwhile. */
#include <stdio.h>
#include <unistd.h>

int foo(int x);

int main(void)
{
    volatile int sink = foo(1);
    (void)sink;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0)
        ;
    return 0;
}

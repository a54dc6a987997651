/* Library functions strace can't see, for the ltrace (and header) part of tests/test_strace_agreement.py. */
#define _GNU_SOURCE
#include <dirent.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(void)
{
    FILE *f = fopen("lf", "w");
    fclose(f);
    fopen("missing", "r");
    f = fopen("lf", "r+e");
    fclose(f);
    getenv("MRHOOKER_STRACEDIFF_UNSET");
    getenv("MRHOOKER_STRACEDIFF");
    setenv("MRHOOKER_STRACEDIFF", "a\tb", 1);
    opendir("missing");
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *res;
    getaddrinfo("not-a-number", NULL, &hints, &res);             /* EAI_NONAME */
    if (getaddrinfo("127.0.0.1", "80", &hints, &res) == 0)       /* 0 */
        freeaddrinfo(res);
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_socktype = SOCK_DGRAM;
    getaddrinfo("127.0.0.1", "no-such-service-xyz", &hints, &res);   /* EAI_SERVICE */
    hints.ai_family = 12345;
    getaddrinfo("127.0.0.1", NULL, &hints, &res);                /* EAI_FAMILY */
    return 0;
}

/* The C part of the strace agreement corpus (tests/test_strace_agreement.py): libc wrappers that map one to one
 * onto system calls, called with tricky arguments, so that `strace -f` and `mrhooker trace -f` of the same run
 * can be compared field by field.
 *
 * Usage: strace_corpus PORT. The program works in its current directory (a fresh one), is deterministic apart
 * from addresses, pids and clocks, and marks each section with access("=NAME", F_OK), which both tracers see
 * (it fails with ENOENT), so that the test can say which section a disagreement is in. It exits with 5.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <linux/capability.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>

extern char **environ;
static int port;

static void section(const char *name)
{
    char marker[64];
    snprintf(marker, sizeof marker, "=%s", name);
    access(marker, F_OK);
}

static void files(void)
{
    section("open");
    int fd = open("f", O_WRONLY | O_CREAT | O_SYNC, 0644);
    write(fd, "\200\0011A\n\0007", 7);
    close(fd);
    fd = open("f", O_WRONLY | O_APPEND | O_DSYNC | O_NONBLOCK | O_NOCTTY);
    close(fd);
    fd = open("f", O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOATIME | O_ASYNC);
    close(fd);
    fd = open(".", O_TMPFILE | O_RDWR, 0600);
    close(fd);
    fd = open("f", O_RDONLY | 0100000);   /* the kernel's O_LARGEFILE bit (0 in x86_64's userspace headers) */
    close(fd);
    fd = open("t", O_WRONLY | O_CREAT | O_DIRECT | O_TRUNC, 0600);
    close(fd);
    int dfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    open("f", O_CREAT | O_EXCL | O_WRONLY, 0600);       /* EEXIST */
    open("missing", O_RDONLY);                          /* ENOENT */
    open("f", O_RDONLY | O_DIRECTORY);                  /* ENOTDIR */
    fd = openat(dfd, "f", O_RDONLY);
    close(fd);
    fd = openat(AT_FDCWD, "f", O_RDONLY | O_CLOEXEC);
    close(fd);
    openat(dfd, "missing", O_RDWR | O_CREAT | O_EXCL | O_DIRECTORY, 0700);   /* EINVAL */
    fd = creat("g", 0640);
    close(fd);
    fd = open64("f", O_RDONLY);
    close(fd);
    close(dfd);
    close(99);                                          /* EBADF */
}

static void escapes(void)
{
    section("escape");
    char buf[128];
    int fd = open("e", O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(fd, "\200\0011A\n\0007", 7);                 /* an octal escape before a digit */
    write(fd, "tab\there\r\v\f\"q'\\b\177\377\0z", 20);
    write(fd, "\033[0m\a\b?", 7);
    write(fd, "0123456789abcdefghijklmnopqrstuvwxyz", 36);   /* cut at -s 32 */
    write(fd, "", 0);
    write(fd, "\0\0\0\0", 4);
    write(fd, "caf\303\251 \342\202\254", 10);         /* UTF-8 */
    lseek(fd, 0, SEEK_SET);
    read(fd, buf, 32);
    read(fd, buf, sizeof buf);
    read(fd, buf, sizeof buf);                          /* 0: the end */
    read(-1, buf, 1);                                   /* EBADF */
    write(-1, (void *)8, 5);                            /* EBADF: unreadable, so its address (not "") */
    write(fd, (void *)8, 5);                            /* EFAULT: the address */
    open((char *)8, O_RDONLY);                          /* EFAULT: the address */
    close(fd);
}

static void stats(void)
{
    section("stat");
    struct stat st;
    struct statx stx;
    int fd = open("f", O_RDONLY);
    symlink("f", "l");
    stat("f", &st);
    lstat("l", &st);
    fstat(fd, &st);
    fstatat(AT_FDCWD, "l", &st, AT_SYMLINK_NOFOLLOW);
    fstatat(fd, "", &st, AT_EMPTY_PATH);
    stat("missing", &st);
    mkdir("d", 0755);
    stat("d", &st);
    statx(AT_FDCWD, "f", AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &stx);
    statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_SIZE | STATX_MODE, &stx);
    statx(AT_FDCWD, "l", AT_STATX_FORCE_SYNC, STATX_TYPE, &stx);
    statx(AT_FDCWD, "missing", 0, STATX_ALL, &stx);
    statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &stx);   /* stx_attributes=STATX_ATTR_MOUNT_ROOT */
    statx(AT_FDCWD, "missing", 0, 0x40000000, &stx);    /* ENOENT: 0x40000000, then STATX_??? in a comment */
    fstatat(AT_FDCWD, "f", &st, 0x10000000);            /* EINVAL: 0x10000000, then AT_??? in a comment */
    close(fd);
    struct statfs sfs;   /* file systems whose numbers stay put between the two runs */
    statfs("/proc", &sfs);                              /* {f_type=PROC_SUPER_MAGIC, ..., f_fsid={val=[0x15, 0]}} */
    statfs("/sys", &sfs);
    statfs("missing", &sfs);                            /* ENOENT: its address */
    fd = open("/proc", O_RDONLY | O_DIRECTORY);
    fstatfs(fd, &sfs);
    close(fd);

    section("access");
    access("f", R_OK | W_OK);
    access("f", X_OK);                                  /* EACCES, even for root: no x bit */
    access("missing", F_OK);
    faccessat(AT_FDCWD, "f", R_OK, AT_EACCESS);
    faccessat(AT_FDCWD, "l", W_OK | X_OK, AT_SYMLINK_NOFOLLOW);
    access("f", 0x10);                                  /* EINVAL: 0x10, then ?_OK in a comment: no bit has a name */
    faccessat(AT_FDCWD, "f", F_OK, 0x4);                /* EINVAL: 0x4, then AT_??? in a comment */

    section("paths");
    char buf[256];
    mkdir("d", 01777);                                  /* EEXIST */
    mkdir("d2", 0700);
    chmod("g", 04755);
    chmod("g", 0);
    chmod("missing", 0644);
    readlink("l", buf, sizeof buf);
    readlink("l", buf, 0);                              /* EINVAL */
    readlink("f", buf, sizeof buf);                     /* EINVAL: no link */
    getcwd(buf, sizeof buf);
    getcwd(buf, 2);                                     /* ERANGE */
    struct timespec times[2] = {{946684800, 0}, {946684800, 500000000}};
    utimensat(AT_FDCWD, "g", times, 0);                 /* strace: the date with .500000000 */
    times[0] = (struct timespec){0, 0};
    times[1] = (struct timespec){1, 2};
    utimensat(AT_FDCWD, "g", times, AT_SYMLINK_NOFOLLOW);   /* {0, 0}: no date; .000000002 */
    times[0].tv_nsec = 1000000000;
    utimensat(AT_FDCWD, "g", times, 0);                 /* EINVAL: no date for a tv_nsec no time has */
    times[0].tv_nsec = UTIME_OMIT;
    futimens(99, times);                                /* EBADF */
    renameat2(AT_FDCWD, "g", AT_FDCWD, "f", RENAME_NOREPLACE);   /* EEXIST */
    renameat2(AT_FDCWD, "g", AT_FDCWD, "f", RENAME_EXCHANGE);
    renameat2(AT_FDCWD, "f", AT_FDCWD, "g", RENAME_EXCHANGE);    /* back */
    renameat2(AT_FDCWD, "g", AT_FDCWD, "f", 0x10);      /* EINVAL: 0x10, then RENAME_?? in a comment */
    rename("g", "h");
    rename("missing", "x");
    unlink("h");
    unlink("missing");
    rmdir("d");
    rmdir("d2");
    rmdir("f");                                         /* ENOTDIR */

    section("lseek");
    fd = open("f", O_RDONLY);
    lseek(fd, 3, SEEK_SET);
    lseek(fd, -2, SEEK_END);
    lseek(fd, 1, SEEK_CUR);
    lseek(fd, 0, SEEK_DATA);
    lseek(fd, 0, SEEK_HOLE);
    lseek(fd, 0, 7);                                    /* EINVAL */
    lseek(fd, -100, SEEK_SET);                          /* EINVAL */
    close(fd);
}

static void descriptors(void)
{
    section("pipe");
    int p[2], q[2];
    char buf[64];
    pipe2(p, O_CLOEXEC | O_NONBLOCK);
    pipe(q);
    pipe2(q, O_DIRECT);
    dup3(p[0], 20, O_CLOEXEC);
    dup2(p[1], 21);
    dup(p[0]);
    dup3(20, 20, 0);                                    /* EINVAL */
    dup3(20, 22, 0x4);                                  /* EINVAL: 0x4, then O_??? in a comment */
    pipe2(q, 0x4);                                      /* EINVAL */

    section("fcntl");
    int fd = open("f", O_RDWR);
    fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, O_NONBLOCK | O_APPEND);
    fcntl(fd, F_GETFD);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFD, 0);
    fcntl(fd, F_DUPFD, 30);
    fcntl(fd, F_DUPFD_CLOEXEC, 31);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    fcntl(fd, F_SETLK, &fl);
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_CUR;
    fl.l_start = 2;
    fcntl(fd, F_GETLK, &fl);
    fl.l_type = F_UNLCK;
    fcntl(fd, F_SETLKW, &fl);
    struct flock ofd = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 2};
    fcntl(fd, F_OFD_SETLK, &ofd);
    fcntl(p[0], F_GETPIPE_SZ);
    fcntl(p[0], F_SETPIPE_SZ, 65536);
    fcntl(fd, F_GETOWN);
    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE);               /* EINVAL: not a memfd */
    fcntl(p[0], F_GETFL);                               /* 0 (flags O_RDONLY) */
    int sealed = memfd_create("sealed", MFD_ALLOW_SEALING);
    fcntl(sealed, F_GET_SEALS);                         /* 0 */
    fcntl(sealed, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK);
    fcntl(sealed, F_GET_SEALS);                         /* 0x6 (seals F_SEAL_SHRINK|F_SEAL_GROW) */
    close(sealed);
    fcntl(99, F_GETFD);                                 /* EBADF */
    fcntl(99, F_SETFD, 0x8);                            /* EBADF: 0x8, then FD_??? in a comment */
    fcntl(99, F_ADD_SEALS, 0x100);                      /* EBADF: 0x100, then F_SEAL_??? in a comment */
    fcntl64(fd, F_GETFL);
    fcntl64(fd, F_SETLK, &fl);
    flock(fd, LOCK_EX | LOCK_NB);
    flock(fd, LOCK_UN);
    flock(fd, 0x100);                                   /* EINVAL: 0x100, then LOCK_??? in a comment */

    section("ioctl");
    int n = 0, one = 1;
    write(p[1], "hello", 5);
    ioctl(p[0], FIONREAD, &n);
    ioctl(p[0], TCGETS, buf);                           /* ENOTTY */
    ioctl(fd, FIONBIO, &one);
    ioctl(fd, FIOCLEX);
    ioctl(fd, 0x12345678, 0);                           /* ENOTTY: unknown */
    int pty = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    struct winsize ws = {24, 80, 0, 0};
    ioctl(pty, TIOCSWINSZ, &ws);                        /* {ws_row=24, ws_col=80, ws_xpixel=0, ws_ypixel=0} */
    ioctl(pty, TIOCGWINSZ, &ws);
    ioctl(fd, TIOCGWINSZ, &ws);                         /* ENOTTY: its address */
    close(pty);
    read(p[0], buf, sizeof buf);
    read(p[0], buf, sizeof buf);                        /* EAGAIN */
    close(fd);

    section("poll");
    struct pollfd pf[2] = {{.fd = p[0], .events = POLLIN | POLLPRI}, {.fd = p[1], .events = POLLOUT}};
    poll(pf, 2, 0);
    poll(pf, 1, 5);                                     /* timeout */
    poll(NULL, 0, 1);
    struct pollfd odd = {.fd = p[0], .events = 0x4000};
    poll(&odd, 1, 0);                                   /* events=0x4000, then POLL??? in a comment */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    struct timespec ts = {0, 1000};
    ppoll(pf, 2, &ts, NULL);
    ppoll(pf, 1, &ts, &mask);
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(p[1], &w);
    struct timeval tv = {0, 1000};
    select(p[1] + 1, &r, &w, NULL, &tv);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv.tv_usec = 500;
    select(p[0] + 1, &r, NULL, NULL, &tv);              /* timeout */
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    pselect(p[0] + 1, &r, NULL, NULL, &ts, &mask);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);

    section("events");
    int ev = eventfd(3, EFD_NONBLOCK);
    int ev2 = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int ep2 = epoll_create1(0);
    epoll_create1(0x4);                                 /* EINVAL: 0x4, then EPOLL_??? in a comment */
    eventfd(0, 0x4);                                    /* EINVAL: 0x4, then EFD_??? in a comment */
    epoll_ctl(ep, EPOLL_CTL_DEL, ev, NULL);             /* ENOENT: not added */
    epoll_ctl(ep, 77, ev, NULL);                        /* EFAULT: an unknown op */
    struct epoll_event ee = {.events = EPOLLIN | EPOLLET, .data.u64 = 0x1234567890ULL}, got[4];
    epoll_ctl(ep, EPOLL_CTL_ADD, ev, &ee);
    ee.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI;
    ee.data.fd = ev;
    epoll_ctl(ep, EPOLL_CTL_MOD, ev, &ee);
    ee.events = EPOLLOUT | EPOLLEXCLUSIVE | 0x01000000;   /* EINVAL: an unknown bit */
    epoll_ctl(ep, EPOLL_CTL_ADD, ev2, &ee);
    ee.events = 0;
    epoll_ctl(ep, EPOLL_CTL_ADD, ev2, &ee);
    epoll_wait(ep, got, 4, 0);                          /* ev is readable and writable */
    epoll_ctl(ep, EPOLL_CTL_DEL, ev, &ee);              /* strace: its address */
    epoll_wait(ep2, got, 4, 0);                         /* none: [] */
    epoll_wait(99, got, 4, 0);                          /* EBADF: its address */
    struct rlimit rl = {1024, 8192};
    setrlimit(RLIMIT_CORE, &rl);                        /* strace: {rlim_cur=1024, rlim_max=8*1024} */
    getrlimit(RLIMIT_CORE, &rl);
    getrlimit(RLIMIT_DATA, &rl);                        /* RLIM64_INFINITY, or a number */
    getrlimit(99, &rl);                                 /* EINVAL: an unknown resource */
    close(ev);
    close(ev2);
    close(ep);
    close(ep2);
}

static void vectors(void)
{
    section("vectors");
    int v[2];
    pipe(v);
    char big[100], a[4], b[200];
    memset(big, 'a', sizeof big);
    struct iovec out[3] = {{"hel\nlo", 6}, {big, sizeof big}, {NULL, 0}}, many[40], in[2] = {{a, 4}, {b, sizeof b}};
    for (int i = 0; i < 40; i++) many[i] = (struct iovec){"z", 1};
    writev(v[1], out, 3);
    writev(v[1], many, 40);                             /* strace: 32 elements (-s), then ... */
    readv(v[0], in, 2);                                 /* 146 bytes, over both */
    writev(v[1], out, 1);
    readv(v[0], in, 2);                                 /* 6: "hel\n", "lo" */
    readv(99, in, 2);                                   /* EBADF: the buffers' addresses */
    struct iovec unwritable[1] = {{(void *)16, 4}};
    int hosts = open("/etc/hosts", O_RDONLY);
    readv(hosts, unwritable, 1);                        /* EFAULT: the iovecs still shown, their addresses */
    close(hosts);
    preadv(v[0], in, 2, 0);                             /* ESPIPE */
    pwritev(v[1], out, 2, 0);                           /* ESPIPE: the data is still shown */
    writev(v[1], (struct iovec *)8, 2);                 /* EFAULT: the address */
    struct iovec bad[2] = {{"hello", 5}, {(void *)16, 5}};
    int f = open("vec", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    writev(f, bad, 2);                                  /* 5 (a file takes what it can): the rest is an address */
    close(f);
    f = open("vec", O_RDONLY);
    int to = open("copy", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    off_t off = 1;
    sendfile(to, f, &off, 3);                           /* [1] => [4] */
    sendfile(to, f, &off, 0);                           /* [4]: nothing moved */
    sendfile(99, f, &off, 3);                           /* EBADF: [4] */
    sendfile(to, f, NULL, 2);
    sendfile(to, f, (off_t *)8, 3);                     /* EFAULT: the address */
    off = -5;
    sendfile(to, f, &off, 3);                           /* EINVAL: strace shows sendfile's offset unsigned */
    loff_t in_off = 0, out_off = 10;
    copy_file_range(f, &in_off, to, &out_off, 2, 0);    /* [0], [10]: as they were passed */
    copy_file_range(f, NULL, to, NULL, 1, 0);
    splice(f, &in_off, v[1], NULL, 3, SPLICE_F_MOVE | SPLICE_F_MORE);
    splice(v[0], NULL, to, &out_off, 3, 0);
    splice(v[0], NULL, to, NULL, 3, 0x10 | SPLICE_F_NONBLOCK);   /* EAGAIN: SPLICE_F_NONBLOCK|0x10 */
    close(to);
    close(f);
    close(v[0]);
    close(v[1]);
}

static void memory(void)
{
    section("mmap");
    int fd = open("f", O_RDONLY);
    char *a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mmap(a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);   /* EEXIST */
    char *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *k = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_GROWSDOWN |
                   MAP_NORESERVE, -1, 0);
    char *m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    mmap(NULL, 4096, PROT_READ, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);   /* EOPNOTSUPP */
    mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);         /* EINVAL */
    mprotect(a, 4096, PROT_NONE);
    mprotect(a, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
    mprotect(a, 4096, PROT_READ | PROT_GROWSUP);                          /* EINVAL */
    mprotect(a, 4096, 0x10);                                              /* EINVAL: 0x10, then PROT_??? in a comment */
    madvise(a, 4096, MADV_DONTNEED);
    madvise(a, 4096, MADV_HUGEPAGE);
    madvise(a, 4096, 999);                                                /* EINVAL: 0x3e7, MADV_??? in a comment */
    msync(s, 4096, MS_SYNC | MS_INVALIDATE);
    msync(s, 4096, MS_SYNC | MS_ASYNC);                                   /* EINVAL */
    msync(s, 4096, 0x10);                                                 /* EINVAL: 0x10, then MS_??? in a comment */
    mlock2(a, 4096, MLOCK_ONFAULT | 0x2);                                 /* EINVAL */
    mlock2(a, 4096, 0x2);                                                 /* EINVAL: 0x2, then MLOCK_??? in a comment */
    char *v = mmap(NULL, 40 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char vec[40];
    v[0] = v[2 * 4096] = 1;
    mincore(v, 4 * 4096 - 5, vec);                                        /* [1, 0, 1, 0]: a page begun counts */
    mincore(v, 40 * 4096, vec);                                           /* 32 elements, then ... */
    mincore(v, 0, vec);                                                   /* [] */
    mincore(v + 1, 4096, vec);                                            /* EINVAL: its address */
    munmap(v, 40 * 4096);
    munmap(a, 8192);
    munmap(s, 4096);
    munmap(k, 65536);
    munmap(m, 4096);
    munmap((void *)1, 4096);                                              /* EINVAL */
    close(fd);
}

static void network(void)
{
    section("inet");
    char buf[64];
    int one = 1, size = 65536, v = 0;
    socklen_t len = sizeof v;
    struct linger lg = {1, 5};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &len);
    bind(s, (struct sockaddr *)&sin, sizeof sin);
    listen(s, 8);
    int c = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connect(c, (struct sockaddr *)&sin, sizeof sin);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    getpeername(c, (struct sockaddr *)&peer, &plen);
    len = sizeof v;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &len);
    len = sizeof v;
    getsockopt(c, SOL_SOCKET, SO_TYPE, &v, &len);
    accept4(s, NULL, NULL, 0x4);                        /* EINVAL: 0x4, then SOCK_??? in a comment */
    int a = accept4(s, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    send(c, "ping\n", 5, MSG_NOSIGNAL);
    recv(a, buf, sizeof buf, 0);
    recv(a, buf, sizeof buf, MSG_DONTWAIT);             /* EAGAIN */
    shutdown(c, SHUT_WR);
    close(a);
    close(c);
    close(s);
    struct sockaddr_in closed = {.sin_family = AF_INET, .sin_port = htons(9)};
    closed.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&closed, sizeof closed);   /* ECONNREFUSED */
    close(c);
    socket(12345, SOCK_STREAM, 0);                      /* EAFNOSUPPORT */
    c = socket(AF_INET, SOCK_DGRAM, 0);
    connect(c, (struct sockaddr *)&closed, 8);          /* EINVAL: shorter than a sockaddr_in: its sa_data */
    close(c);

    section("inet6");
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr_in6 from6;
    socklen_t flen = sizeof from6;
    int u = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    bind(u, (struct sockaddr *)&sin6, sizeof sin6);
    sendto(u, "dgram\0x", 7, MSG_DONTWAIT, (struct sockaddr *)&sin6, sizeof sin6);
    recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&from6, &flen);
    struct sockaddr_in6 local = {.sin6_family = AF_INET6, .sin6_port = htons(9), .sin6_scope_id = 1};
    local.sin6_addr.s6_addr[0] = 0xfe;
    local.sin6_addr.s6_addr[1] = 0x80;
    local.sin6_addr.s6_addr[15] = 1;
    connect(u, (struct sockaddr *)&local, sizeof local);   /* sin6_scope_id=if_nametoindex("lo") */
    connect(u, (struct sockaddr *)&local, 24);          /* EINVAL: no sin6_scope_id at all */
    connect(u, (struct sockaddr *)&local, 3);           /* EINVAL: too short for its members: sa_data="\0" */
    struct sockaddr_in unspec = {.sin_family = AF_UNSPEC};
    connect(u, (struct sockaddr *)&unspec, sizeof unspec);   /* sa_data="\0\0..." */
    struct sockaddr_storage odd = {.ss_family = 12345};
    connect(u, (struct sockaddr *)&odd, 20);            /* EINVAL: 0x3039, then AF_??? in a comment */
    close(u);

    section("unix");
    struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = "sock"};
    struct sockaddr_un from;
    socklen_t ulen = sizeof from;
    int us = socket(AF_UNIX, SOCK_STREAM, 0);
    bind(us, (struct sockaddr *)&sun, offsetof(struct sockaddr_un, sun_path) + 5);
    listen(us, 1);
    int uc = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    connect(uc, (struct sockaddr *)&sun, sizeof sun);
    int ua = accept4(us, (struct sockaddr *)&from, &ulen, 0);
    close(ua);
    close(uc);
    close(us);
    unlink("sock");
    struct sockaddr_un abstract = {.sun_family = AF_UNIX};
    int alen = snprintf(abstract.sun_path + 1, sizeof abstract.sun_path - 1, "mrhooker-stracediff-%d", port);
    socklen_t abstract_len = offsetof(struct sockaddr_un, sun_path) + 1 + alen;
    int ab = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(ab, (struct sockaddr *)&abstract, abstract_len);
    int ad = socket(AF_UNIX, SOCK_DGRAM, 0);
    sendto(ad, "x", 1, 0, (struct sockaddr *)&abstract, abstract_len);
    ulen = sizeof from;
    recvfrom(ab, buf, sizeof buf, 0, (struct sockaddr *)&from, &ulen);
    close(ab);
    close(ad);
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
    close(sv[0]);
    close(sv[1]);
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl snl = {.nl_family = AF_NETLINK, .nl_groups = 5};
    bind(nl, (struct sockaddr *)&snl, sizeof snl);      /* {sa_family=AF_NETLINK, nl_pid=0, nl_groups=0x000005} */
    socklen_t nllen = sizeof snl;
    getsockname(nl, (struct sockaddr *)&snl, &nllen);   /* nl_pid: the process's */
    close(nl);
}

static void processes(void)
{
    section("wait");
    int st;
    siginfo_t si;
    pid_t c = fork();
    if (c == 0)
        _exit(3);
    waitpid(c, &st, 0);
    c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    waitpid(-1, &st, WNOHANG);                          /* 0: the child is still there */
    kill(c, SIGTERM);
    wait4(c, &st, 0, NULL);
    c = fork();
    if (c == 0) {
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    waitid(P_PID, c, &si, WEXITED);
    c = fork();
    if (c == 0)
        _exit(0);
    waitid(P_ALL, 0, &si, WEXITED | WNOWAIT);
    waitpid(c, NULL, 0);
    kill(c, 0);                                         /* ESRCH: reaped */
    waitpid(-1, &st, WNOHANG);                          /* ECHILD */
    waitpid(-1, NULL, 0x100);                           /* EINVAL: 0x100, then W??? in a comment */
    c = fork();
    if (c == 0)
        _exit(0);
    wait(&st);

    section("exec");
    c = fork();
    if (c == 0) {
        char *argv[] = {"sh", "-c", "exit 7", NULL};
        execve("/bin/sh", argv, environ);
        _exit(127);
    }
    waitpid(c, &st, 0);
    char *argv[] = {"missing", NULL};
    execve("/nonexistent/missing", argv, environ);    /* ENOENT */
    execve("/bin/true", (char **)8, environ);          /* EFAULT: argv's address */
}

static int handled;

static void handler(int sig)
{
    handled += sig;
}

static void signals(void)
{
    section("signal");
    struct sigaction sa = {.sa_handler = handler};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGRTMIN + 1, &sa, NULL);
    sigaction(SIGRTMAX, &sa, NULL);
    struct sigaction masked = {.sa_handler = SIG_IGN, .sa_flags = SA_RESTART | SA_NODEFER | SA_ONSTACK}, was;
    sigemptyset(&masked.sa_mask);
    sigaddset(&masked.sa_mask, SIGINT);
    sigaddset(&masked.sa_mask, SIGTERM);
    sigaction(SIGHUP, &masked, &was);                   /* {sa_handler=SIG_DFL, sa_mask=[], sa_flags=0} */
    sigaction(SIGHUP, NULL, &was);                      /* the old one as the kernel keeps it: SA_RESTORER */
    sigfillset(&masked.sa_mask);
    masked.sa_flags = 0x400;                            /* SA_UNSUPPORTED: a bit strace has no name for */
    sigaction(SIGHUP, &masked, NULL);
    sigaction(SIGKILL, &masked, NULL);                  /* EINVAL */
    sigaction(SIGHUP, NULL, NULL);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &set, &old);
    raise(SIGUSR1);
    raise(SIGRTMIN + 1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    sigfillset(&set);                                   /* glibc leaves out its own 32 and 33: ~[RTMIN RT_1] */
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigprocmask(SIG_BLOCK, NULL, &old);
    sigprocmask(99, &set, NULL);                        /* EINVAL */
    kill(getpid(), SIGUSR2);
    kill(getpid(), SIGRTMAX);
    kill(getpid(), 0);
    kill(getpid(), 99);                                 /* EINVAL */
    /* prctl: the option by name, its arguments by it (the unused ones are whatever the registers held) */
    char name[16];
    int value;
    prctl(PR_SET_NAME, "corpus");
    prctl(PR_GET_NAME, name);                           /* "corpus" */
    prctl(PR_SET_NAME, NULL);                           /* EFAULT: NULL */
    prctl(PR_GET_DUMPABLE);                             /* 1 (SUID_DUMP_USER) */
    prctl(PR_SET_DUMPABLE, 1);                          /* SUID_DUMP_USER */
    prctl(PR_SET_DUMPABLE, 7);                          /* EINVAL: 0x7 /\* SUID_DUMP_??? *\/ */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    prctl(PR_GET_PDEATHSIG, &value);                    /* [SIGTERM] */
    prctl(PR_SET_PDEATHSIG, 0);
    prctl(PR_GET_CHILD_SUBREAPER, &value);              /* [0] */
    prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0);             /* EINVAL: all five shown */
    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    prctl(PR_CAPBSET_READ, CAP_CHOWN);
    prctl(PR_CAPBSET_READ, 99);                         /* EINVAL: 0x63 /\* CAP_??? *\/ */
    prctl(PR_GET_TIMERSLACK);
    prctl(PR_SET_KEEPCAPS, 0);
    prctl(12345, 1, 2, 0, 4);                           /* EINVAL: 0x3039 /\* PR_??? *\/, 0x1, 0x2, 0, 0x4 */
    cpu_set_t cpus;
    sched_getaffinity(0, sizeof cpus, &cpus);           /* [0 1]: = 0, where the system call returns its mask's size */
    unsigned char cpu0[256] = {1};
    sched_setaffinity(0, sizeof cpu0, (cpu_set_t *)cpu0);   /* [0 ...]: strace shows 1024 CPUs of a set */
    sched_setaffinity(0, sizeof cpus, &cpus);           /* back as it was */
    sched_getaffinity(0, 4, &cpus);                     /* EINVAL (smaller than the kernel's mask): its address */
}

static void clocks(void)
{
    section("time");
    struct timespec ts, req = {0, 1000000};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    clock_gettime(CLOCK_MONOTONIC, &ts);                /* vDSO: no system call */
    clock_gettime(12345, &ts);                          /* EINVAL */
    clock_gettime((clockid_t)-5, &ts);                  /* EINVAL: shown in the type's 32 bits, 0xfffffffb */
    clock_gettime(10, &ts);                             /* EINVAL: CLOCK_SGI_CYCLE, a name glibc's headers dropped */
    nanosleep(&req, NULL);
    clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
    struct itimerval it, armed = {{1, 500}, {2, 0}}, off = {{0, 0}, {0, 0}};
    getitimer(99, &it);                                 /* EINVAL: 0x63, then ITIMER_??? in a comment */
    getitimer(ITIMER_REAL, &it);                        /* {it_interval={tv_sec=0, tv_usec=0}, it_value=...} */
    setitimer(ITIMER_VIRTUAL, &armed, &it);
    setitimer(ITIMER_VIRTUAL, &off, NULL);
    struct timespec past = {0, 1000};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL);   /* at once: that time has passed */
    clock_nanosleep(CLOCK_MONOTONIC, 0x2 | TIMER_ABSTIME, &past, NULL);   /* TIMER_ABSTIME|0x2 */
    getpriority(PRIO_PROCESS, 0);                       /* the nice value; the system call's 20 - nice */
    getpriority(99, 0);                                 /* EINVAL: 0x63, then PRIO_??? in a comment */
    setpriority(PRIO_PGRP, 0, 0);
    req.tv_nsec = 2000000000;
    nanosleep(&req, NULL);                              /* EINVAL */
}

/* sendmsg and recvmsg: a struct msghdr by its members, its name, iovecs and control messages. */
static void messages(void)
{
    section("msg");
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "ma"}, b = {.sun_family = AF_UNIX, .sun_path = "mb"};
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 3;
    int sa = socket(AF_UNIX, SOCK_DGRAM, 0), sb = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(sa, (struct sockaddr *)&a, alen);
    bind(sb, (struct sockaddr *)&b, alen);
    struct iovec out[3] = {{"hello", 5}, {"", 0}, {"world\n\t\"!", 9}};
    struct msghdr m = {.msg_name = &b, .msg_namelen = alen, .msg_iov = out, .msg_iovlen = 3};
    sendmsg(sa, &m, 0);                                 /* msg_name, three iovecs, no control */
    char buf[64], small[4];
    struct sockaddr_un from;
    struct iovec in[2] = {{small, sizeof small}, {buf, sizeof buf}};
    struct msghdr r = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = in, .msg_iovlen = 2};
    recvmsg(sb, &r, 0);                                 /* msg_namelen=110 => 5, the bytes over both iovecs */
    m.msg_name = NULL;
    m.msg_namelen = 0;
    sendmsg(sa, &m, MSG_DONTWAIT);                      /* ENOTCONN (a datagram socket with no address) */
    connect(sa, (struct sockaddr *)&b, alen);
    int fds[2] = {0, 1};
    union { struct cmsghdr align; char data[CMSG_SPACE(sizeof fds) + CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    m.msg_control = control.data;
    m.msg_controllen = sizeof control.data;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), fds, sizeof(int));
    m.msg_iovlen = 1;
    sendmsg(sa, &m, MSG_NOSIGNAL);                      /* two SCM_RIGHTS messages: [0, 1], [0] */
    char received[CMSG_SPACE(sizeof fds)];
    r.msg_namelen = sizeof from;
    r.msg_control = received;
    r.msg_controllen = sizeof received;
    r.msg_iovlen = 1;
    recvmsg(sb, &r, MSG_CMSG_CLOEXEC);                  /* the descriptors it got; MSG_CTRUNC */
    for (int i = 0; i < 2; i++) close(((int *)CMSG_DATA(CMSG_FIRSTHDR(&r)))[i]);
    c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = 1234;                               /* unknown: 0x4d2 /\* SOL_??? *\/, no data shown */
    c->cmsg_type = 77;
    m.msg_controllen = CMSG_SPACE(sizeof fds);
    sendmsg(sa, &m, 0);
    c->cmsg_level = SOL_SOCKET;                         /* SOL_SOCKET, 0x4d /\* SCM_??? *\/: EINVAL */
    sendmsg(sa, &m, 0);
    m.msg_controllen = 8;                               /* shorter than a cmsghdr: the address */
    sendmsg(sa, &m, 0);
    m.msg_control = NULL;
    m.msg_controllen = 0;
    m.msg_iov = (struct iovec *)8;
    sendmsg(sa, &m, 0);                                 /* EFAULT: msg_iov=0x8 */
    sendmsg(sa, (struct msghdr *)8, 0);                 /* EFAULT: the address */
    recvmsg(sb, &r, MSG_DONTWAIT);                      /* EAGAIN: {msg_namelen=110} */
    recvmsg(99, &r, 0);                                 /* EBADF */
    static struct iovec many[40];
    for (int i = 0; i < 40; i++) many[i] = (struct iovec){"x", 1};
    m.msg_iov = many;
    m.msg_iovlen = (size_t)1 << 40;
    sendmsg(sa, &m, 0);                                 /* EMSGSIZE: the first 32 iovecs, then ... */
    m.msg_iovlen = 0;
    c = (struct cmsghdr *)control.data;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(3);
    m.msg_control = control.data;
    m.msg_controllen = CMSG_SPACE(3);
    sendmsg(sa, &m, MSG_OOB);                           /* EOPNOTSUPP: msg_iov=[]; no whole descriptor: no data */
    close(sa);
    close(sb);
    unlink("ma");
    unlink("mb");
}

int main(int argc, char **argv)
{
    port = argc > 1 ? atoi(argv[1]) : 0;
    files();
    escapes();
    stats();
    descriptors();
    vectors();
    memory();
    network();
    messages();
    processes();
    signals();
    clocks();
    section("end");
    exit(5);
}

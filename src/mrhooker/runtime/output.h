/* output.h: the hook output file, as both sides of the runtime open and write it (each with its own libc).
 *
 * The destination is a path (a file given with -o, or the launcher's stderr as /proc/PID/fd/N) that each
 * process opens itself, with the identity (device:inode, MRHOOKER_OUTPUT_ID) it must have.
 * Hazards, and the idea for each:
 * - The target may close every descriptor (daemons do), dup2 over ours, or expect the lowest free number
 *   for its next open: a descriptor of ours at 3 would take its place.
 *   Idea: ours lives high (F_DUPFD_CLOEXEC from near the descriptor limit), is checked to still be that file
 *   before each write, and is opened again when it is not (never closing what is now the target's).
 * - The path may name something else by now (a reused pid in /proc).
 *   Idea: a descriptor whose identity is not the one wanted is closed and the output dropped, never
 *   written into someone else's file.
 * - Lines from threads and processes must not mix.
 *   Idea: callers hand over whole lines; each is one write() on a descriptor opened with O_APPEND.
 */
#ifndef MRHOOKER_OUTPUT_H
#define MRHOOKER_OUTPUT_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Where our descriptors start: near the soft limit, at most 1000, so programs that hand out the lowest free
 * number, or use select() (FD_SETSIZE 1024), never meet them. Under a small limit (`ulimit -n 32`), 4 below it:
 * at 3 they took the program's next number. */
static inline int mrh_output_fd_floor(void)
{
    struct rlimit rl;
    long top = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < top)
        top = (long)rl.rlim_cur;
    return top > 64 ? (int)top - 24 : top > 8 ? (int)top - 4 : 3;
}

static inline int mrh_output_identity(int fd, const char *id)
{
    struct stat st;
    if (fstat(fd, &st) < 0) return 0;
    if (!id || !*id) return 1;
    char *end;
    unsigned long long dev = strtoull(id, &end, 10);
    if (*end != ':') return 1;
    unsigned long long ino = strtoull(end + 1, NULL, 10);
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* A high, close-on-exec descriptor on the output, or -1 (then the output is dropped). path NULL or "":
 * this process's stderr as it is now. */
static inline int mrh_output_open(const char *path, const char *id)
{
    int fd = path && *path ? open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY) : dup(2);
    if (fd < 0) return -1;
    if (!mrh_output_identity(fd, path && *path ? id : NULL)) {
        close(fd);
        return -1;
    }
    int high = fcntl(fd, F_DUPFD_CLOEXEC, mrh_output_fd_floor());
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    return fd;
}

/* A pipe or a socket: a write there may raise SIGPIPE (see mrh_output_write_all). */
static inline int mrh_output_piped(const struct stat *st)
{
    return S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode);
}

/* Is fd still the output it was opened as (dev, ino)? piped (if not NULL): mrh_output_piped of it. */
static inline int mrh_output_still(int fd, dev_t dev, ino_t ino, int *piped)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != dev || st.st_ino != ino) return 0;
    if (piped) *piped = mrh_output_piped(&st);
    return 1;
}

/* A warning line: "mrhooker: " + the message + "\n", cut to fit line[size]; returns its length. */
static inline int mrh_output_format_warning(char *line, size_t size, const char *fmt, va_list ap)
{
    int n = snprintf(line, size, "mrhooker: ");
    n += vsnprintf(line + n, size - (size_t)n - 1, fmt, ap);
    if (n > (int)size - 2) n = (int)size - 2;
    line[n++] = '\n';
    return n;
}

/* 0, or what went wrong. Hazard: a pipe nobody reads any more (`2> >(head -2)`) fails the write with EPIPE and
 * raises SIGPIPE in the writing thread, which kills a program that never writes there itself (sh, which
 * doesn't ignore it). Idea: to a pipe or socket (piped; 1 when not known), the writes run with SIGPIPE blocked
 * in the thread, and a SIGPIPE they raised is taken back before its mask is put back; one the program had
 * pending already (blocked) stays. (Three system calls more, ~1.7 µs a line: not paid for a file or a tty.) */
static inline int mrh_output_write_all(int fd, const char *data, size_t n, int piped)
{
    int saved_errno = errno, err = 0, was_pending = 0;
    sigset_t pipe_only, old, pending;
    if (piped) {
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
        was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    }
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        data += w;
        n -= (size_t)w;
    }
    if (piped) {
        if (err == EPIPE && !was_pending) {
            static const struct timespec now = {0, 0};
            while (sigtimedwait(&pipe_only, NULL, &now) < 0 && errno == EINTR) {}
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    errno = saved_errno;
    return err;
}

#endif

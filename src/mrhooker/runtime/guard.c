/* guard.c: the guardian, a small program mrhooker starts beside the program it runs (guardian.py says why and
 * how), that outlives mrhooker so that what mrhooker started does not, nor a trace's file. It never runs inside
 * the target.
 *
 * Its standard input is a pipe only mrhooker writes to, one command a line:
 *   T PATH       the trace file: beat its heartbeat every BEAT_MS; at the end, heartbeat 0 and PATH removed
 *   P PID PGID   the program started (PGID: the process group it is in, the guardian's own, or 0 when it shares
 *                mrhooker's)
 *   F            mrhooker waited for the program: leave what it left running alone
 *   K            kill now what mrhooker (the guardian's parent) started, but the guardian (its trace's reader
 *                is gone: a closed pipe)
 * End of file: mrhooker is gone (it exited, or was killed). A program still watched is killed, with what it
 * started (SIGKILL), the trace file is removed, and the guardian exits.
 *
 * Hazards:
 * - A tree must be killed whole: a process killed first orphans its children, which are reparented out of sight,
 *   and a process may fork meanwhile. Idea: the tree is walked top down through /proc/PID/task/TID/children,
 *   from the program and from its process group's members (which the group's orphans, a daemon, still are:
 *   found in /proc, as the group is the guardian's own and can't be stopped at once without it), each new
 *   process stopped and waited for until it is (a stopped process can't fork), until a walk finds none new;
 *   then all of it is killed.
 * - The program's pid may be reused once it is reaped (by init, once mrhooker is gone). Idea: a pidfd taken when
 *   it starts, while it can't have been reaped (mrhooker reaps it only after saying F); a root it no longer
 *   names is not walked.
 * - Never mrhooker's own process group (a terminal's foreground job shares it with the shell's other jobs): a
 *   group's members are killed only when mrhooker named the group (the guardian's, where it put the program).
 */
#define _GNU_SOURCE
#include "tracefile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BEAT_MS 500   /* writers give a reader up after 2 s without a heartbeat */

static mrh_trace_header *trace;   /* T: the trace file's header, mapped */
static char trace_path[4096];

/* ---- sets of pids -------------------------------------------------------------------------------------- */

typedef struct pids {
    pid_t *at;
    size_t n, cap;
} pids;

static int has(const pids *s, pid_t pid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->at[i] == pid) return 1;
    return 0;
}

static void add(pids *s, pid_t pid)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        pid_t *at = realloc(s->at, cap * sizeof *at);
        if (!at) return;   /* out of memory: this one is missed */
        s->at = at;
        s->cap = cap;
    }
    s->at[s->n++] = pid;
}

/* ---- the process tree ---------------------------------------------------------------------------------- */

/* Adds the children of pid (of all its threads) to out. */
static void children_of(pid_t pid, pids *out)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    if (!tasks) return;
    struct dirent *task;
    while ((task = readdir(tasks))) {
        if (task->d_name[0] == '.') continue;
        char list[320];
        snprintf(list, sizeof list, "/proc/%d/task/%.255s/children", (int)pid, task->d_name);
        FILE *f = fopen(list, "re");
        if (!f) continue;
        int child;
        while (fscanf(f, "%d", &child) == 1) add(out, child);
        fclose(f);
    }
    closedir(tasks);
}

/* What /proc/PID/stat says after the name: "S 1 42 ..." (state, parent, process group, ...); NULL if gone. */
static const char *stat_of(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) return NULL;
    buf[n] = 0;
    char *end = strrchr(buf, ')');   /* the name, in parentheses, may hold anything */
    return end && end[1] == ' ' ? end + 2 : NULL;
}

/* Stopped (or ended): it can't fork any more. */
static int stopped(pid_t pid)
{
    char buf[512];
    const char *rest = stat_of(pid, buf, sizeof buf);
    return !rest || strchr("TtZX", rest[0]) != NULL;
}

/* Adds the processes of group but the guardian to out. The program's group is the guardian's own when it is
 * not mrhooker's (launch.py: the program leads none, as it wouldn't without mrhooker); the group can't be
 * stopped or killed at once without the guardian, so its members, a daemon reparented away from the program's
 * tree among them, are found one by one. */
static void members_of(pid_t group, pids *out)
{
    DIR *proc = opendir("/proc");
    if (!proc) return;
    struct dirent *e;
    while ((e = readdir(proc))) {
        char *end, buf[512];
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid()) continue;
        const char *rest = stat_of((pid_t)pid, buf, sizeof buf);
        int pgrp = 0;
        if (rest && sscanf(rest, "%*c %*d %d", &pgrp) == 1 && pgrp == group) add(out, (pid_t)pid);
    }
    closedir(proc);
}

static void nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

/* SIGKILL to every process descended from roots (the roots too) or from a member of group, if it is not 0. */
static void end_trees(const pids *roots, pid_t group)
{
    pids done = {0};
    for (int round = 0; round < 1000; round++) {
        pids tree = {0}, todo = {0};
        for (size_t i = 0; i < roots->n; i++) add(&todo, roots->at[i]);
        if (group > 0) members_of(group, &todo);
        while (todo.n) {
            pid_t pid = todo.at[--todo.n];
            if (has(&tree, pid)) continue;
            add(&tree, pid);
            children_of(pid, &todo);
        }
        size_t before = done.n;
        for (size_t i = 0; i < tree.n; i++)
            if (!has(&done, tree.at[i])) {
                kill(tree.at[i], SIGSTOP);
                add(&done, tree.at[i]);
            }
        free(tree.at);
        free(todo.at);
        if (done.n == before) break;
        for (int waited = 0; waited < 200; waited += 2) {   /* not for ever: one may be stuck in D */
            size_t i = before;
            while (i < done.n && stopped(done.at[i])) i++;
            if (i == done.n) break;
            nap_ms(2);
        }
    }
    for (size_t i = 0; i < done.n; i++) kill(done.at[i], SIGKILL);
    free(done.at);
}

/* ---- the trace file ------------------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void map_trace(const char *path)
{
    if (strlen(path) >= sizeof trace_path) return;
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    void *p = mmap(NULL, sizeof(mrh_trace_header), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return;
    if (((mrh_trace_header *)p)->magic != MRH_TRACE_MAGIC) {
        munmap(p, sizeof(mrh_trace_header));
        return;
    }
    memcpy(trace_path, path, strlen(path) + 1);
    trace = p;
}

/* The reader lives: unless mrhooker said it is gone (0). */
static void beat(void)
{
    if (trace && __atomic_load_n(&trace->heartbeat_ns, __ATOMIC_ACQUIRE))
        __atomic_store_n(&trace->heartbeat_ns, now_ns(), __ATOMIC_RELEASE);
}

/* ---- the guardian's life --------------------------------------------------------------------------------- */

static pid_t program, group;   /* P */
static int program_fd = -1;    /* a pidfd of it, or -1 */

static void watch(pid_t pid, pid_t pgid)
{
    if (program_fd >= 0) close(program_fd);
    program = pid;
    group = pgid;
#ifdef SYS_pidfd_open
    program_fd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
#else
    program_fd = -1;
#endif
}

static int program_alive(void)
{
#ifdef SYS_pidfd_send_signal
    if (program_fd >= 0) return syscall(SYS_pidfd_send_signal, program_fd, 0, NULL, 0) == 0;
#endif
    return 1;   /* no pidfd (before Linux 5.3): mrhooker's word for it */
}

static void command(char *line)
{
    if (line[0] == 'T' && line[1] == ' ') {
        map_trace(line + 2);
    } else if (line[0] == 'P') {
        int pid = 0, pgid = 0;
        if (sscanf(line + 1, "%d %d", &pid, &pgid) >= 1) watch(pid, pgid);
    } else if (line[0] == 'F') {
        watch(0, 0);
    } else if (line[0] == 'K') {
        pids roots = {0}, all = {0};
        children_of(getppid(), &all);
        for (size_t i = 0; i < all.n; i++)
            if (all.at[i] != getpid()) add(&roots, all.at[i]);
        end_trees(&roots, group);
        free(roots.at);
        free(all.at);
    }
}

int main(void)
{
    /* mrhooker's group and the terminal's signals are not for it; a mass kill of mrhooker's processes must not
     * stop the clean-up (SIGKILL still does). */
    static const int ignored[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1,
                                  SIGUSR2, SIGALRM};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) signal(ignored[i], SIG_IGN);
    if (chdir("/") != 0) {}   /* holds no directory busy */
    char buf[8192];
    size_t have = 0;
    struct pollfd in = {0, POLLIN, 0};
    for (;;) {
        int ready = poll(&in, 1, trace ? BEAT_MS : -1);
        if (ready == 0) {
            beat();
            continue;
        }
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;
        }
        ssize_t n = read(0, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;   /* mrhooker is gone */
        have += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', have))) {
            *nl = 0;
            command(buf);
            have -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have);
        }
        if (have == sizeof buf - 1) have = 0;   /* a line longer than any command: not one */
    }
    if (program > 0) {
        pids roots = {0};
        if (program_alive()) add(&roots, program);
        end_trees(&roots, group);
        free(roots.at);
    }
    if (trace) {
        __atomic_store_n(&trace->heartbeat_ns, 0, __ATOMIC_RELEASE);   /* writers stop waiting for a reader */
        unlink(trace_path);
    }
    return 0;
}

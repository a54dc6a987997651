/* trace.c (target side): the trace file, the clock, and writing records (see trace.h for the design). */
#define _GNU_SOURCE
#include "trace.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <ucontext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

mrh_trace_header *mrh_trace;
/* Where mrh_trace points once a process stops recording (a detach, a --no-follow child): a header that turns
 * everything off. Never NULL again: a call in flight (a read blocked when the detach came, a fork returning in
 * the child) reads the header when it returns, the fake clock's rate included. */
static mrh_trace_header trace_off = {.fake_rate_ppm = 1000000};
static unsigned char *ring;                /* the ring's first byte */
static uint64_t *counters;                 /* {calls, errors, ns} per function */
const mrh_inject_rule *mrh_inject_rules;   /* set when the file is mapped, if it has rules */
static uint64_t inject_nrules;             /* rules in the table (the functions' own slots and their chains) */
static uint64_t *inject_calls;             /* calls per function of this process (zeroed in a fork child) */
static int trace_tried;                    /* this process tried to map the file (reset in a fork child) */
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;   /* serialises the mapping; reset at fork */
int mrh_trace_tsc;                         /* header.clock == MRH_CLOCK_TSC: cached */
static uint32_t my_pid;                    /* this process's pid, cached (reset in a fork child) */

/* ---- the clock ---------------------------------------------------------------------------------------- */

static int clock_off;   /* strict mode, or the TSC turned off, in this process (sandboxes, below): no clock */

uint64_t mrh_trace_monotonic(void)
{
    if (MRH_UNLIKELY(__atomic_load_n(&clock_off, __ATOMIC_RELAXED))) return 0;
    struct timespec ts;
    mrh_tls.depth++;   /* a traced clock_gettime must not record (and time) this call of its own */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mrh_tls.depth--;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int invariant_tsc(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000000, &a, &b, &c, &d) || a < 0x80000007) return 0;
    __get_cpuid(0x80000007, &a, &b, &c, &d);
    return (d >> 8) & 1;
}

/* The first process to map the file chooses the clock and, for the TSC, measures its rate against
 * CLOCK_MONOTONIC over 2 ms (once per trace). The others wait for that. */
static void choose_clock(mrh_trace_header *h)
{
    uint64_t expected = 0;
    if (__atomic_compare_exchange_n(&h->clock_state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        uint64_t clock = MRH_CLOCK_MONOTONIC, hz = 0;
        uint64_t t0 = __rdtsc(), n0 = mrh_trace_monotonic();
        if (invariant_tsc()) {
            uint64_t n1;
            do n1 = mrh_trace_monotonic(); while (n1 - n0 < 2000000);
            uint64_t t1 = __rdtsc();
            hz = (uint64_t)((double)(t1 - t0) * 1e9 / (double)(n1 - n0));
            if (hz > 100000000) clock = MRH_CLOCK_TSC;   /* a plausible rate (> 100 MHz) */
        }
        h->tsc_hz = hz;
        h->anchor_tsc = t0;
        h->anchor_ns = n0;
        h->clock = clock;
        __atomic_store_n(&h->clock_state, 2, __ATOMIC_RELEASE);
    }
    while (__atomic_load_n(&h->clock_state, __ATOMIC_ACQUIRE) != 2) sched_yield();
    mrh_trace_tsc = h->clock == MRH_CLOCK_TSC;
}

/* ---- the file ----------------------------------------------------------------------------------------- */

/* Maps the trace file named by the environment, checking it is the one the launcher made. */
static mrh_trace_header *map_trace_file(void)
{
    const char *path = mrh_config.trace;
    if (!path || !mrh_config.active) return NULL;
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return NULL;   /* the launcher is gone, or this is not our trace */
    struct stat st;
    char id[64] = "";
    if (fstat(fd, &st) == 0)
        snprintf(id, sizeof id, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    if (!*id || st.st_uid != getuid() || !mrh_config.trace_id || strcmp(id, mrh_config.trace_id) != 0) {
        close(fd);
        return NULL;   /* not the file the launcher made */
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {   /* no room for it (ulimit -v): counted in the header alone, for the launcher to say */
        mrh_trace_header *first = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (first != MAP_FAILED) {
            if (first->magic == MRH_TRACE_MAGIC && first->version == MRH_TRACE_VERSION)
                __atomic_add_fetch(&first->unmapped, 1, __ATOMIC_RELAXED);
            munmap(first, 4096);
        }
        close(fd);
        return NULL;
    }
    close(fd);
    mrh_trace_header *h = p;
    if (h->magic != MRH_TRACE_MAGIC || h->version != MRH_TRACE_VERSION || (h->ring_size & (h->ring_size - 1)) ||
        h->ring_offset + h->ring_size > (uint64_t)st.st_size) {
        munmap(p, (size_t)st.st_size);
        return NULL;
    }
    choose_clock(h);
    ring = (unsigned char *)p + h->ring_offset;
    counters = (uint64_t *)((unsigned char *)p + 4096);
    if (h->inject_offset && h->inject_nrules >= h->nfn && h->inject_nrules < UINT32_MAX &&
        h->inject_offset + h->inject_nrules * sizeof(mrh_inject_rule) <= h->ring_offset) {
        void *calls = mmap(NULL, h->nfn * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
        if (calls != MAP_FAILED) {
            inject_calls = calls;
            inject_nrules = h->inject_nrules;
            mrh_inject_rules = (const mrh_inject_rule *)((unsigned char *)p + h->inject_offset);
        }
    }
    return h;
}

/* ---- where the calls come from ---------------------------------------------------------------------------
 * A record's caller is an address in this process: which object and offset it is, only its memory map says, and
 * the process may be gone when mrhooker reads the records. Idea: with MRHOOKER_MAPS, the process copies its map
 * to PREFIX.PID (written aside, then renamed: never read half-written) when it maps the trace file and again at
 * its exit, for the objects loaded since. Called with depth raised. */
static void copy_maps(void)
{
    if (!mrh_config.maps || !mrh_trace || mrh_trace == &trace_off) return;
    char path[4096], aside[4200];
    if (snprintf(path, sizeof path, "%s.%u", mrh_config.maps, my_pid) >= (int)sizeof path) return;
    snprintf(aside, sizeof aside, "%s.tmp", path);
    int in = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (in < 0) return;
    int out = open(aside, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    int ok = out >= 0;
    char buf[8192];
    for (ssize_t n; ok && (n = read(in, buf, sizeof buf)) != 0;)
        ok = n > 0 && write(out, buf, (size_t)n) == n;
    close(in);
    if (out >= 0) close(out);
    if (ok) rename(aside, path);
    else if (out >= 0) unlink(aside);
}

static int sandboxed;   /* this process installed a seccomp filter (see sandboxes, below): it may forbid opens */

__attribute__((destructor)) static void trace_fini(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    int saved = errno;
    if (!__atomic_load_n(&sandboxed, __ATOMIC_ACQUIRE)) copy_maps();
    errno = saved;
    t->depth--;
}

/* Maps the file, once per process (map_lock serialises it). in_handler: from a signal handler, which may have
 * interrupted the lock's holder: then only if the lock is free (else the call goes on unmapped). */
static void map_once(mrh_thread *t, int in_handler)
{
    t->depth++;   /* open, mmap and the rest: the runtime's own calls */
    int saved = errno;
    if (in_handler ? pthread_mutex_trylock(&map_lock) == 0 : pthread_mutex_lock(&map_lock) == 0) {
        if (!trace_tried) {
            my_pid = (uint32_t)getpid();
            mrh_trace_header *h = map_trace_file();
            if (!h && mrh_trace == &trace_off) h = &trace_off;   /* an attach whose file is gone: still off */
            __atomic_store_n(&mrh_trace, h, __ATOMIC_RELEASE);
            __atomic_store_n(&trace_tried, 1, __ATOMIC_RELEASE);
            if (!in_handler) copy_maps();
        }
        pthread_mutex_unlock(&map_lock);
    }
    errno = saved;
    t->depth--;
}

/* A system call made directly, not through libc: no entry point of ours traces or fakes it, and it raises no
 * depth (a signal handler arriving meanwhile finds the thread as its record left it: MRH_PROGRAM_HANDLER). */
static long raw_syscall4(long nr, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}

/* Hazard: a signal handler that interrupts a process's set-up for its first call (the trace file mapped, under
 * a lock) and leaves by longjmp leaves that lock taken, and the next call, traced again (mrh_trace_abandon), waits
 * for it forever. Idea: the set-up runs with the program's signals blocked; one due meanwhile is handled right
 * after it, its handler's calls traced. Not blocked: glibc's own two (a setuid in another thread waits for this
 * one's), and those a fault raises (blocked, they would kill the process). The system call is made directly:
 * syscall() and sigprocmask() may be traced (--fake-time traces syscall()), and the signal comes as the mask is
 * put back, with the thread's depth at 0 again. */
static void set_signal_mask(int how, const uint64_t *set, uint64_t *old)
{
    raw_syscall4(SYS_rt_sigprocmask, how, (long)set, (long)old, sizeof *set);   /* the kernel's sigset_t */
}

static const uint64_t program_signals = ~((1ull << (SIGSEGV - 1)) | (1ull << (SIGBUS - 1)) | (1ull << (SIGFPE - 1)) |
                                          (1ull << (SIGILL - 1)) | (1ull << (SIGTRAP - 1)) | (1ull << (SIGSYS - 1)) |
                                          (1ull << (32 - 1)) | (1ull << (33 - 1)));

int mrh_trace_enter_slow(mrh_thread *t, int fn, mrh_call *call, const void *caller)
{
    if (!__atomic_load_n(&trace_tried, __ATOMIC_ACQUIRE)) {
        if (!mrh_init_for_call(caller)) return 0;   /* the settings are read by then */
        uint64_t mask;
        set_signal_mask(SIG_BLOCK, &program_signals, &mask);
        map_once(t, 0);
        set_signal_mask(SIG_SETMASK, &mask, NULL);
    }
    if (!mrh_trace) return 0;
    return mrh_trace_enter(t, fn, call, caller);
}

mrh_trace_header *mrh_trace_in_handler(mrh_thread *t, const void *caller)
{
    if (!__atomic_load_n(&trace_tried, __ATOMIC_ACQUIRE) && mrh_init_for_call(caller)) map_once(t, 1);
    return mrh_trace;
}

/* ---- writing a record ------------------------------------------------------------------------------------ */

/* Copies up to n bytes at src; after a failed call (safe), through the kernel, which fails rather than faults:
 * page by page (a copy that crosses into an unmapped page fails whole), stopping at the first page it can't
 * read or, for a string, at a page with its NUL. Returns the bytes copied. */
static uint64_t copy_from_target(void *dst, const void *src, uint64_t n, int safe, int string)
{
    if (!safe) {
        memcpy(dst, src, n);
        return n;
    }
    uint64_t done = 0;
    while (done < n) {
        uintptr_t at = (uintptr_t)src + done;
        uint64_t chunk = 4096 - (at & 4095);
        if (chunk > n - done) chunk = n - done;
        struct iovec local = {(char *)dst + done, chunk}, remote = {(void *)at, chunk};
        ssize_t got = syscall(SYS_process_vm_readv, (long)my_pid, &local, 1L, &remote, 1L, 0L);
        if (got <= 0) break;
        done += (uint64_t)got;
        if (string && memchr((char *)dst + done - got, 0, (size_t)got)) break;
    }
    return done;
}

/* The most one capture of many strings or buffers (a string vector, an iovec array) takes of a record: a 16th of
 * the ring, 1 MB at most (a record over a quarter of the ring is dropped). */
static uint64_t record_share(uint64_t ring_size)
{
    return ring_size / 16 < ((uint64_t)1 << 20) ? ring_size / 16 : (uint64_t)1 << 20;
}

/* The bytes a string of a vector may take: its cut flag, at most `limit` bytes (4096 at most) and a NUL. */
static uint64_t strv_entry_limit(uint64_t limit) { return limit > 4096 ? 4096 : limit; }

/* The most a string vector's strings take of a record: its first `keep` strings, no more than -s of them
 * (strace's `["a"..., "b"..., ...]`), each at most the entry limit, within its share (record_share). */
static uint64_t strv_budget(uint64_t keep, uint64_t limit, uint64_t ring_size)
{
    uint64_t most = record_share(ring_size);
    uint64_t want = (keep < limit ? keep : limit) * (strv_entry_limit(limit) + 2);
    return want < most ? want : most;
}

/* A string vector (argv, envp; see MRH_CAP_STRV), always copied through the kernel: the array may end anywhere.
 * Stores its first strings at dst, as many as -s and `budget` allow (see strv_budget), sets *count to the strings
 * it has (and *unread if the array can't be read at all); returns the bytes stored. */
static uint64_t copy_strv(unsigned char *dst, const void *array, uint64_t budget, uint64_t limit, uint64_t *count,
                          int *unread)
{
    const char *const *at = array;
    const char *ptrs[64];
    uint64_t used = 0, n = 0, keep = limit;
    limit = strv_entry_limit(limit);
    for (;;) {
        uint64_t k = copy_from_target(ptrs, at + n, sizeof ptrs, 1, 0) / sizeof ptrs[0];
        if (k == 0 && n == 0) *unread = 1;   /* not even its first pointer */
        for (uint64_t i = 0; i < k; i++, n++) {
            if (!ptrs[i] || n >= MRH_STRV_COUNTED) {
                *count = n;
                return used;
            }
            if (n >= keep) continue;
            if (budget - used < limit + 2) {   /* no room for another whole entry: the list is cut here */
                keep = n;
                continue;
            }
            unsigned char *e = dst + used;
            uint64_t got = copy_from_target(e + 1, ptrs[i], limit + 1, 1, 1);
            uint64_t len = strnlen((const char *)e + 1, got);
            e[0] = len > limit || len == got;   /* cut at -s, or unreadable before its NUL */
            if (len > limit) len = limit;
            e[1 + len] = 0;
            used += len + 2;
        }
        if (k < 64) break;   /* the rest can't be read */
    }
    *count = n;
    return used;
}

/* The elements of an iovec array of `count` a record keeps (see MRH_CAP_IOV): as many as -s, as strace. */
static uint64_t iov_shown(uint64_t count, uint64_t limit)
{
    uint64_t most = limit < MRH_IOV_KEPT ? limit : MRH_IOV_KEPT;
    return count < most ? count : most;
}

/* The most an iovec capture's bytes take of a record: -s per element, within its share (record_share). */
static uint64_t iov_budget(uint64_t count, uint64_t limit, uint64_t ring_size)
{
    uint64_t most = record_share(ring_size);
    uint64_t want = iov_shown(count, limit) * MRH_ALIGN8(limit);
    return want < most ? want : most;
}

#define IOV_BATCH 16   /* elements read (and their bytes copied) by one system call */

/* An iovec array (see MRH_CAP_IOV): its first elements, each with its bytes cut at -s, within `budget` bytes in
 * all. Everything is copied through the kernel, even after a call that worked: the call itself may have changed
 * the array (a readv into it) and another thread unmapped a buffer (a writev blocked on a full pipe); an element
 * that can't be read is kept as its address. Elements are read IOV_BATCH at a time, their bytes in one
 * process_vm_readv (element by element only when that comes up short). What a read filled is its result's bytes,
 * spread over the elements in order; a failed or injected read filled none. */
static uint64_t copy_iov(unsigned char *dst, const mrh_capture *c, uint64_t limit, uint64_t budget, uint64_t ret,
                         int flags)
{
    int reading = c->kind == MRH_CAP_IOV_READ, unfilled = (flags & (MRH_FAILED | MRH_INJECTED)) != 0;
    uint64_t moved = (int64_t)ret < 0 ? 0 : ret, filled = 0;
    uint64_t n = iov_shown(c->len, limit), used = 0;
    for (uint64_t first = 0; first < n; first += IOV_BATCH) {
        struct iovec v[IOV_BATCH], local[IOV_BATCH], remote[IOV_BATCH];
        mrh_iov_kept *kept[IOV_BATCH];
        uint64_t asked = n - first < IOV_BATCH ? n - first : IOV_BATCH, total = 0;
        uint64_t count = copy_from_target(v, (const struct iovec *)c->ptr + first, asked * sizeof v[0], 1, 0) /
                         sizeof v[0];
        int nremote = 0, unread[IOV_BATCH];
        for (uint64_t i = 0; i < count; i++) {
            mrh_iov_kept *k = kept[i] = (mrh_iov_kept *)(dst + used);
            used += sizeof *k;
            uint64_t data = v[i].iov_len;
            if (reading) {
                data = unfilled || filled >= moved ? 0 : moved - filled < data ? moved - filled : data;
                filled += data;
            }
            uint64_t room = (budget > total ? budget - total : 0) & ~(uint64_t)7;
            uint64_t keep = data < limit ? data : limit;
            if (keep > room) keep = room;
            k->base = (uint64_t)(uintptr_t)v[i].iov_base;
            k->len = v[i].iov_len;
            k->data = data > 0xffffffffu ? 0xffffffffu : (uint32_t)data;
            k->kept = (uint32_t)keep;
            unread[i] = (reading && unfilled) || !v[i].iov_base;
            if (unread[i]) {
                k->kept = MRH_IOV_UNREAD;
                continue;
            }
            if (keep) {
                local[nremote] = (struct iovec){dst + used, keep};
                remote[nremote++] = (struct iovec){v[i].iov_base, keep};
            }
            used += MRH_ALIGN8(keep);
            total += MRH_ALIGN8(keep);
        }
        uint64_t want = 0;
        for (int r = 0; r < nremote; r++) want += local[r].iov_len;
        long all = nremote ? syscall(SYS_process_vm_readv, (long)my_pid, local, (long)nremote, remote, (long)nremote, 0L)
                           : 0;
        if (all < 0 || (uint64_t)all < want)   /* one of them can't be read: which, element by element */
            for (uint64_t i = 0, r = 0; i < count; i++) {
                if (unread[i] || kept[i]->kept == 0) continue;
                if (copy_from_target(local[r].iov_base, remote[r].iov_base, local[r].iov_len, 1, 0) < local[r].iov_len)
                    kept[i]->kept |= MRH_IOV_UNREAD;   /* (its bytes stay reserved: the reader steps over them) */
                r++;
            }
        budget = budget > total ? budget - total : 0;
        if (count < asked) break;   /* the rest of the array can't be read */
    }
    return used;
}

/* A struct msghdr (see MRH_CAP_MSG): the struct, through the kernel (a bad pointer, or a message another thread
 * changes, never faults); 0 if it can't be read. */
static int read_msghdr(struct msghdr *m, const void *at)
{
    return copy_from_target(m, at, sizeof *m, 1, 0) == sizeof *m;
}

/* The most a msghdr capture takes of a record (its iovec array as an MRH_CAP_IOV of msg_iovlen takes it). */
static uint64_t msg_room(uint64_t iovlen, uint64_t limit, uint64_t ring_size)
{
    return sizeof(mrh_msg_kept) + MRH_MSG_NAME_KEPT + MRH_MSG_CONTROL_KEPT +
           iov_shown(iovlen, limit) * sizeof(mrh_iov_kept) + iov_budget(iovlen, limit, ring_size);
}

/* Copies up to n bytes at src into dst for a msghdr capture; the bytes kept, or MRH_IOV_UNREAD. */
static uint32_t copy_msg_part(unsigned char *dst, uint64_t src, uint64_t n, uint64_t most, uint64_t *used)
{
    if (!src || !n) return 0;
    if (n > most) n = most;
    uint64_t got = copy_from_target(dst + *used, (const void *)(uintptr_t)src, n, 1, 0);
    if (got < n) return MRH_IOV_UNREAD;   /* shown as the address, as strace shows what it can't read */
    *used += MRH_ALIGN8(got);
    return (uint32_t)got;
}

/* A struct msghdr, its name, control and iovecs (see MRH_CAP_MSG), within `room` bytes: read again now (the
 * length was worked out from an earlier read, which another thread may have changed since: the iovecs kept are
 * cut to what fits). A recvmsg that failed filled nothing: only the struct is kept. */
static uint64_t copy_msg(unsigned char *dst, const mrh_capture *c, uint64_t limit, uint64_t room, uint64_t ret,
                         int flags, int *unread)
{
    struct msghdr m;
    if (room < sizeof(mrh_msg_kept) || !read_msghdr(&m, c->ptr)) {
        *unread = 1;
        return 0;
    }
    mrh_msg_kept *k = (mrh_msg_kept *)dst;
    *k = (mrh_msg_kept){(uintptr_t)m.msg_name, (uintptr_t)m.msg_iov, m.msg_iovlen, (uintptr_t)m.msg_control,
                        m.msg_controllen, m.msg_namelen, (uint32_t)m.msg_flags, 0, 0, 0, 0};
    uint64_t used = sizeof *k;
    if (c->kind == MRH_CAP_MSG_READ && (flags & (MRH_FAILED | MRH_INJECTED))) return used;
    k->name_kept = copy_msg_part(dst, k->name, m.msg_namelen, MRH_MSG_NAME_KEPT, &used);
    k->control_kept = copy_msg_part(dst, k->control, m.msg_controllen, MRH_MSG_CONTROL_KEPT, &used);
    if (!m.msg_iov) return used;
    uint64_t left = room - used, count = m.msg_iovlen;
    if (iov_shown(count, limit) * sizeof(mrh_iov_kept) > left) count = left / sizeof(mrh_iov_kept);
    mrh_capture iov = {m.msg_iov, count, c->which, c->kind == MRH_CAP_MSG_READ ? MRH_CAP_IOV_READ : MRH_CAP_IOV, 0};
    uint64_t got = copy_iov(dst + used, &iov, limit, left - iov_shown(count, limit) * sizeof(mrh_iov_kept), ret,
                            flags);
    k->iov_kept = (uint32_t)got;
    return used + got;
}

/* The length of a capture's data as stored: strings up to their NUL (at most len), everything cut at -s. A string
 * that goes on past the page of its first byte is marked unsure (copied through the kernel). */
static uint64_t capture_length(mrh_capture *c, uint64_t limit, uint64_t *full, int safe, uint64_t ring_size)
{
    if (!c->ptr) return *full = 0;
    if (c->kind & MRH_CAP_BEFORE) return *full = c->len;   /* copied already (mrh_trace_before) */
    if (c->kind == MRH_CAP_STRV) return *full = strv_budget(c->len, limit, ring_size);   /* the most it takes */
    if (c->kind == MRH_CAP_IOV || c->kind == MRH_CAP_IOV_READ) {   /* the most it takes */
        *full = c->len;
        return iov_shown(c->len, limit) * sizeof(mrh_iov_kept) + iov_budget(c->len, limit, ring_size);
    }
    if (c->kind == MRH_CAP_MSG || c->kind == MRH_CAP_MSG_READ) {   /* the most it takes, by its msg_iovlen now */
        struct msghdr m;
        *full = 1;
        return msg_room(read_msghdr(&m, c->ptr) ? m.msg_iovlen : 0, limit, ring_size);
    }
    if (c->kind == MRH_CAP_PATH) limit = 4096;   /* PATH_MAX: a path is shown whole */
    if (c->kind == MRH_CAP_STRING || c->kind == MRH_CAP_PATH) {
        /* Never a byte past c->len (MRH_LEN_NUL_UPTO_ARG): strncmp's, strnlen's string need no NUL, and the call
         * read no further; the next byte may be on an unmapped page. */
        uint64_t most = c->len < limit + 1 ? c->len : limit + 1;
        /* A call that worked read the string's first byte, not always the rest: strcmp, strncmp stop at the first
         * difference, before an unmapped page the string runs onto. Only that byte's page is read directly. */
        uint64_t in_page = 4096 - ((uintptr_t)c->ptr & 4095);
        if (!safe && most > in_page && strnlen(c->ptr, in_page) == in_page) c->unsure = 1;
        if (safe || c->unsure) {   /* unknown memory: the stored bytes are found when copying */
            *full = most < limit ? most : limit;
            return *full;
        }
        uint64_t n = strnlen(c->ptr, most);
        *full = n;
        return n > limit ? limit : n;
    }
    *full = c->len;
    if (c->kind == MRH_CAP_SOCKADDR) return c->len > 128 ? 128 : c->len;
    if (c->kind == MRH_CAP_STRUCT) return c->len > MRH_STRUCT_KEPT ? MRH_STRUCT_KEPT : c->len;
    return c->len > limit ? limit : c->len;
}

/* The filler a record of `need` bytes at ring offset `at` needs first: it never straddles the ring's end. */
static inline uint64_t pad_before(uint64_t at, uint64_t need, uint64_t size)
{
    return at + need > size ? size - at : 0;
}

/* A filler record of `size` bytes at ring offset `at`, committed. */
static void commit_pad(uint64_t at, uint64_t size)
{
    mrh_record *p = (mrh_record *)(ring + at);
    p->magic = MRH_RECORD_MAGIC;
    p->fn = MRH_PAD;
    __atomic_store_n(&p->size, (uint32_t)size, __ATOMIC_RELEASE);
}

/* Section mrh_reserve_window: the instructions between reserve's compare-and-swap and its note that the space is
 * the thread's (MRH_RESERVED), as {first, end} pairs. */
extern const uint64_t __start_mrh_reserve_window[] __attribute__((visibility("hidden")));
extern const uint64_t __stop_mrh_reserve_window[] __attribute__((visibility("hidden")));

/* Hazard: a signal handler that comes right after reserve's compare-and-swap and leaves by longjmp can't tell
 * whether the space was taken: left unfilled, the reader waits 2 s for it, then gives it up as lost (1 jump in
 * 100 came there: an interrupt due during the slow locked instruction is taken right after it). Idea: the
 * compare-and-swap and the note are one piece of assembly whose two instructions between are listed
 * (mrh_reserve_window); the handler's wrapper, finding the thread interrupted there with the compare-and-swap's
 * success flag (ZF) set, makes the note itself (mrh_trace_interrupted). 1: the space from *w on is the thread's;
 * 0: *w is the current position. */
static inline __attribute__((always_inline)) int reserve_cas(mrh_trace_header *h, uint64_t *w, uint64_t to,
                                                             mrh_thread *t)
{
    uint64_t expected = *w;
    int taken;
    __asm__ volatile("lock cmpxchgq %[to], %[write_pos]\n"
                     "1:\tjne 2f\n\t"
                     "movl %[reserved], %[recording]\n"
                     "2:\n\t"
                     ".pushsection mrh_reserve_window, \"aw\"\n\t"
                     ".quad 1b, 2b\n\t"
                     ".popsection"
                     : [write_pos] "+m"(h->write_pos), "+a"(expected), [recording] "+m"(t->recording), "=@ccz"(taken)
                     : [to] "r"(to), [reserved] "i"(MRH_RESERVED)
                     : "memory");
    *w = expected;
    return taken;
}

/* The wrapper of a signal handler that interrupted this thread while MRH_RESERVING (signals.c). */
void mrh_trace_interrupted(mrh_thread *t, const void *context)
{
    const mcontext_t *m = &((const ucontext_t *)context)->uc_mcontext;
    uint64_t rip = (uint64_t)m->gregs[REG_RIP];
    for (const uint64_t *p = __start_mrh_reserve_window; p < __stop_mrh_reserve_window; p += 2)
        if (rip >= p[0] && rip < p[1] && (m->gregs[REG_EFL] & 0x40)) t->recording = MRH_RESERVED;
}

/* Reserves `need` bytes of the ring (a power of two: positions are masked); 0 if it can't (then the record is
 * counted as dropped). Only the wait for a full ring calls out, by direct system calls (errno untouched). */
static int reserve(mrh_trace_header *h, uint64_t need, uint64_t *pos, mrh_thread *t, int nested)
{
    const uint64_t size = h->ring_size, mask = size - 1;
    uint64_t w = __atomic_load_n(&h->write_pos, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t at = w & mask;
        uint64_t pad = pad_before(at, need, size);
        uint64_t r = __atomic_load_n(&h->read_pos, __ATOMIC_ACQUIRE);
        if (MRH_LIKELY(w + pad + need - r <= size)) {
            /* before the CAS: a handler from here on must not wait (trace.h), and may have to fill it in */
            t->recording = MRH_RESERVING;
            t->reserved.pos = w;
            t->reserved.in = h;
            t->reserved.need = (uint32_t)need;
            if (MRH_LIKELY(reserve_cas(h, &w, w + pad + need, t))) {
                if (MRH_UNLIKELY(pad)) commit_pad(at, pad);
                *pos = w + pad;
                return 1;
            }
            continue;   /* w holds the current position now */
        }
        /* Full: wait for the reader as long as it lives (its heartbeat, which the launcher's guardian beats
         * however slowly the reader reads, is recent), as a tracee waits for a slow strace: a call is never
         * dropped for a reader that is only slow. Not nested in a record this thread has not committed (a
         * signal handler's: MRH_PROGRAM_HANDLER), which the reader waits for. */
        if (nested) return 0;
        t->recording = MRH_RECORDING;   /* nothing reserved while waiting: a handler's record may wait too */
        /* the clock and the nap by direct system calls: real whatever --fake-time fakes, and at the record's
         * depth, so that a handler interrupting the wait is traced and may wait as well */
        uint64_t beat = __atomic_load_n(&h->heartbeat_ns, __ATOMIC_ACQUIRE);
        struct timespec now = {0, 0}, nap = {0, 200000};
        raw_syscall4(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&now, 0, 0);
        if (beat == 0 || (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec - beat > 2000000000u) return 0;
        raw_syscall4(SYS_nanosleep, (long)&nap, 0, 0, 0);
        w = __atomic_load_n(&h->write_pos, __ATOMIC_RELAXED);
    }
}

static void write_captures(unsigned char *q, const mrh_capture *caps, int ncaps, const uint64_t *lens,
                           uint64_t *fulls, uint64_t limit, int safe, uint64_t ret, int flags)
{
    for (int i = 0; i < ncaps; i++) {
        mrh_capture_header *c = (mrh_capture_header *)q;
        q += sizeof *c;
        int string = caps[i].kind == MRH_CAP_STRING || caps[i].kind == MRH_CAP_PATH;
        uint64_t got;
        int unread = 0;   /* nothing of it could be read (not merely nothing kept: -s 0) */
        if (caps[i].kind & MRH_CAP_BEFORE) {   /* ours: a copy on the entry point's stack */
            got = lens[i];
            memcpy(q, caps[i].ptr, got);
        } else if (caps[i].kind == MRH_CAP_STRV) {
            got = copy_strv(q, caps[i].ptr, lens[i], limit, &fulls[i], &unread);
        } else if (caps[i].kind == MRH_CAP_IOV || caps[i].kind == MRH_CAP_IOV_READ) {
            got = copy_iov(q, &caps[i], limit, lens[i] - iov_shown(caps[i].len, limit) * sizeof(mrh_iov_kept), ret,
                           flags);
            unread = iov_shown(caps[i].len, limit) && !got;
        } else if (caps[i].kind == MRH_CAP_MSG || caps[i].kind == MRH_CAP_MSG_READ) {
            got = copy_msg(q, &caps[i], limit, lens[i], ret, flags, &unread);
        } else {
            int through_kernel = safe || caps[i].unsure;
            got = lens[i] ? copy_from_target(q, caps[i].ptr, lens[i], through_kernel, string) : 0;
            unread = through_kernel && lens[i] && !got;
        }
        if (string && (safe || caps[i].unsure)) {   /* now its NUL, or the end of a string bounded by an argument */
            uint64_t n = strnlen((const char *)q, got);
            fulls[i] = n < got || got == caps[i].len ? n : (caps[i].kind == MRH_CAP_PATH ? 4096 : limit) + 1;
            got = n;
        }
        c->which = caps[i].which;
        c->kind = caps[i].kind | (unread ? MRH_CAP_UNREAD : 0);
        c->full = (uint32_t)(fulls[i] > 0xffffffffu ? 0xffffffffu : fulls[i]);
        c->len = (uint32_t)got;
        c->pad = 0;
        q += MRH_ALIGN8(got);   /* as the reader steps: by what is stored (the reserved rest is slack) */
    }
}

/* Writes a reserved record's fixed part. */
static inline unsigned char *record_at(mrh_trace_header *h, uint64_t pos, mrh_call *call, uint64_t end, uint64_t ret,
                                       int flags, const uint64_t *args, int nargs, int ncaps)
{
    unsigned char *p = ring + (pos & (h->ring_size - 1));
    mrh_record *r = (mrh_record *)p;
    if (MRH_UNLIKELY(mrh_my_tid_pid != my_pid || mrh_my_tid == 0)) {
        int saved = errno;
        mrh_my_tid = (uint32_t)syscall(SYS_gettid);
        mrh_my_tid_pid = my_pid;
        errno = saved;
    }
    r->magic = MRH_RECORD_MAGIC;
    r->fn = (uint16_t)call->fn;
    r->pid = my_pid;
    r->tid = mrh_my_tid;
    r->ts = call->start;
    r->dur = end - call->start;
    r->ret = ret;
    r->err = call->err;
    r->flags = (uint8_t)flags;
    r->nargs = (uint8_t)nargs;
    r->ncaps = (uint8_t)ncaps;
    r->pad = 0;
    r->caller = (uint64_t)(uintptr_t)call->caller;
    uint64_t *a = (uint64_t *)(p + sizeof *r);
    for (int i = 0; i < nargs; i++) a[i] = args[i];
    return p;
}

/* A record with captures: their lengths first (the record's size), then the copies. */
static void record_with_captures(mrh_trace_header *h, mrh_call *call, uint64_t end, uint64_t ret, int flags,
                                 const uint64_t *args, int nargs, const mrh_capture *caps, int ncaps,
                                 mrh_thread *t, int nested)
{
    int safe = flags & (MRH_FAILED | MRH_ENTRY_ONLY | MRH_INJECTED);   /* memory no call vouched for */
    uint64_t limit = h->strsize, lens[8], fulls[8];
    mrh_capture kept[8];
    int nkept = 0;
    for (int i = 0; i < ncaps && nkept < 8; i++)
        if (caps[i].ptr) kept[nkept++] = caps[i];   /* NULL: the reader shows the pointer */
    uint64_t need = sizeof(mrh_record) + 8 * (uint64_t)nargs;
    for (int i = 0; i < nkept; i++) {
        lens[i] = capture_length(&kept[i], limit, &fulls[i], safe, h->ring_size);
        need += sizeof(mrh_capture_header) + MRH_ALIGN8(lens[i]);
    }
    uint64_t pos;
    if (need > h->ring_size / 4 || !reserve(h, need, &pos, t, nested)) {
        __atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    unsigned char *p = record_at(h, pos, call, end, ret, flags, args, nargs, nkept);
    if (nkept) {
        int saved = errno;   /* process_vm_readv may set it */
        write_captures(p + sizeof(mrh_record) + 8 * (uint64_t)nargs, kept, nkept, lens, fulls, limit, safe, ret,
                       flags);
        errno = saved;
    }
    __atomic_store_n(&((mrh_record *)p)->size, (uint32_t)need, __ATOMIC_RELEASE);   /* the commit */
    t->recording = MRH_COMMITTED;
}

/* The record of a call, in the ring (counted as dropped if it can't be). nested: inside a record of this thread
 * not committed yet (a signal handler's: MRH_PROGRAM_HANDLER), so it must not wait for room. */
static inline __attribute__((always_inline)) void write_record(mrh_trace_header *h, mrh_thread *t, mrh_call *call,
                                                                uint64_t end, uint64_t ret, int flags,
                                                                const uint64_t *args, int nargs,
                                                                const mrh_capture *caps, int ncaps, int nested)
{
    /* A call that worked yet left EFAULT keeps no copies (memory it vouched for may not be); one that failed
     * with it keeps what the kernel can still copy (after a failure every copy goes through it), as strace
     * shows a failed readv's iovecs. */
    if (MRH_UNLIKELY(call->err == EFAULT) && !(flags & (MRH_FAILED | MRH_ENTRY_ONLY | MRH_INJECTED)))
        flags |= MRH_UNSAFE, ncaps = 0;
    if (ncaps) {
        record_with_captures(h, call, end, ret, flags, args, nargs, caps, ncaps, t, nested);
    } else {   /* the common case: no copies */
        uint32_t need = sizeof(mrh_record) + 8 * (uint32_t)nargs;
        uint64_t pos;
        if (MRH_LIKELY(reserve(h, need, &pos, t, nested))) {
            unsigned char *p = record_at(h, pos, call, end, ret, flags, args, nargs, 0);
            __atomic_store_n(&((mrh_record *)p)->size, need, __ATOMIC_RELEASE);
            t->recording = MRH_COMMITTED;
        } else {
            __atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
        }
    }
}

/* A signal handler's record inside this thread's own, not committed yet: the outer reservation, which a longjmp
 * out of the handler would leave to mrh_trace_abandon, is kept aside meanwhile. */
static __attribute__((noinline, cold)) void write_nested_record(mrh_trace_header *h, mrh_thread *t, int outer,
                                                                mrh_call *call, uint64_t end, uint64_t ret,
                                                                int flags, const uint64_t *args, int nargs,
                                                                const mrh_capture *caps, int ncaps)
{
    mrh_reservation kept = t->outer_reserved;
    t->outer_reserved = t->reserved;
    if (outer != MRH_RESERVED) t->outer_reserved.need = 0;   /* its compare-and-swap had not taken the space */
    write_record(h, t, call, end, ret, flags, args, nargs, caps, ncaps, 1);
    t->reserved = t->outer_reserved;
    t->outer_reserved = kept;
}

static inline __attribute__((always_inline)) void record(mrh_thread *t, mrh_call *call, uint64_t ret, int failed,
                                                          int flags, const uint64_t *args, int nargs,
                                                          const mrh_capture *caps, int ncaps)
{
    mrh_trace_header *h = mrh_trace;
    uint64_t end = mrh_trace_now();
    t->depth++;   /* strnlen, memcpy: the runtime's calls (a trace of memcpy must not record them) */
    int outer = t->recording;   /* a signal handler's record, inside this thread's own (MRH_PROGRAM_HANDLER) */
    t->recording = MRH_RECORDING;
    if (failed) flags |= MRH_FAILED;
    if (h->counts_on) {
        uint64_t *c = counters + 3 * (uint64_t)call->fn;
        if (!(flags & MRH_COUNTED)) __atomic_add_fetch(&c[0], 1, __ATOMIC_RELAXED);
        if (failed) __atomic_add_fetch(&c[1], 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&c[2], end - call->start, __ATOMIC_RELAXED);
    }
    flags &= ~MRH_COUNTED;
    if (h->records_on && (MRH_LIKELY(h->records_on == MRH_RECORDS_ALL) || (flags & (MRH_INJECTED | MRH_DELAYED)))) {
        if (MRH_LIKELY(outer != MRH_RESERVING && outer != MRH_RESERVED))
            write_record(h, t, call, end, ret, flags, args, nargs, caps, ncaps, 0);
        else write_nested_record(h, t, outer, call, end, ret, flags, args, nargs, caps, ncaps);
    }
    t->recording = outer;
    t->depth--;
}

/* Fills in a reservation a longjmp abandoned, if it is still ours to (uncommitted and unread: the reader never
 * passes an uncommitted record) and of this ring (not since a detach); 1 if it did. */
static int fill_abandoned(mrh_trace_header *h, const mrh_reservation *r)
{
    if (!r->need || r->in != h) return 0;
    const uint64_t size = h->ring_size, mask = size - 1, w = r->pos, need = r->need;
    const uint64_t pad = pad_before(w & mask, need, size), at = (w + pad) & mask;
    const uint64_t read = __atomic_load_n(&h->read_pos, __ATOMIC_ACQUIRE);
    if (pad && read <= w && __atomic_load_n(&((mrh_record *)(ring + (w & mask)))->size, __ATOMIC_ACQUIRE) == 0)
        commit_pad(w & mask, pad);
    if (read > w + pad || __atomic_load_n(&((mrh_record *)(ring + at))->size, __ATOMIC_ACQUIRE) != 0)
        return 0;   /* committed after all (it was about to say so) */
    commit_pad(at, need);
    return 1;
}

/* The program left a signal handler by longjmp (signals.c's mrh_left_handler), to its own code, which runs at
 * depth 0 in a trace: whatever of the runtime the handler interrupted is never finished. A record's reservation,
 * made and not committed (and that of the record a handler's record interrupted), becomes filler, or the reader
 * would wait for it (and then give its place up as lost); a record abandoned before it was committed is
 * counted. */
void mrh_trace_abandon(mrh_thread *t)
{
    mrh_trace_header *h = mrh_trace;
    int state = t->recording, lost = state && state != MRH_COMMITTED;
    if (state == MRH_RESERVED && !fill_abandoned(h, &t->reserved)) lost = 0;
    lost += fill_abandoned(h, &t->outer_reserved);
    if (lost && h != NULL && h->records_on) __atomic_add_fetch(&h->abandoned, lost, __ATOMIC_RELAXED);
    t->outer_reserved.need = 0;
    t->recording = 0;
    t->depth = 0;
}

/* ---- a call's captures, from its descriptor --------------------------------------------------------------- */

/* Is capture c to be taken, and how long is it? ret and failed: after the call (failed: also at entry, when
 * nothing the call wrote can be trusted). */
static int capture_extent(const mrh_capture_desc *c, const uint64_t *args, uint64_t ret, int failed, uint64_t *len,
                          uint16_t *unsure)
{
    *unsure = 0;
    if (c->nvalues) {   /* only for some values of another argument (fcntl's lock commands) */
        int found = 0;
        for (int k = 0; k < c->nvalues && !found; k++) found = args[c->only_if] == c->values[k];
        if (!found) return 0;
    }
    uint64_t ref = c->ref == MRH_RET ? ret : args[c->ref];
    switch (c->length) {
    case MRH_LEN_FIXED: *len = c->size; break;
    case MRH_LEN_ARG:
    case MRH_LEN_NUL_UPTO_ARG:   /* a string the call reads at most `ref` bytes of: no further (see capture_length) */
    case MRH_LEN_ARG_READ_RET:   /* write's buffer: the call read the first `ret` bytes; the rest may be unmapped */
        *len = c->ref_signed && (int64_t)ref < 0 ? 0 : ref;
        *unsure = c->length == MRH_LEN_ARG_READ_RET && !failed && ret < *len;
        break;
    case MRH_LEN_RET_UPTO_ARG:   /* a read's bytes: as many as it returned (0: none, shown as "") */
        if (failed || (int64_t)ret < 0) return 0;
        *len = ret < ref ? ret : ref;
        break;
    case MRH_LEN_DEREF_ARG:   /* the length a socklen_t * says once the call worked */
        if (failed || !ref) return 0;
        *len = *(const unsigned *)(uintptr_t)ref;
        break;
    case MRH_LEN_STRINGS: *len = c->size; break;
    case MRH_LEN_ARG_TIMES:   /* an array: pollfds */
        *len = ref < MRH_STRUCT_KEPT / (c->size ? c->size : 1) ? ref * c->size : MRH_STRUCT_KEPT;
        break;
    case MRH_LEN_RET_TIMES:   /* an array the call filled as many elements of as it returned: epoll's events (the
                               * record keeps MRH_STRUCT_KEPT bytes of it, and says how long it was) */
        if (failed || (int64_t)ret < 0 || ret > 0xffffffffu) return 0;
        *len = ret * c->size;
        break;
    case MRH_LEN_ITEMS: {     /* items of argument `size` bytes: as many as argument `ref` says (fwrite's), or as the
                               * call returned (ref MRH_RET: fread's, which it filled) */
        uint64_t each = args[c->size];
        if (c->ref == MRH_RET && (failed || (int64_t)ret < 0)) return 0;
        *len = each && ref > UINT64_MAX / each ? UINT64_MAX : ref * each;
        break;
    }
    case MRH_LEN_ARG_PAGES: {   /* mincore's vector: a byte per page (getauxval: no system call, nothing traced) */
        uint64_t page = getauxval(AT_PAGESZ) ? getauxval(AT_PAGESZ) : 4096;
        *len = ref / page + (ref % page != 0);
        break;
    }
    case MRH_LEN_ARG_BITS:    /* an fd_set up to nfds */
        *len = (int64_t)ref > 0 ? (ref + 7) / 8 : 0;
        if (*len > c->size) *len = c->size;
        break;
    default: *len = UINT64_MAX;   /* MRH_LEN_NUL: strings, to their NUL */
    }
    return 1;
}

/* The pointer and length of each capture the descriptor asks for, now: after the call (ret, failed), or at its
 * entry (only the strings and vectors: buffers and structs once a call vouched for them). Returns how many. */
static int resolve_captures(const mrh_traced *d, uint64_t ret, int failed, const uint64_t *args, int at_entry,
                            mrh_capture *out)
{
    int n = 0;
    for (int i = 0; i < d->ncaps && n < 8; i++) {
        const mrh_capture_desc *c = &d->caps[i];
        int string = c->kind == MRH_CAP_STRING || c->kind == MRH_CAP_PATH || c->kind == MRH_CAP_STRV;
        if (c->when == MRH_WHEN_BEFORE || (at_entry && (!string || c->which == MRH_RET))) continue;
        if (c->when == MRH_WHEN_SHARED && args[c->which] == args[c->ref]) continue;   /* kept before the call */
        if (!at_entry && ((c->when == MRH_WHEN_OK && failed) || (c->when == MRH_WHEN_POSITIVE && (int64_t)ret <= 0)))
            continue;
        uint64_t len;
        uint16_t unsure;
        if (!capture_extent(c, args, ret, failed || at_entry, &len, &unsure)) continue;
        uint64_t ptr = c->which == MRH_RET ? ret : args[c->which];
        out[n++] = (mrh_capture){(const void *)(uintptr_t)ptr, len, c->which, c->kind, unsure};
    }
    return n;
}

void mrh_trace_at_entry(mrh_thread *t, mrh_call *call, const mrh_traced *d, const uint64_t *args)
{
    mrh_capture caps[8];
    int ncaps = resolve_captures(d, 0, 0, args, 1, caps);
    mrh_call at_entry = *call;
    at_entry.err = 0;
    record(t, &at_entry, 0, 0, MRH_ENTRY_ONLY, args, d->nargs, caps, ncaps);
}

static inline __attribute__((always_inline)) void trace_record(mrh_thread *t, mrh_call *call, const mrh_traced *d,
                                                                uint64_t ret, int failed, int flags,
                                                                const uint64_t *args, const mrh_before *b)
{
    if (MRH_UNLIKELY(d->forks) && ret == 0) call->start = mrh_trace_now();   /* the child: its side starts now */
    mrh_capture caps[8];
    int ncaps = d->ncaps ? resolve_captures(d, ret, failed, args, 0, caps) : 0;
    for (int i = 0; b && i < b->n && ncaps < 8; i++) caps[ncaps++] = b->caps[i];
    record(t, call, ret, failed, flags, args, d->nargs, caps, ncaps);
}

void mrh_trace_record(mrh_thread *t, mrh_call *call, const mrh_traced *d, uint64_t ret, int failed, int flags,
                      const uint64_t *args)
{
    trace_record(t, call, d, ret, failed, flags, args, NULL);
}

void mrh_trace_record_plain(mrh_thread *t, mrh_call *call, uint64_t ret, int failed, int flags, const uint64_t *args,
                            int nargs)
{
    record(t, call, ret, failed, flags, args, nargs, NULL, 0);
}

void mrh_trace_record_before(mrh_thread *t, mrh_call *call, const mrh_traced *d, uint64_t ret, int failed, int flags,
                             const uint64_t *args, const mrh_before *b)
{
    trace_record(t, call, d, ret, failed, flags, args, b);
}

/* Copies, before the call, what its MRH_WHEN_BEFORE captures point to (and its MRH_WHEN_SHARED ones, if shared),
 * through the kernel (nothing has vouched for these pointers yet: a bad one leaves the capture out, never faults). */
void mrh_trace_before(mrh_before *b, const mrh_traced *d, const uint64_t *args)
{
    mrh_thread *t = &mrh_tls;
    size_t used = 0;
    b->n = 0;
    t->depth++;   /* process_vm_readv: the runtime's call */
    for (int i = 0; i < d->ncaps && b->n < 4; i++) {
        const mrh_capture_desc *c = &d->caps[i];
        uint64_t len;
        uint16_t unsure;   /* all of these are copied through the kernel */
        int shared = c->when == MRH_WHEN_SHARED && args[c->which] == args[c->ref];
        if ((c->when != MRH_WHEN_BEFORE && !shared) || c->which == MRH_RET || !args[c->which] ||
            !capture_extent(c, args, 0, 1, &len, &unsure))
            continue;
        if (len > sizeof b->data - used) len = sizeof b->data - used;
        uint64_t got = len ? copy_from_target(b->data + used, (const void *)(uintptr_t)args[c->which], len, 1, 0) : 0;
        if (got < len) continue;   /* unreadable: shown as the address */
        b->caps[b->n++] = (mrh_capture){b->data + used, got, c->which, (uint16_t)(c->kind | MRH_CAP_BEFORE)};
        used += MRH_ALIGN8(got);
    }
    t->depth--;
}

/* ---- fault injection (see trace.h) ---------------------------------------------------------------------- */

static uint64_t mix(uint64_t x)   /* splitmix64's finaliser: a well-spread hash of x */
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void pause_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    int saved = errno;
    mrh_tls.depth++;   /* the runtime's own nanosleep: never traced, never injected into */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    mrh_tls.depth--;
    errno = saved;
}

/* Does the probability of this rule, the k-th of function fn's, keep the function's n-th call? (Apart, so that
 * the hash is computed only for a call `when` allows.) k: the rules of one function decide apart; k = 0 keeps
 * the hash a single rule always had. */
static __attribute__((noinline)) int by_chance(const mrh_inject_rule *rule, int fn, uint64_t n, uint32_t k)
{
    return (mix(mrh_trace->inject_seed ^ mix(((uint64_t)fn << 40) ^ n) ^ k) >> 32) < rule->probability;
}

/* Does this rule, the k-th of function fn's, choose the function's n-th call? */
static inline int chooses(const mrh_inject_rule *rule, int fn, uint64_t n, uint32_t k)
{
    if (n < rule->first || (rule->last && n > rule->last)) return 0;
    if (n != rule->first && (rule->step == 0 || (n - rule->first) % rule->step != 0)) return 0;
    return rule->probability == 0xffffffffu || by_chance(rule, fn, n, k);
}

static const mrh_inject_rule *chosen(const mrh_inject_rule *rule)
{
    if (rule->delay_enter_ns) pause_ns(rule->delay_enter_ns);
    return rule;
}

/* A function with several rules: they decide in order (bounded: a cycle can't hang the call). */
static __attribute__((noinline)) const mrh_inject_rule *chain_chooses(const mrh_inject_rule *rules,
                                                                     const mrh_inject_rule *rule, int fn, uint64_t n)
{
    uint64_t nrules = __atomic_load_n(&inject_nrules, __ATOMIC_RELAXED);
    for (uint32_t k = 0; k < nrules; k++) {
        if (chooses(rule, fn, n, k)) return chosen(rule);
        if (rule->next == 0 || rule->next >= nrules) break;
        rule = &rules[rule->next];
    }
    return NULL;
}

const mrh_inject_rule *mrh_inject_enter(mrh_call *call)
{
    const int fn = call->fn;
    /* the table's address loaded once: a detach makes it NULL meanwhile (the table itself stays mapped) */
    const mrh_inject_rule *rules = __atomic_load_n(&mrh_inject_rules, __ATOMIC_RELAXED);
    if (MRH_UNLIKELY(rules == NULL)) return call->rule = NULL;
    uint64_t n = __atomic_add_fetch(&inject_calls[fn], 1, __ATOMIC_RELAXED);   /* this call's number, from 1 */
    const mrh_inject_rule *rule = &rules[fn];
    if (MRH_LIKELY(rule->next == 0)) return call->rule = chooses(rule, fn, n, 0) ? chosen(rule) : NULL;
    return call->rule = chain_chooses(rules, rule, fn, n);
}

void mrh_inject_exit(mrh_call *call)
{
    const mrh_inject_rule *rule = call->rule;
    if (!rule) return;
    if (rule->fail && rule->error) *call->errno_at = rule->error;
    if (rule->delay_exit_ns) pause_ns(rule->delay_exit_ns);
}

uint32_t mrh_trace_pid(void) { return my_pid; }

static void stop_recording(void)   /* with map_lock held, or in a fork child */
{
    __atomic_store_n(&mrh_inject_rules, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&inject_nrules, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&trace_tried, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&mrh_trace, &trace_off, __ATOMIC_RELEASE);
}

/* attach.c: on at an attach (the file its settings name is mapped now), off at its detach. The old mapping stays
 * mapped (a call in flight may write into it), but its ring, nearly all of it, becomes anonymous memory that
 * costs nothing until written: the file's pages are freed once mrhooker removes it. */
void mrh_trace_switch(int on)
{
    pthread_mutex_lock(&map_lock);
    mrh_trace_header *old = mrh_trace;
    stop_recording();
    if (old && old != &trace_off)
        mmap(ring, (size_t)old->ring_size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS |
             MAP_NORESERVE, -1, 0);
    if (on) {
        __atomic_store_n(&trace_tried, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&map_lock);
        map_once(&mrh_tls, 0);
        return;
    }
    pthread_mutex_unlock(&map_lock);
}

/* ---- sandboxes ------------------------------------------------------------------------------------------
 *
 * Hazard: a program that sandboxes itself with seccomp before its first traced call. The file is mapped at that
 * call (open, mmap), which its filter may forbid: the process was killed (SECCOMP_RET_KILL: SIGSYS, where it ran
 * to its end unhooked) or went untraced without a word. Strict mode forbids everything but read, write and exit,
 * and turns the TSC off, as prctl(PR_SET_TSC, PR_TSC_SIGSEGV) does: the next record's rdtsc (or the vDSO's
 * clock) faulted (SIGSEGV).
 * Idea: the runtime's prctl and syscall, the calls that install a filter or turn the TSC off, map the file
 * before them; no copy of the memory map is made after a filter (trace_fini: it opens files); before strict mode
 * or the TSC turned off, this process's recording stops (README, Limits). They are weak: a trace of prctl or
 * syscall defines the names itself, and its entry points call these as their originals (mrh_trace_wrapper).
 * They make the system call themselves, as libc's do (no lookup: the runtime's own syscall() calls come here).
 */
static long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

static void before_sandbox(int strict)
{
    mrh_thread *t = &mrh_tls;
    int saved = errno;
    /* from a signal handler, or the runtime's own code: only if map_lock is free (map_once's in_handler) */
    if (!__atomic_load_n(&trace_tried, __ATOMIC_ACQUIRE)) map_once(t, t->depth > 0);
    __atomic_store_n(&sandboxed, 1, __ATOMIC_RELEASE);
    if (strict) {   /* entry points still read the clock before they find recording off: neither rdtsc nor a call */
        __atomic_store_n(&clock_off, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&mrh_trace_tsc, 0, __ATOMIC_RELAXED);
        int locked = pthread_mutex_trylock(&map_lock) == 0;   /* else held by an interrupted mapping: the stores
                                                               * below are atomic all the same */
        stop_recording();
        if (locked) pthread_mutex_unlock(&map_lock);
    }
    errno = saved;
}

static long trace_prctl_call(long option, long a2, long a3, long a4, long a5)
{
    if (option == PR_SET_SECCOMP) before_sandbox(a2 == SECCOMP_MODE_STRICT);
    else if (option == PR_SET_TSC && a2 == PR_TSC_SIGSEGV) before_sandbox(1);
    return raw_syscall6(SYS_prctl, option, a2, a3, a4, a5, 0);
}

static long trace_syscall_call(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
    if (nr == SYS_seccomp && (a1 == SECCOMP_SET_MODE_FILTER || a1 == SECCOMP_SET_MODE_STRICT))
        before_sandbox(a1 == SECCOMP_SET_MODE_STRICT);
    else if (nr == SYS_prctl)
        return trace_prctl_call(a1, a2, a3, a4, a5);
    return raw_syscall6(nr, a1, a2, a3, a4, a5, a6);
}

/* The originals a traced prctl's or syscall's entry point calls: variadic, as it calls them. */
static int trace_prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    long a2 = va_arg(ap, long), a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long);
    va_end(ap);
    return (int)trace_prctl_call(option, a2, a3, a4, a5);
}

static long trace_syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long), a4 = va_arg(ap, long),
         a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    return trace_syscall_call(nr, a1, a2, a3, a4, a5, a6);
}

void *mrh_trace_wrapper(const char *name)
{
    if (mrh_same_string(name, "prctl")) return (void *)trace_prctl;
    if (mrh_same_string(name, "syscall")) return (void *)trace_syscall;
    return NULL;
}

/* The program's prctl and syscall, these same functions under libc's names. */
MRH_EXPORT int prctl(int option, ...) __attribute__((weak, alias("trace_prctl")));
MRH_EXPORT long syscall(long nr, ...) __attribute__((weak, alias("trace_syscall")));

/* ---- fork ---------------------------------------------------------------------------------------------- */

static void trace_fork_child(void)
{
    /* The mapping is shared with the parent (MAP_SHARED): keep it; only the ids change, and the child counts
     * its own calls for injection. The depth raised: getpid and the rest are the runtime's calls, not the
     * program's (traced, getpid had a line in every fork child, --no-follow's too). */
    mrh_thread *t = &mrh_tls;
    t->depth++;
    int saved = errno;
    my_pid = (uint32_t)getpid();
    mrh_my_tid = 0;
    pthread_mutex_init(&map_lock, NULL);
    if (inject_calls) memset(inject_calls, 0, mrh_trace->nfn * sizeof(uint64_t));
    if (!mrh_config.follow) stop_recording();   /* --no-follow: the command alone, not its children */
    errno = saved;
    t->depth--;
}

__attribute__((constructor)) static void trace_init(void) { mrh_atfork(NULL, NULL, trace_fork_child); }

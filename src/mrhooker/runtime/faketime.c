/* faketime.c (target side): --fake-time (see faketime.h for the design). */
#define _GNU_SOURCE
#include "faketime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timeb.h>
#include <sys/timerfd.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000
#define PPM 1000000

typedef __int128 wide;   /* nanoseconds of any two 64-bit time_t apart, and their products by a rate */

/* ---- the mapping ----------------------------------------------------------------------------------------- */

static int rated(void) { return mrh_trace->fake_rate_ppm != PPM; }

/* (sec, nsec) + ns, normalised, saturated at the ends of a 64-bit time_t. */
static struct timespec instant(int64_t sec, wide nsec)
{
    int64_t q, r;
    if (MRH_LIKELY(nsec >= INT64_MIN && nsec <= INT64_MAX)) {   /* the usual case: no 128-bit division */
        q = (int64_t)nsec / NS;
        r = (int64_t)nsec % NS;
    } else {
        wide wq = nsec / NS;
        r = (int64_t)(nsec % NS);
        q = wq > INT64_MAX ? INT64_MAX : wq < INT64_MIN ? INT64_MIN : (int64_t)wq;
    }
    if (r < 0 && q > INT64_MIN) r += NS, q--;
    struct timespec ts;
    if (r < 0 || __builtin_add_overflow(sec, q, &ts.tv_sec)) {
        int up = q > 0;
        ts.tv_sec = up ? INT64_MAX : INT64_MIN;
        ts.tv_nsec = up ? NS - 1 : 0;
        return ts;
    }
    ts.tv_nsec = r;
    return ts;
}

/* Without a rate, fake time is real time plus a shift: (sec, nsec in 0..NS-1), worked out once per process from
 * the header's anchors (which never change once the program runs). state: 0 not yet, 1 usable, 2 not (a rate,
 * or a shift past 64-bit seconds). */
static struct { int64_t sec, nsec; int state; } shift;

static __attribute__((noinline)) int shift_state(void)
{
    const mrh_trace_header *h = mrh_trace;
    int state = 2;
    if (!rated()) {
        wide d = (wide)h->fake_anchor_sec * NS + h->fake_anchor_nsec - h->fake_anchor_real_ns;
        struct timespec ts = instant(0, d);
        if (ts.tv_sec > INT64_MIN && ts.tv_sec < INT64_MAX) {   /* not saturated */
            shift.sec = ts.tv_sec;
            shift.nsec = ts.tv_nsec;
            state = 1;
        }
    }
    __atomic_store_n(&shift.state, state, __ATOMIC_RELEASE);   /* racing threads store the same */
    return state;
}

static __attribute__((noinline)) struct timespec fake_of_rated(int64_t sec, int64_t nsec)
{
    const mrh_trace_header *h = mrh_trace;
    wide elapsed = (wide)sec * NS + nsec - h->fake_anchor_real_ns;
    if (rated()) elapsed = elapsed * (wide)h->fake_rate_ppm / PPM;
    return instant(h->fake_anchor_sec, elapsed + h->fake_anchor_nsec);
}

/* A real instant (a realtime clock's reading) as the program sees it. */
static inline __attribute__((always_inline)) struct timespec fake_of(int64_t sec, int64_t nsec)
{
    int state = __atomic_load_n(&shift.state, __ATOMIC_ACQUIRE);
    if (MRH_UNLIKELY(state == 0)) state = shift_state();
    if (MRH_LIKELY(state == 1)) {   /* the usual case: two additions */
        struct timespec ts;
        int64_t ns = nsec + shift.nsec, carry = ns >= NS;
        if (MRH_LIKELY(!__builtin_add_overflow(sec, shift.sec + carry, &ts.tv_sec))) {
            ts.tv_nsec = ns - carry * NS;
            return ts;
        }
    }
    return fake_of_rated(sec, nsec);   /* or saturated */
}

/* A fake instant (a deadline) as the kernel knows it; never before the epoch (a deadline passed already). */
static struct timespec real_of(int64_t sec, int64_t nsec)
{
    const mrh_trace_header *h = mrh_trace;
    wide since = ((wide)sec - h->fake_anchor_sec) * NS + (nsec - h->fake_anchor_nsec);
    if (rated()) since = since * PPM / (wide)h->fake_rate_ppm;
    struct timespec ts = instant(0, since + h->fake_anchor_real_ns);
    if (ts.tv_sec < 0 || (ts.tv_sec == 0 && ts.tv_nsec == 0)) ts.tv_sec = 0, ts.tv_nsec = 1;   /* 0: "disarm" */
    return ts;
}

/* The elapsed clocks (real without a rate; with one they run at it), by their anchor in the header: each from its
 * own reading at the start (their real offsets from each other, the raw clock's drift and the time the machine
 * slept, must not be multiplied by the rate); -1: not one. */
static int elapsed_anchor(int clock)
{
    switch (clock) {
    case CLOCK_MONOTONIC: case CLOCK_MONOTONIC_COARSE: return 0;
    case CLOCK_MONOTONIC_RAW: return 1;
    case CLOCK_BOOTTIME: case CLOCK_BOOTTIME_ALARM: return 2;
    default: return -1;
    }
}
static int elapsed_clock(int clock) { return elapsed_anchor(clock) >= 0; }

/* An elapsed clock's reading as the program sees it: under a rate it runs at the rate from its anchor (as
 * libfaketime's do), so that a program timing a wait sees the fake time it waited. */
static struct timespec fake_elapsed(int clock, struct timespec ts)
{
    int64_t anchor = mrh_trace->fake_anchor_elapsed_ns[elapsed_anchor(clock)];
    wide since = (wide)ts.tv_sec * NS + ts.tv_nsec - anchor;
    return instant(0, since * (wide)mrh_trace->fake_rate_ppm / PPM + anchor);
}

/* A fake deadline on an elapsed clock as the kernel knows it (under a rate); never 0 ("disarm"). */
static struct timespec real_elapsed(int clock, struct timespec ts)
{
    int64_t anchor = mrh_trace->fake_anchor_elapsed_ns[elapsed_anchor(clock)];
    wide since = (wide)ts.tv_sec * NS + ts.tv_nsec - anchor;
    struct timespec real = instant(0, since * PPM / (wide)mrh_trace->fake_rate_ppm + anchor);
    if (real.tv_sec < 0 || (real.tv_sec == 0 && real.tv_nsec == 0)) real.tv_sec = 0, real.tv_nsec = 1;
    return real;
}

/* A duration: fake -> real (divided by the rate) or real -> fake; a nonzero one stays nonzero (0 disarms). */
static struct timespec duration(struct timespec d, int to_real)
{
    if (d.tv_sec == 0 && d.tv_nsec == 0) return d;
    wide ns = (wide)d.tv_sec * NS + d.tv_nsec;
    uint64_t rate = mrh_trace->fake_rate_ppm;
    ns = to_real ? ns * PPM / (wide)rate : ns * (wide)rate / PPM;
    struct timespec out = instant(0, ns);
    if (out.tv_sec == 0 && out.tv_nsec == 0) out.tv_nsec = 1;
    return out;
}

static int valid(const struct timespec *ts) { return ts->tv_nsec >= 0 && ts->tv_nsec < NS; }
static int is_zero(const struct timespec *ts) { return ts->tv_sec == 0 && ts->tv_nsec == 0; }

/* The clocks that tell the time of day (faked), and those that count CPU time (never scaled). */
static int realtime_clock(int clock)
{
    return clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE || clock == CLOCK_REALTIME_ALARM ||
           clock == CLOCK_TAI;
}
static int elapsed_rated(void) { return rated() && mrh_trace->fake_elapsed; }
static int faked_clock(int clock) { return realtime_clock(clock) || (elapsed_rated() && elapsed_clock(clock)); }
#define UNKNOWN_CLOCK INT_MIN   /* a timer whose clock isn't known (not an id: dynamic clocks are ~id << 3 | 2..3) */
static int cpu_clock(int clock)   /* negative: another process's or thread's CPU clock, or a PTP device's */
{
    return clock == CLOCK_PROCESS_CPUTIME_ID || clock == CLOCK_THREAD_CPUTIME_ID || (clock < 0 && clock != UNKNOWN_CLOCK);
}

int mrh_fake_in_handler(mrh_thread *t, const void *caller)
{
    if (t->depth != t->handler.depth + 1) return 0;   /* the runtime's call, inside the handler */
    const mrh_trace_header *h = mrh_trace ? mrh_trace : mrh_trace_in_handler(t, caller);
    return h != NULL && h->fake_time_on;
}

/* ---- the runtime's own calls --------------------------------------------------------------------------- */

/* The originals the faked functions need besides their own, called by pointer: no entry point records them. */
static void *own(void **cache, const char *name)
{
    void *f = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (MRH_UNLIKELY(f == NULL)) {
        f = mrh_original(name);
        __atomic_store_n(cache, f, __ATOMIC_RELEASE);
    }
    return f;
}

static void *real_clock_gettime_fn, *real_nanosleep_fn, *real_setitimer_fn;

static void read_clock(int clock, struct timespec *ts)
{
    int (*f)(clockid_t, struct timespec *) = (int (*)(clockid_t, struct timespec *))own(&real_clock_gettime_fn,
                                                                                         "clock_gettime");
    if (!f || f(clock, ts) != 0) ts->tv_sec = 0, ts->tv_nsec = 0;
}

/* CLOCK_TAI - CLOCK_REALTIME: whole seconds (the kernel's TAI offset), for mapping TAI readings and deadlines. */
static int64_t tai_offset(void)
{
    struct timespec tai, rt;
    int saved = errno;
    read_clock(CLOCK_TAI, &tai);
    read_clock(CLOCK_REALTIME, &rt);
    errno = saved;
    wide d = ((wide)tai.tv_sec - rt.tv_sec) * NS + (tai.tv_nsec - rt.tv_nsec);
    return (int64_t)((d + (d >= 0 ? NS / 2 : -NS / 2)) / NS);
}

/* Copies n bytes the program passed at src, read through the kernel (which refuses instead of faulting);
 * 0 if they can't be read (the original, given the program's pointer, then fails as it would have). */
static int fetch(void *dst, const void *src, size_t n)
{
    if (src == NULL) return 0;
    struct iovec local = {dst, n}, remote = {(void *)src, n};
    int saved = errno;
    mrh_tls.depth++;   /* syscall(), memcpy(): libc functions a trace may record */
    long got = syscall(SYS_process_vm_readv, (long)mrh_trace_pid(), &local, 1L, &remote, 1L, 0L);
    if (got < 0 && (errno == ENOSYS || errno == EPERM)) {   /* not allowed here (a seccomp filter): as libc would */
        memcpy(dst, src, n);
        got = (long)n;
    }
    mrh_tls.depth--;
    errno = saved;
    return got == (long)n;
}

/* ---- readers ----------------------------------------------------------------------------------------- */

static __attribute__((noinline)) void fake_tai(struct timespec *ts)   /* CLOCK_REALTIME's fake time + the offset */
{
    int64_t offset = tai_offset();
    *ts = fake_of(ts->tv_sec - offset, ts->tv_nsec);
    ts->tv_sec += offset;
}

/* A faked clock's reading, made fake in place (a CPU-time clock's is left alone). */
static inline void fake_reading(int clock, struct timespec *ts)
{
    if (clock == CLOCK_TAI) fake_tai(ts);
    else if (realtime_clock(clock)) *ts = fake_of(ts->tv_sec, ts->tv_nsec);
    else if (elapsed_rated() && elapsed_clock(clock)) *ts = fake_elapsed(clock, *ts);
}

/* A fake instant on a faked clock (a deadline, an absolute timer) as the kernel knows it. */
static struct timespec real_instant(int clock, struct timespec fake)
{
    if (elapsed_clock(clock)) return real_elapsed(clock, fake);
    int64_t offset = clock == CLOCK_TAI ? tai_offset() : 0;
    struct timespec real = real_of(fake.tv_sec - offset, fake.tv_nsec);
    real.tv_sec += real.tv_sec < INT64_MAX - offset ? offset : 0;
    return real;
}

static void fake_timeval(struct timeval *tv, int nano)   /* nano: tv_usec holds ns (adjtimex's STA_NANO) */
{
    struct timespec ts = fake_of(tv->tv_sec, nano ? tv->tv_usec : (int64_t)tv->tv_usec * 1000);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = nano ? ts.tv_nsec : ts.tv_nsec / 1000;
}

long mrh_faked_time(void *original, void *tloc)
{
    (void)original;   /* its coarse clock may be a tick behind the precise one the other readers fake */
    struct timespec now;
    read_clock(CLOCK_REALTIME, &now);
    now = fake_of(now.tv_sec, now.tv_nsec);
    if (tloc) *(time_t *)tloc = now.tv_sec;
    return now.tv_sec;
}

int mrh_faked_clock_gettime(void *original, int clock, void *ts)
{
    /* the coarse clocks are read precisely: a tick behind, the realtime one could show the second before the
     * others, and a tick times a rate is long */
    int precise = clock == CLOCK_REALTIME_COARSE ? CLOCK_REALTIME
                : clock == CLOCK_MONOTONIC_COARSE && elapsed_rated() ? CLOCK_MONOTONIC : clock;
    int r = ((int (*)(clockid_t, void *))original)(precise, ts);
    if (r == 0 && ts) fake_reading(clock, ts);
    return r;
}

int mrh_faked_gettimeofday(void *original, void *tv, void *tz)
{
    int r = ((int (*)(void *, void *))original)(tv, tz);
    if (r == 0 && tv) fake_timeval(tv, 0);
    return r;
}

int mrh_faked_timespec_get(void *original, void *ts, int base)
{
    int r = ((int (*)(void *, int))original)(ts, base);
    if (r == TIME_UTC && ts) fake_reading(CLOCK_REALTIME, ts);
    return r;
}

int mrh_faked_ftime(void *original, void *tb)
{
    int r = ((int (*)(void *))original)(tb);
    struct timeb *b = tb;
    if (r == 0 && b) {
        struct timespec ts = fake_of(b->time, (int64_t)b->millitm * 1000000);
        b->time = ts.tv_sec;
        b->millitm = (unsigned short)(ts.tv_nsec / 1000000);
    }
    return r;
}

int mrh_faked_ntp_gettime(void *original, void *ntv)
{
    int r = ((int (*)(void *))original)(ntv);
    if (r != -1 && ntv) fake_timeval(&((struct ntptimeval *)ntv)->time, 0);
    return r;
}

int mrh_faked_ntp_gettimex(void *original, void *ntv) { return mrh_faked_ntp_gettime(original, ntv); }

int mrh_faked_adjtimex(void *original, void *tx)
{
    int r = ((int (*)(void *))original)(tx);
    struct timex *x = tx;
    if (r != -1 && x) fake_timeval(&x->time, (x->status & STA_NANO) != 0);
    return r;
}

int mrh_faked_clock_adjtime(void *original, int clock, void *tx)
{
    int r = ((int (*)(clockid_t, void *))original)(clock, tx);
    struct timex *x = tx;
    if (r != -1 && x && clock == CLOCK_REALTIME) fake_timeval(&x->time, (x->status & STA_NANO) != 0);
    return r;
}

/* ---- absolute waits ------------------------------------------------------------------------------------ */

/* What to pass on for a deadline the program gave on `clock`: the real deadline (in *real) if the clock is
 * faked, else the program's own pointer (also when it can't be read, or is invalid: the original says so). */
static const struct timespec *real_deadline(int clock, const void *abstime, struct timespec *real)
{
    if (!faked_clock(clock) || !fetch(real, abstime, sizeof *real) || !valid(real)) return abstime;
    *real = real_instant(clock, *real);
    return real;
}

/* The clock a condition variable waits on: bit 1 of glibc's __wrefs (nptl/pthread_cond_wait.c: "Bit 1 is the
 * clock ID (0 == CLOCK_REALTIME, 1 == CLOCK_MONOTONIC)", glibc 2.25 and later). glibc reads it there too. */
static int cond_clock(void *cond)
{
    const pthread_cond_t *c = cond;
    return c && (__atomic_load_n(&c->__data.__wrefs, __ATOMIC_RELAXED) & 2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

typedef int (*wait2_fn)(void *, const struct timespec *);
typedef int (*wait3_fn)(void *, void *, const struct timespec *);
typedef int (*clockwait2_fn)(void *, clockid_t, const struct timespec *);

int mrh_faked_pthread_cond_timedwait(void *original, void *cond, void *mutex, const void *abstime)
{
    struct timespec real;
    return ((wait3_fn)original)(cond, mutex, real_deadline(cond_clock(cond), abstime, &real));
}

int mrh_faked_pthread_cond_clockwait(void *original, void *cond, void *mutex, int clock, const void *abstime)
{
    struct timespec real;
    return ((int (*)(void *, void *, clockid_t, const struct timespec *))original)(
        cond, mutex, clock, real_deadline(clock, abstime, &real));
}

int mrh_faked_sem_timedwait(void *original, void *sem, const void *abstime)
{
    struct timespec real;
    return ((wait2_fn)original)(sem, real_deadline(CLOCK_REALTIME, abstime, &real));
}

int mrh_faked_sem_clockwait(void *original, void *sem, int clock, const void *abstime)
{
    struct timespec real;
    return ((clockwait2_fn)original)(sem, clock, real_deadline(clock, abstime, &real));
}

int mrh_faked_pthread_mutex_timedlock(void *original, void *mutex, const void *abstime)
{
    struct timespec real;
    return ((wait2_fn)original)(mutex, real_deadline(CLOCK_REALTIME, abstime, &real));
}

int mrh_faked_pthread_mutex_clocklock(void *original, void *mutex, int clock, const void *abstime)
{
    struct timespec real;
    return ((clockwait2_fn)original)(mutex, clock, real_deadline(clock, abstime, &real));
}

int mrh_faked_pthread_rwlock_timedrdlock(void *original, void *rwlock, const void *abstime)
{
    struct timespec real;
    return ((wait2_fn)original)(rwlock, real_deadline(CLOCK_REALTIME, abstime, &real));
}

int mrh_faked_pthread_rwlock_timedwrlock(void *original, void *rwlock, const void *abstime)
{
    struct timespec real;
    return ((wait2_fn)original)(rwlock, real_deadline(CLOCK_REALTIME, abstime, &real));
}

int mrh_faked_pthread_rwlock_clockrdlock(void *original, void *rwlock, int clock, const void *abstime)
{
    struct timespec real;
    return ((clockwait2_fn)original)(rwlock, clock, real_deadline(clock, abstime, &real));
}

int mrh_faked_pthread_rwlock_clockwrlock(void *original, void *rwlock, int clock, const void *abstime)
{
    struct timespec real;
    return ((clockwait2_fn)original)(rwlock, clock, real_deadline(clock, abstime, &real));
}

int mrh_faked_pthread_timedjoin_np(void *original, unsigned long thread, void *ret, const void *abstime)
{
    struct timespec real;
    return ((int (*)(unsigned long, void *, const struct timespec *))original)(
        thread, ret, real_deadline(CLOCK_REALTIME, abstime, &real));
}

int mrh_faked_pthread_clockjoin_np(void *original, unsigned long thread, void *ret, int clock, const void *abstime)
{
    struct timespec real;
    return ((int (*)(unsigned long, void *, clockid_t, const struct timespec *))original)(
        thread, ret, clock, real_deadline(clock, abstime, &real));
}

int mrh_faked_mq_timedsend(void *original, int mq, const void *msg, unsigned long len, unsigned int prio,
                           const void *abstime)
{
    struct timespec real;
    return ((int (*)(int, const void *, unsigned long, unsigned int, const struct timespec *))original)(
        mq, msg, len, prio, real_deadline(CLOCK_REALTIME, abstime, &real));
}

long mrh_faked_mq_timedreceive(void *original, int mq, void *msg, unsigned long len, void *prio,
                               const void *abstime)
{
    struct timespec real;
    return ((long (*)(int, void *, unsigned long, void *, const struct timespec *))original)(
        mq, msg, len, prio, real_deadline(CLOCK_REALTIME, abstime, &real));
}

int mrh_faked_cnd_timedwait(void *original, void *cond, void *mutex, const void *abstime)
{
    struct timespec real;   /* C11: TIME_UTC, i.e. CLOCK_REALTIME */
    return ((wait3_fn)original)(cond, mutex, real_deadline(CLOCK_REALTIME, abstime, &real));
}

int mrh_faked_mtx_timedlock(void *original, void *mutex, const void *abstime)
{
    struct timespec real;
    return ((wait2_fn)original)(mutex, real_deadline(CLOCK_REALTIME, abstime, &real));
}

/* ---- relative waits ---------------------------------------------------------------------------------- */

/* What to pass on for a duration the program gave (a wait on `clock`): divided by the rate (in *real), or the
 * program's own pointer when there is no rate, the clock counts CPU time, or it can't be read or is invalid. */
static const struct timespec *real_duration(int clock, const void *d, struct timespec *real)
{
    if (!rated() || cpu_clock(clock) || !fetch(real, d, sizeof *real) || !valid(real) || real->tv_sec < 0)
        return d;
    *real = duration(*real, 1);
    return real;
}

static void scale_back(void *remaining)   /* a remaining time the original wrote: real -> fake */
{
    struct timespec *ts = remaining;
    if (ts && !is_zero(ts)) *ts = duration(*ts, 0);
}

int mrh_faked_clock_nanosleep(void *original, int clock, int flags, const void *req, void *rem)
{
    int (*f)(clockid_t, int, const struct timespec *, void *) =
        (int (*)(clockid_t, int, const struct timespec *, void *))original;
    struct timespec real;
    if (flags & TIMER_ABSTIME) return f(clock, flags, real_deadline(clock, req, &real), rem);
    const struct timespec *pass = real_duration(clock, req, &real);
    int r = f(clock, flags, pass, rem);
    if (r == EINTR && pass != req) scale_back(rem);
    return r;
}

int mrh_faked_nanosleep(void *original, const void *req, void *rem)
{
    struct timespec real;
    const struct timespec *pass = real_duration(CLOCK_MONOTONIC, req, &real);
    int r = ((int (*)(const struct timespec *, void *))original)(pass, rem);
    if (r == -1 && errno == EINTR && pass != req) scale_back(rem);
    return r;
}

int mrh_faked_thrd_sleep(void *original, const void *req, void *rem)
{
    struct timespec real;
    const struct timespec *pass = real_duration(CLOCK_MONOTONIC, req, &real);
    int r = ((int (*)(const struct timespec *, void *))original)(pass, rem);
    if (r == -1 && pass != req) scale_back(rem);
    return r;
}

/* nanosleep for a fake duration, for sleep() and usleep(); the fake time left in *left. */
static int sleep_scaled(struct timespec d, struct timespec *left)
{
    int (*f)(const struct timespec *, struct timespec *) =
        (int (*)(const struct timespec *, struct timespec *))own(&real_nanosleep_fn, "nanosleep");
    struct timespec real = duration(d, 1);
    left->tv_sec = left->tv_nsec = 0;
    if (!f) return 0;
    int r = f(&real, left);
    if (r == -1) scale_back(left);
    return r;
}

unsigned int mrh_faked_sleep(void *original, unsigned int seconds)
{
    if (!rated()) return ((unsigned int (*)(unsigned int))original)(seconds);
    int saved = errno;
    struct timespec left;
    if (sleep_scaled((struct timespec){seconds, 0}, &left) == 0) {
        errno = saved;   /* as glibc's sleep: errno untouched when it slept it all */
        return 0;
    }
    return (unsigned int)left.tv_sec;   /* the whole seconds not slept */
}

int mrh_faked_usleep(void *original, unsigned int usec)
{
    if (!rated()) return ((int (*)(unsigned int))original)(usec);
    struct timespec left;
    return sleep_scaled((struct timespec){usec / 1000000, (long)(usec % 1000000) * 1000}, &left);
}

/* A timeout in milliseconds (poll, epoll_wait): divided by the rate, rounded up (a positive one stays >= 1 ms). */
static int real_ms(int ms)
{
    if (!rated() || ms <= 0) return ms;
    wide real = ((wide)ms * PPM + mrh_trace->fake_rate_ppm - 1) / (wide)mrh_trace->fake_rate_ppm;
    return real > INT_MAX ? INT_MAX : (int)real;
}

int mrh_faked_poll(void *original, void *fds, unsigned long nfds, int timeout)
{
    return ((int (*)(void *, unsigned long, int))original)(fds, nfds, real_ms(timeout));
}

int mrh_faked_epoll_wait(void *original, int epfd, void *events, int maxevents, int timeout)
{
    return ((int (*)(int, void *, int, int))original)(epfd, events, maxevents, real_ms(timeout));
}

int mrh_faked_epoll_pwait(void *original, int epfd, void *events, int maxevents, int timeout, const void *sigmask)
{
    return ((int (*)(int, void *, int, int, const void *))original)(epfd, events, maxevents, real_ms(timeout),
                                                                     sigmask);
}

int mrh_faked_ppoll(void *original, void *fds, unsigned long nfds, const void *timeout, const void *sigmask)
{
    struct timespec real;
    return ((int (*)(void *, unsigned long, const struct timespec *, const void *))original)(
        fds, nfds, real_duration(CLOCK_MONOTONIC, timeout, &real), sigmask);
}

int mrh_faked_epoll_pwait2(void *original, int epfd, void *events, int maxevents, const void *timeout,
                           const void *sigmask)
{
    struct timespec real;
    return ((int (*)(int, void *, int, const struct timespec *, const void *))original)(
        epfd, events, maxevents, real_duration(CLOCK_MONOTONIC, timeout, &real), sigmask);
}

int mrh_faked_pselect(void *original, int nfds, void *readfds, void *writefds, void *exceptfds,
                      const void *timeout, const void *sigmask)
{
    struct timespec real;
    return ((int (*)(int, void *, void *, void *, const struct timespec *, const void *))original)(
        nfds, readfds, writefds, exceptfds, real_duration(CLOCK_MONOTONIC, timeout, &real), sigmask);
}

int mrh_faked_sigtimedwait(void *original, const void *set, void *info, const void *timeout)
{
    struct timespec real;
    return ((int (*)(const void *, void *, const struct timespec *))original)(
        set, info, real_duration(CLOCK_MONOTONIC, timeout, &real));
}

static struct timespec from_timeval(struct timeval tv) { return (struct timespec){tv.tv_sec, tv.tv_usec * 1000}; }

/* A duration as a timeval, rounded up to a microsecond (a nonzero one stays nonzero: 0 disarms a timer). */
static struct timeval to_timeval(struct timespec ts)
{
    struct timeval tv = {ts.tv_sec, (ts.tv_nsec + 999) / 1000};
    if (tv.tv_usec == 1000000) tv.tv_sec++, tv.tv_usec = 0;
    return tv;
}

static struct timeval timeval_duration(struct timeval tv, int to_real)
{
    return to_timeval(duration(from_timeval(tv), to_real));
}

/* Linux's select() writes the time not slept into *timeout: the program gets it in fake time. */
int mrh_faked_select(void *original, int nfds, void *readfds, void *writefds, void *exceptfds, void *timeout)
{
    int (*f)(int, void *, void *, void *, struct timeval *) = (int (*)(int, void *, void *, void *, struct timeval *))original;
    struct timeval tv;
    if (!rated() || !fetch(&tv, timeout, sizeof tv) || tv.tv_sec < 0 || tv.tv_usec < 0 || tv.tv_usec >= 1000000)
        return f(nfds, readfds, writefds, exceptfds, timeout);
    tv = timeval_duration(tv, 1);
    int r = f(nfds, readfds, writefds, exceptfds, &tv);
    int saved = errno;
    *(struct timeval *)timeout = tv.tv_sec || tv.tv_usec ? timeval_duration(tv, 0) : tv;
    errno = saved;
    return r;
}

/* An itimerval (setitimer's) divided by the rate (to_real) or multiplied back; zeros stay zeros. */
static void itimerval_scale(struct itimerval *it, int to_real)
{
    if (it->it_value.tv_sec || it->it_value.tv_usec) it->it_value = timeval_duration(it->it_value, to_real);
    if (it->it_interval.tv_sec || it->it_interval.tv_usec) it->it_interval = timeval_duration(it->it_interval, to_real);
}

static int valid_timeval(const struct timeval *tv) { return tv->tv_sec >= 0 && tv->tv_usec >= 0 && tv->tv_usec < 1000000; }

int mrh_faked_setitimer(void *original, int which, const void *value, void *old)
{
    int (*f)(int, const struct itimerval *, struct itimerval *) =
        (int (*)(int, const struct itimerval *, struct itimerval *))original;
    struct itimerval real;   /* ITIMER_VIRTUAL and ITIMER_PROF count CPU time: never scaled */
    if (!rated() || which != ITIMER_REAL || !fetch(&real, value, sizeof real) || !valid_timeval(&real.it_value) ||
        !valid_timeval(&real.it_interval))
        return f(which, value, old);
    itimerval_scale(&real, 1);
    int r = f(which, &real, old);
    if (r == 0 && old) itimerval_scale(old, 0);
    return r;
}

int mrh_faked_getitimer(void *original, int which, void *value)
{
    int r = ((int (*)(int, void *))original)(which, value);
    if (r == 0 && value && rated() && which == ITIMER_REAL) itimerval_scale(value, 0);
    return r;
}

/* alarm and ualarm through setitimer, scaled: the originals take whole seconds (or microseconds), which a
 * rate would round (libfaketime's alarm(2) under x7 is alarm(0): no alarm at all). */
static struct timeval alarm_scaled(struct timeval value, struct timeval interval)
{
    int (*f)(int, const struct itimerval *, struct itimerval *) =
        (int (*)(int, const struct itimerval *, struct itimerval *))own(&real_setitimer_fn, "setitimer");
    struct itimerval it = {interval, value}, old = {{0, 0}, {0, 0}};
    itimerval_scale(&it, 1);
    if (f && f(ITIMER_REAL, &it, &old) == 0) itimerval_scale(&old, 0);
    return old.it_value;
}

unsigned int mrh_faked_alarm(void *original, unsigned int seconds)
{
    if (!rated()) return ((unsigned int (*)(unsigned int))original)(seconds);
    struct timeval old = alarm_scaled((struct timeval){seconds, 0}, (struct timeval){0, 0});
    /* as glibc's alarm: rounded to the nearest second, never 0 for an alarm still set */
    return (unsigned int)old.tv_sec + (old.tv_usec >= 500000 || (old.tv_sec == 0 && old.tv_usec > 0));
}

unsigned int mrh_faked_ualarm(void *original, unsigned int usec, unsigned int interval)
{
    if (!rated()) return ((unsigned int (*)(unsigned int, unsigned int))original)(usec, interval);
    struct timeval old = alarm_scaled((struct timeval){usec / 1000000, usec % 1000000},
                                      (struct timeval){interval / 1000000, interval % 1000000});
    return (unsigned int)(old.tv_sec * 1000000 + old.tv_usec);
}

/* ---- futexes through syscall() -------------------------------------------------------------------------- */

#ifndef FUTEX_LOCK_PI2
#define FUTEX_LOCK_PI2 13
#endif

/* What a futex operation's timeout (argument 4) is (futex(2)): FUTEX_WAIT's a duration; FUTEX_WAIT_BITSET's,
 * FUTEX_WAIT_REQUEUE_PI's and FUTEX_LOCK_PI2's a deadline on CLOCK_MONOTONIC, or CLOCK_REALTIME with
 * FUTEX_CLOCK_REALTIME; FUTEX_LOCK_PI's one on CLOCK_REALTIME; the other operations' no time. */
static const void *real_futex_timeout(long op, const void *timeout, struct timespec *real)
{
    int clock = op & FUTEX_CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC;
    switch (op & FUTEX_CMD_MASK) {
    case FUTEX_WAIT: return real_duration(CLOCK_MONOTONIC, timeout, real);
    case FUTEX_WAIT_BITSET: case FUTEX_WAIT_REQUEUE_PI: case FUTEX_LOCK_PI2:
        return real_deadline(clock, timeout, real);
    case FUTEX_LOCK_PI: return real_deadline(CLOCK_REALTIME, timeout, real);
    default: return timeout;
    }
}

long mrh_faked_syscall(void *original, long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
    struct timespec real;
    if (number == SYS_futex && a4) a4 = (long)(uintptr_t)real_futex_timeout(a2, (const void *)(uintptr_t)a4, &real);
#ifdef SYS_futex_waitv
    else if (number == SYS_futex_waitv && a4)   /* (waiters, count, flags, deadline, clock) */
        a4 = (long)(uintptr_t)real_deadline((int)a5, (const void *)(uintptr_t)a4, &real);
#endif
    return ((long (*)(long, ...))original)(number, a1, a2, a3, a4, a5, a6);
}

/* ---- timers ---------------------------------------------------------------------------------------------- */

/* The clock of each POSIX timer this process made, for timer_settime (only its clock says whether an
 * absolute time is fake). Lock-free, so a signal handler may set a timer: a slot is claimed (0 -> CLAIMED),
 * its clock written, then its key published; removed by a CAS back to 0. Timers don't survive fork or exec.
 * A process with more than TIMERS timers at once gets unknown clocks for the rest (relative times still scale;
 * absolute ones are left as given). */
#define TIMERS 256
#define CLAIMED UINTPTR_MAX
static struct { uintptr_t key; int clock; } timers[TIMERS];   /* key: the timer_t + 1; 0: free */
static int timers_used;   /* the table was written (a fork child then clears it) */

static void timer_remember(void *timer, int clock)
{
    __atomic_store_n(&timers_used, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < TIMERS; i++) {
        uintptr_t expected = 0;
        if (__atomic_compare_exchange_n(&timers[i].key, &expected, CLAIMED, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            timers[i].clock = clock;
            __atomic_store_n(&timers[i].key, (uintptr_t)timer + 1, __ATOMIC_RELEASE);
            return;
        }
    }
}

static int timer_clock(void *timer)
{
    for (int i = 0; i < TIMERS; i++)
        if (__atomic_load_n(&timers[i].key, __ATOMIC_ACQUIRE) == (uintptr_t)timer + 1) return timers[i].clock;
    return UNKNOWN_CLOCK;
}

static void timer_forget(void *timer)
{
    for (int i = 0; i < TIMERS; i++) {
        uintptr_t expected = (uintptr_t)timer + 1;
        if (__atomic_compare_exchange_n(&timers[i].key, &expected, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) return;
    }
}

int mrh_faked_timer_create(void *original, int clock, void *event, void *timer)
{
    int r = ((int (*)(clockid_t, void *, void *))original)(clock, event, timer);
    if (r == 0 && timer) timer_remember(*(void **)timer, clock);
    return r;
}

int mrh_faked_timer_delete(void *original, void *timer)
{
    timer_forget(timer);   /* first: once deleted, its id may be another thread's new timer */
    return ((int (*)(void *))original)(timer);
}

/* The clock of a timerfd, from /proc/self/fdinfo/FD ("clockid: N"); -1 if it can't be read. */
static int timerfd_clock(int fd)
{
    char path[40] = "/proc/self/fdinfo/", digits[12], text[512];
    int n = 0, len = 18;
    unsigned u = (unsigned)fd;
    do digits[n++] = (char)('0' + u % 10); while ((u /= 10) && n < 11);
    while (n) path[len++] = digits[--n];
    path[len] = 0;
    int saved = errno, clock = -1;
    mrh_tls.depth++;   /* open, read, close, strstr: the runtime's own calls */
    int pfd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got = pfd >= 0 ? read(pfd, text, sizeof text - 1) : -1;
    if (pfd >= 0) close(pfd);
    const char *at = NULL;
    if (got > 0) {
        text[got] = 0;
        at = strstr(text, "clockid:");
    }
    mrh_tls.depth--;
    errno = saved;
    if (!at) return -1;
    for (at += 8; *at == ' ' || *at == '\t'; at++) {}
    for (clock = 0; *at >= '0' && *at <= '9'; at++) clock = clock * 10 + (*at - '0');
    return clock;
}

/* What to pass on for a timer setting (timer_settime, timerfd_settime) on `clock` (maybe unknown): an absolute
 * time on a realtime clock made real; under a rate, relative times and the interval divided by it. */
static const struct itimerspec *real_setting(int clock, int absolute, const void *value, struct itimerspec *real)
{
    int translate = absolute && faked_clock(clock), scale = rated() && !cpu_clock(clock);
    if ((!translate && !scale) || !fetch(real, value, sizeof *real) || !valid(&real->it_value) ||
        !valid(&real->it_interval) || real->it_value.tv_sec < 0 || real->it_interval.tv_sec < 0)
        return value;
    if (!is_zero(&real->it_value)) {   /* zero disarms: left so */
        if (translate) {
            real->it_value = real_instant(clock, real->it_value);
        } else if (!absolute) {
            real->it_value = duration(real->it_value, 1);
        }
    }
    if (scale) real->it_interval = duration(real->it_interval, 1);
    return real;
}

static void itimerspec_back(void *value)   /* what the kernel says is left (relative), in fake time */
{
    struct itimerspec *its = value;
    if (!its) return;
    scale_back(&its->it_value);
    scale_back(&its->it_interval);
}

int mrh_faked_timer_settime(void *original, void *timer, int flags, const void *value, void *old)
{
    int (*f)(void *, int, const struct itimerspec *, void *) = (int (*)(void *, int, const struct itimerspec *, void *))original;
    if (!(flags & TIMER_ABSTIME) && !rated()) return f(timer, flags, value, old);   /* nothing to change */
    int clock = timer_clock(timer);
    struct itimerspec real;
    int r = f(timer, flags, real_setting(clock, flags & TIMER_ABSTIME, value, &real), old);
    if (r == 0 && rated() && !cpu_clock(clock)) itimerspec_back(old);
    return r;
}

int mrh_faked_timerfd_settime(void *original, int fd, int flags, const void *value, void *old)
{
    /* the clock matters only for an absolute time (every timerfd clock tells elapsed time, none CPU time) */
    int clock = flags & TFD_TIMER_ABSTIME ? timerfd_clock(fd) : CLOCK_MONOTONIC;
    struct itimerspec real;
    const struct itimerspec *pass = real_setting(clock, flags & TFD_TIMER_ABSTIME, value, &real);
    int r = ((int (*)(int, int, const struct itimerspec *, void *))original)(fd, flags, pass, old);
    if (r == 0 && rated()) itimerspec_back(old);
    return r;
}

int mrh_faked_timer_gettime(void *original, void *timer, void *value)
{
    int r = ((int (*)(void *, void *))original)(timer, value);
    if (r == 0 && rated() && !cpu_clock(timer_clock(timer))) itimerspec_back(value);
    return r;
}

int mrh_faked_timerfd_gettime(void *original, int fd, void *value)
{
    int r = ((int (*)(int, void *))original)(fd, value);
    if (r == 0 && rated()) itimerspec_back(value);
    return r;
}

/* ---- fork ------------------------------------------------------------------------------------------------ */

static void faketime_fork_child(void)   /* a child has no timers */
{
    if (timers_used)
        for (int i = 0; i < TIMERS; i++) timers[i].key = 0;   /* a loop: memset may be a traced entry point */
}

__attribute__((constructor)) static void faketime_init(void) { mrh_atfork(NULL, NULL, faketime_fork_child); }

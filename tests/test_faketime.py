"""--fake-time on real C programs, side by side with libfaketime (`faketime`, the reference) where it has the
behaviour: every realtime reader on the same second, timed waits on a fake deadline, rates, dates past 2262.
Every run has a timeout, and the programs a watchdog."""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from helpers import RUN_TIMEOUT, WATCHDOG_C, scaled

from mrhooker import testing

# libfaketime itself, preloaded as its `faketime` wrapper preloads it (Debian's faketime package ships both)
FAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") +
                            glob.glob("/usr/lib/faketime/libfaketime.so.1"))), None) if shutil.which("faketime") else None
needs_faketime = pytest.mark.skipif(FAKETIME is None, reason="libfaketime's faketime is not installed")


def trace(mrhooker, *args, **kwargs):
    kwargs.setdefault("timeout", RUN_TIMEOUT)
    return mrhooker("trace", *args, **kwargs)


def faketime(spec, argv):
    """The same program under libfaketime: what `faketime -f SPEC` does for one process (FAKETIME=SPEC, the
    library preloaded), without the wrapper, which names a semaphore after its own pid and refuses to run when a
    killed faketime left one of that name in /dev/shm."""
    env = dict(os.environ, FAKETIME=spec, LD_PRELOAD=FAKETIME)
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT, env=env)


# ---- readers -------------------------------------------------------------------------------------------

READERS_C = r'''
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/time.h>
#include <sys/timeb.h>
#include <sys/timex.h>
#include <time.h>
int main(void)
{
    struct timespec rt, coarse, tai, ts;
    struct timeval tv;
    struct timeb tb;
    struct ntptimeval ntv;
    time_t t = time(NULL);
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_REALTIME_COARSE, &coarse);
    clock_gettime(CLOCK_TAI, &tai);
    gettimeofday(&tv, NULL);
    ftime(&tb);
    timespec_get(&ts, TIME_UTC);
    ntp_gettime(&ntv);
    printf("time=%lld realtime=%lld coarse=%lld gettimeofday=%lld ftime=%lld timespec_get=%lld ntp_gettime=%lld "
           "tai-realtime=%lld\n", (long long)t, (long long)rt.tv_sec, (long long)coarse.tv_sec, (long long)tv.tv_sec,
           (long long)tb.time, (long long)ts.tv_sec, (long long)ntv.time.tv_sec, (long long)(tai.tv_sec - rt.tv_sec));
    struct tm tm;
    gmtime_r(&t, &tm);
    printf("%d\n", tm.tm_year + 1900);
    return 0;
}
'''


def readings(out):
    return dict((k, int(v)) for k, v in re.findall(r"([\w-]+)=(-?\d+)", out))


def test_every_realtime_reader_shows_the_same_second(mrhooker, cprog):
    """time() read CLOCK_REALTIME_COARSE, a tick behind: at 2000-01-01 00:00:00 it said 946684799 (1999) while
    clock_gettime said 946684800, and ftime was not faked at all. The bug is a race with the tick: five runs."""
    prog = cprog(READERS_C, flags=["-w"])
    real_tai = readings(subprocess.run([prog], stdout=subprocess.PIPE, timeout=RUN_TIMEOUT).stdout.decode())
    for _ in range(5):
        r = trace(mrhooker, "-q", "--fake-time", "2000-01-01 00:00:00", prog)
        assert r.returncode == 0, r
        seen = readings(r.out)
        tai = seen.pop("tai-realtime")
        # the same second everywhere: the first, or (the program slow to reach its readers on a loaded machine)
        # the next; never the one before
        assert set(seen.values()) in ({946684800}, {946684801}), r.out
        assert abs(tai - real_tai["tai-realtime"]) <= 1 and r.out.endswith("\n2000\n"), r.out   # TAI keeps its offset


@needs_faketime
def test_readers_agree_with_libfaketime(mrhooker, cprog):
    """The readers libfaketime 0.9.10 fakes (not ntp_gettime; and its CLOCK_REALTIME_COARSE may show the second
    before, as our time() did)."""
    prog = cprog(READERS_C, flags=["-w"])
    for spec in ("2000-01-01 00:00:00", "2009-02-13 23:31:30"):
        ours = readings(trace(mrhooker, "-q", "--fake-time", spec, prog).out)
        theirs = readings(faketime("@" + spec, [prog]).stdout.decode())
        both = ("time", "realtime", "gettimeofday", "ftime", "timespec_get", "tai-realtime")
        assert {k: ours[k] for k in both} == {k: theirs[k] for k in both}, (spec, ours, theirs)


def test_the_year_from_time_under_the_pytest_pattern(base_env, cprog):
    """README's pattern: mrhooker.testing.run(..., fake_time=...) and the year a program prints from time()."""
    prog = cprog(READERS_C, flags=["-w"])
    for _ in range(3):
        r = testing.run([prog], fake_time="2000-01-01", env=base_env, timeout=RUN_TIMEOUT)
        assert r.returncode == 0 and r.out.splitlines()[-1] == "2000", r.out
        assert [c.ret for c in r.calls("time")] == [946684800], r.calls("time")


HANDLER_TIME_C = WATCHDOG_C + r'''
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static volatile long seen;
static void on_alarm(int sig) { (void)sig; seen = (long)time(NULL); }
int main(void)
{
    start_watchdog(30);
    signal(SIGALRM, on_alarm);
    alarm(1);
    while (!seen) pause();
    printf("%ld\n", seen);
    return 0;
}
'''


def test_a_signal_handler_sees_the_fake_time(mrhooker, cprog):
    """Calls from a signal handler are not recorded (the runtime keeps out of handlers), but they are faked."""
    r = trace(mrhooker, "-q", "--fake-time", "@1000000000", cprog(HANDLER_TIME_C, flags=["-pthread"]))
    assert r.returncode == 0 and 1000000000 <= int(r.out) <= 1000000010, r


# ---- dates ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("date, shown", [("2300-01-01 00:00:00", "2300-01-01 00:00"),
                                          ("9999-12-31 23:00:00", "9999-12-31 23:00"),
                                          ("1000-06-01 00:00:00", "1000-06-01 00:00"), ("@-60", "1969-12-31 23:59")])
def test_dates_past_2262_and_before_1677(mrhooker, date, shown):
    """64-bit nanoseconds end in 2262: 2300-01-01 showed 1715, 9999-12-31 showed 1816. Seconds and nanoseconds
    apart, every date a 64-bit time_t holds works; libfaketime agrees."""
    r = trace(mrhooker, "-q", "--fake-time", date, "date", "-u", "+%Y-%m-%d %H:%M")
    assert r.returncode == 0 and r.out == shown + "\n", (date, r)
    if FAKETIME and date[0] != "@":
        theirs = faketime("@" + date, ["date", "-u", "+%Y-%m-%d %H:%M"])
        assert theirs.stdout.decode() == r.out, (date, theirs)


def test_a_date_no_time_t_holds_is_one_line(mrhooker):
    for spec in ("@99999999999999999999", "+" + "9" * 30 + "d", "@-99999999999999999999"):
        r = trace(mrhooker, "-q", "--fake-time=" + spec, "true")
        assert r.returncode == 2 and len(r.err.splitlines()) == 1, (spec, r)
        assert r.err.startswith("mrhooker: bad --fake-time") and "64-bit time_t" in r.err, (spec, r)


# ---- waits ----------------------------------------------------------------------------------------------

# Each mode waits WAIT fake milliseconds for something that never comes: until a deadline computed from the
# fake clock (absolute), or for a duration (relative); prints "mode result real-ms fake-ms": real ms measured by
# times() (real under both tools), fake ms by CLOCK_MONOTONIC (which runs at the rate under a rate).
WAITS_C = "#define _GNU_SOURCE\n" + WATCHDOG_C + r'''
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/times.h>
#include <threads.h>
#include <time.h>

static long wait_ms;
static struct timespec deadline(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_nsec -= 1000000000, ts.tv_sec++;
    return ts;
}
static struct timespec rel(void) { struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000}; return ts; }
static double mono(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6; }
static double real_ms(void) { struct tms t; return times(&t) * 1e3 / sysconf(_SC_CLK_TCK); }

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static mtx_t cmtx;
static int pipefd[2];
static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held);
    pthread_rwlock_wrlock(&rw);
    mtx_lock(&cmtx);
    char c;
    (void)!read(pipefd[0], &c, 1);   /* never returns: a thread to wait for */
    return NULL;
}
static void on_alarm(int s) { (void)s; }

static long run(const char *mode, pthread_t th)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    sem_t sem;
    sem_init(&sem, 0, 0);
    struct timespec d;
    if (!strcmp(mode, "pthread_cond_timedwait")) { d = deadline(CLOCK_REALTIME); pthread_mutex_lock(&m); return pthread_cond_timedwait(&c, &m, &d); }
    if (!strcmp(mode, "monotonic_cond")) {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&c, &a);
        d = deadline(CLOCK_MONOTONIC);
        pthread_mutex_lock(&m);
        return pthread_cond_timedwait(&c, &m, &d);
    }
    if (!strcmp(mode, "monotonic_clock_nanosleep_abs")) { d = deadline(CLOCK_MONOTONIC); return clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL); }
    if (!strcmp(mode, "monotonic_sem_clockwait")) { d = deadline(CLOCK_MONOTONIC); return sem_clockwait(&sem, CLOCK_MONOTONIC, &d) ? errno : 0; }
    if (!strcmp(mode, "futex_bitset") || !strcmp(mode, "futex_bitset_realtime")) {   /* Rust's std waits so */
        static int word;
        int realtime = !strcmp(mode, "futex_bitset_realtime");
        d = deadline(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC);
        return syscall(SYS_futex, &word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG | (realtime ? FUTEX_CLOCK_REALTIME : 0),
                       0, &d, NULL, FUTEX_BITSET_MATCH_ANY) ? errno : 0;
    }
    if (!strcmp(mode, "futex_wait")) {
        static int word;
        d = rel();
        return syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &d, NULL, 0) ? errno : 0;
    }
    if (!strcmp(mode, "pthread_cond_clockwait")) { d = deadline(CLOCK_REALTIME); pthread_mutex_lock(&m); return pthread_cond_clockwait(&c, &m, CLOCK_REALTIME, &d); }
    if (!strcmp(mode, "sem_timedwait")) { d = deadline(CLOCK_REALTIME); return sem_timedwait(&sem, &d) ? errno : 0; }
    if (!strcmp(mode, "sem_clockwait")) { d = deadline(CLOCK_REALTIME); return sem_clockwait(&sem, CLOCK_REALTIME, &d) ? errno : 0; }
    if (!strcmp(mode, "pthread_mutex_timedlock")) { d = deadline(CLOCK_REALTIME); return pthread_mutex_timedlock(&held, &d); }
    if (!strcmp(mode, "pthread_mutex_clocklock")) { d = deadline(CLOCK_REALTIME); return pthread_mutex_clocklock(&held, CLOCK_REALTIME, &d); }
    if (!strcmp(mode, "pthread_rwlock_timedrdlock")) { d = deadline(CLOCK_REALTIME); return pthread_rwlock_timedrdlock(&rw, &d); }
    if (!strcmp(mode, "pthread_rwlock_timedwrlock")) { d = deadline(CLOCK_REALTIME); return pthread_rwlock_timedwrlock(&rw, &d); }
    if (!strcmp(mode, "pthread_rwlock_clockrdlock")) { d = deadline(CLOCK_REALTIME); return pthread_rwlock_clockrdlock(&rw, CLOCK_REALTIME, &d); }
    if (!strcmp(mode, "pthread_rwlock_clockwrlock")) { d = deadline(CLOCK_REALTIME); return pthread_rwlock_clockwrlock(&rw, CLOCK_REALTIME, &d); }
    if (!strcmp(mode, "pthread_timedjoin_np")) { d = deadline(CLOCK_REALTIME); return pthread_timedjoin_np(th, NULL, &d); }
    if (!strcmp(mode, "pthread_clockjoin_np")) { d = deadline(CLOCK_REALTIME); return pthread_clockjoin_np(th, NULL, CLOCK_REALTIME, &d); }
    if (!strcmp(mode, "cnd_timedwait")) {
        cnd_t cv;
        mtx_t mm;
        cnd_init(&cv);
        mtx_init(&mm, mtx_plain);
        mtx_lock(&mm);
        d = deadline(CLOCK_REALTIME);
        return cnd_timedwait(&cv, &mm, &d) == thrd_timedout ? ETIMEDOUT : -1;
    }
    if (!strcmp(mode, "mtx_timedlock")) { d = deadline(CLOCK_REALTIME); return mtx_timedlock(&cmtx, &d) == thrd_timedout ? ETIMEDOUT : -1; }
    if (!strcmp(mode, "clock_nanosleep_abs")) { d = deadline(CLOCK_REALTIME); return clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &d, NULL); }
    if (!strcmp(mode, "mq_timedreceive") || !strcmp(mode, "mq_timedsend")) {
        char name[64], buf[16] = "x";
        snprintf(name, sizeof name, "/mrhooker-test-%d", getpid());
        struct mq_attr at = {0, 1, 16, 0};
        mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &at);
        mq_unlink(name);
        if (q == (mqd_t)-1) return -2;
        long r;
        if (!strcmp(mode, "mq_timedsend")) {
            mq_send(q, buf, 1, 0);
            d = deadline(CLOCK_REALTIME);
            r = mq_timedsend(q, buf, 1, 0, &d) ? errno : 0;
        } else {
            d = deadline(CLOCK_REALTIME);
            r = mq_timedreceive(q, buf, sizeof buf, NULL, &d) < 0 ? errno : 0;
        }
        mq_close(q);
        return r;
    }
    if (!strcmp(mode, "timer_settime_abs") || !strcmp(mode, "timer_settime") || !strcmp(mode, "monotonic_timer_abs")) {
        clockid_t clock = !strcmp(mode, "monotonic_timer_abs") ? CLOCK_MONOTONIC : CLOCK_REALTIME;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        struct sigevent ev;
        memset(&ev, 0, sizeof ev);
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = SIGUSR1;
        timer_t tid;
        if (timer_create(clock, &ev, &tid)) return -2;
        int abs = strcmp(mode, "timer_settime") != 0;
        struct itimerspec its = {{0, 0}, abs ? deadline(clock) : rel()};
        long r = timer_settime(tid, abs ? TIMER_ABSTIME : 0, &its, NULL);
        int sig;
        sigwait(&set, &sig);
        timer_delete(tid);
        return r;
    }
    if (!strcmp(mode, "timerfd_settime_abs") || !strcmp(mode, "timerfd_settime") || !strcmp(mode, "monotonic_timerfd_abs")) {
        clockid_t clock = !strcmp(mode, "monotonic_timerfd_abs") ? CLOCK_MONOTONIC : CLOCK_REALTIME;
        int fd = timerfd_create(clock, TFD_CLOEXEC);
        int abs = strcmp(mode, "timerfd_settime") != 0;
        struct itimerspec its = {{0, 0}, abs ? deadline(clock) : rel()};
        long r = timerfd_settime(fd, abs ? TFD_TIMER_ABSTIME : 0, &its, NULL);
        unsigned long long n;
        (void)!read(fd, &n, sizeof n);
        close(fd);
        return r;
    }
    if (!strcmp(mode, "nanosleep")) { d = rel(); return nanosleep(&d, NULL); }
    if (!strcmp(mode, "clock_nanosleep")) { d = rel(); return clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL); }
    if (!strcmp(mode, "thrd_sleep")) { d = rel(); return thrd_sleep(&d, NULL); }
    if (!strcmp(mode, "usleep")) return usleep(wait_ms * 1000);
    if (!strcmp(mode, "sleep")) return sleep(wait_ms / 1000);
    if (!strcmp(mode, "poll")) return poll(NULL, 0, wait_ms);
    if (!strcmp(mode, "ppoll")) { d = rel(); return ppoll(NULL, 0, &d, NULL); }
    if (!strcmp(mode, "select")) { struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000}; return select(0, NULL, NULL, NULL, &tv); }
    if (!strcmp(mode, "pselect")) { d = rel(); return pselect(0, NULL, NULL, NULL, &d, NULL); }
    if (!strcmp(mode, "epoll_wait") || !strcmp(mode, "epoll_pwait") || !strcmp(mode, "epoll_pwait2")) {
        int e = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev;
        d = rel();
        long r = !strcmp(mode, "epoll_wait") ? epoll_wait(e, &ev, 1, wait_ms) : !strcmp(mode, "epoll_pwait")
                 ? epoll_pwait(e, &ev, 1, wait_ms, NULL) : epoll_pwait2(e, &ev, 1, &d, NULL);
        close(e);
        return r;
    }
    if (!strcmp(mode, "sigtimedwait")) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR2);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        d = rel();
        return sigtimedwait(&set, NULL, &d) < 0 ? errno : 0;
    }
    if (!strcmp(mode, "alarm")) { alarm(wait_ms / 1000); pause(); return 0; }
    if (!strcmp(mode, "ualarm")) { ualarm(wait_ms * 1000, 0); pause(); return 0; }
    if (!strcmp(mode, "setitimer")) {
        struct itimerval it = {{0, 0}, {wait_ms / 1000, (wait_ms % 1000) * 1000}};
        long r = setitimer(ITIMER_REAL, &it, NULL);
        pause();
        return r;
    }
    return -3;
}

int main(int argc, char **argv)
{
    start_watchdog(600);   /* its sleep() is the program's: 60 real seconds under x10 */
    wait_ms = atol(argv[1]);
    mtx_init(&cmtx, mtx_timed);
    if (pipe(pipefd)) return 3;
    pthread_t th;
    pthread_create(&th, NULL, holder, NULL);
    struct timespec settle = {0, 50000000};
    nanosleep(&settle, NULL);   /* the holder holds its locks */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    for (int i = 2; i < argc; i++) {
        double t0 = real_ms(), f0 = mono();
        long r = run(argv[i], th);
        printf("%s %ld %.0f %.0f\n", argv[i], r, real_ms() - t0, mono() - f0);
        fflush(stdout);
    }
    return 0;
}
'''

# The absolute waits (a deadline on CLOCK_REALTIME), and what each returns when it times out.
ABSOLUTE = {"pthread_cond_timedwait": 110, "pthread_cond_clockwait": 110, "sem_timedwait": 110,
            "sem_clockwait": 110, "pthread_mutex_timedlock": 110, "pthread_mutex_clocklock": 110,
            "pthread_rwlock_timedrdlock": 110, "pthread_rwlock_timedwrlock": 110, "pthread_rwlock_clockrdlock": 110,
            "pthread_rwlock_clockwrlock": 110, "pthread_timedjoin_np": 110, "pthread_clockjoin_np": 110,
            "cnd_timedwait": 110, "mtx_timedlock": 110, "clock_nanosleep_abs": 0, "mq_timedreceive": 110,
            "mq_timedsend": 110, "timer_settime_abs": 0, "timerfd_settime_abs": 0, "futex_bitset_realtime": 110}
RELATIVE = {"nanosleep": 0, "clock_nanosleep": 0, "thrd_sleep": 0, "usleep": 0, "sleep": 0, "poll": 0, "ppoll": 0,
            "select": 0, "pselect": 0, "epoll_wait": 0, "epoll_pwait": 0, "epoll_pwait2": 0, "sigtimedwait": 11,
            "alarm": 0, "ualarm": 0, "setitimer": 0, "timer_settime": 0, "timerfd_settime": 0, "futex_wait": 110}
# Deadlines on CLOCK_MONOTONIC: real without a rate; under one the clock runs at the rate, and so do they.
MONOTONIC = {"monotonic_cond": 110, "monotonic_clock_nanosleep_abs": 0, "monotonic_sem_clockwait": 110,
             "monotonic_timerfd_abs": 0, "monotonic_timer_abs": 0, "futex_bitset": 110}
# What libfaketime 0.9.10 translates too (the rest it doesn't: they hang under +1d, or don't wait under a past
# date; or, under a rate, wait the full time).
LIBFAKETIME_ABSOLUTE = ("pthread_cond_timedwait", "sem_timedwait", "clock_nanosleep_abs", "timerfd_settime_abs",
                        "monotonic_cond")
LIBFAKETIME_RATED = ("nanosleep", "clock_nanosleep", "usleep", "sleep", "poll", "ppoll", "select", "pselect",
                     "epoll_wait", "epoll_pwait", "timerfd_settime", "pthread_cond_timedwait", "clock_nanosleep_abs",
                     "timerfd_settime_abs", "monotonic_cond", "monotonic_clock_nanosleep_abs")


def waited(out, fake=False):
    """{mode: (result, real ms)} from the program's lines; fake: the ms its CLOCK_MONOTONIC measured instead."""
    return {mode: (int(r), float(fake_ms if fake else ms))
            for mode, r, ms, fake_ms in (line.split() for line in out.splitlines())}


def assert_waited(seen, modes, low, high, what):
    assert set(seen) == set(modes), (what, seen)
    for mode, expected in modes.items():
        result, ms = seen[mode]
        # the machine is loaded: the lower bound is what matters (a wait cut short), the upper one catches a
        # wait of the deadline's whole distance (a day) or of the unscaled time
        assert result == expected and low <= ms <= high, (what, mode, result, ms)


@pytest.mark.parametrize("spec", ["+1d", "2000-01-01 00:00:00"])
def test_timed_waits_on_a_fake_deadline_wait_the_intended_time(mrhooker, cprog, spec):
    """A deadline computed from the fake clock: under +1d they waited a day (hung), under a past date not at
    all. Each waits 300 ms; the relative ones are untouched (no rate: not even traced)."""
    prog = cprog(WAITS_C, flags=["-pthread", "-lrt"])
    modes = dict(ABSOLUTE, nanosleep=0, poll=0, **MONOTONIC)
    r = trace(mrhooker, "-q", "--fake-time", spec, prog, "300", *modes)
    assert r.returncode == 0, r
    assert_waited(waited(r.out), modes, 250, 3000, spec)


@needs_faketime
def test_timed_waits_agree_with_libfaketime_where_it_translates(mrhooker, cprog):
    prog = cprog(WAITS_C, flags=["-pthread", "-lrt"])
    modes = {m: ABSOLUTE.get(m, 110) for m in LIBFAKETIME_ABSOLUTE}
    for spec in ("+1d", "@2000-01-01 00:00:00"):
        theirs = faketime(spec, [prog, "300"] + list(modes))
        assert theirs.returncode == 0, theirs
        assert_waited(waited(theirs.stdout.decode()), modes, 250, 3000, "libfaketime " + spec)
        ours = trace(mrhooker, "-q", "--fake-time", spec.lstrip("@"), prog, "300", *modes)
        assert ours.returncode == 0, ours
        assert_waited(waited(ours.out), modes, 250, 3000, spec)


def test_a_rate_divides_every_wait(mrhooker, cprog):
    """x10: 2 fake seconds are 200 real ms, for deadlines and durations alike, and the program's monotonic clock
    says 2 s passed. A deadline on CLOCK_MONOTONIC (Python's time.sleep) waited its 2 real seconds while the wall
    clock moved 20: the monotonic clock now runs at the rate too."""
    prog = cprog(WAITS_C, flags=["-pthread", "-lrt"])
    modes = dict(ABSOLUTE, **RELATIVE, **MONOTONIC)
    r = trace(mrhooker, "-q", "--fake-time", "+1d x10", prog, "2000", *modes, timeout=scaled(120))
    assert r.returncode == 0, r
    assert_waited(waited(r.out), modes, 180, 1500, "x10")
    assert_waited(waited(r.out, fake=True), modes, 1800, 15000, "x10, as the program measured it")


@needs_faketime
def test_a_rate_divides_waits_as_libfaketime_does(mrhooker, cprog):
    """The waits libfaketime scales, side by side: the real time each takes, and the time the program's
    monotonic clock says it took."""
    prog = cprog(WAITS_C, flags=["-pthread", "-lrt"])
    modes = {m: dict(ABSOLUTE, **RELATIVE, **MONOTONIC)[m] for m in LIBFAKETIME_RATED}
    theirs = faketime("+0 x10", [prog, "2000"] + list(modes))
    ours = trace(mrhooker, "-q", "--fake-time", "+0 x10", prog, "2000", *modes, timeout=scaled(120))
    assert theirs.returncode == 0 and ours.returncode == 0, (theirs, ours)
    for who, out in (("libfaketime", theirs.stdout.decode()), ("mrhooker", ours.out)):
        # times only: libfaketime's sleep() returns garbage under a rate (an uninitialised remaining time)
        real = {m: (modes[m], ms) for m, (_r, ms) in waited(out).items()}
        fake = {m: (modes[m], ms) for m, (_r, ms) in waited(out, fake=True).items()}
        assert_waited(real, modes, 180, 1500, who + " x10")
        assert_waited(fake, modes, 1800, 15000, who + " x10, as the program measured it")


REMAINING_C = WATCHDOG_C + r'''
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
static void on_alarm(int s) { (void)s; }
int main(void)
{
    start_watchdog(300);   /* its sleep() is the program's: 30 real seconds under x10 */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    /* interrupted after 1 fake second of 10: 9 left, in fake time */
    struct itimerval it = {{0, 0}, {1, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec req = {10, 0}, rem = {0, 0};
    int r = nanosleep(&req, &rem);
    unsigned left = alarm(30);   /* 30 fake s from now: alarm() then says what is left of them */
    struct timespec t = {2, 0};
    nanosleep(&t, NULL);
    unsigned left2 = alarm(0);
    printf("%d %ld %u %u\n", r, (long)rem.tv_sec, left, left2);
    return 0;
}
'''


def test_remaining_times_are_fake_under_a_rate(mrhooker, cprog):
    r = trace(mrhooker, "-q", "--fake-time", "+0 x10", cprog(REMAINING_C, flags=["-pthread"]))
    assert r.returncode == 0, r
    rc, rem, left, left2 = r.out.split()
    assert rc == "-1" and 5 <= int(rem) <= 9 and left == "0" and 20 <= int(left2) <= 28, r.out   # unscaled: 30


def test_relative_waits_are_traced_only_with_a_rate(mrhooker):
    r = trace(mrhooker, "-v", "-q", "--fake-time", "+1d", "true")
    traced = re.search(r"tracing \d+ functions: (.*)", r.err).group(1).split()
    assert "clock_gettime" in traced and "pthread_cond_timedwait" in traced and "nanosleep" not in traced, traced
    r = trace(mrhooker, "-v", "-q", "--fake-time", "+1d x2", "true")
    traced = re.search(r"tracing \d+ functions: (.*)", r.err).group(1).split()
    assert "nanosleep" in traced and "poll" in traced, traced


SLEEPS_PY = r"""
import os, time
t, m, e = time.time(), time.monotonic(), os.times().elapsed
time.sleep(2)
print("%.2f %.2f %.2f" % (time.time() - t, time.monotonic() - m, os.times().elapsed - e))
"""


@pytest.mark.parametrize("tool", ["mrhooker", "libfaketime"])
def test_pythons_sleep_under_a_rate(mrhooker, tool):
    """Python's time.sleep(2) (3.11 on: clock_nanosleep on CLOCK_MONOTONIC until a deadline) under x10 took 2 real
    seconds while time.time() moved 20: now 0.2 s, and both clocks say 2 s passed, as under libfaketime."""
    if tool == "libfaketime" and FAKETIME is None:
        pytest.skip("libfaketime's faketime is not installed")
    argv = [sys.executable, "-c", SLEEPS_PY]
    if tool == "mrhooker":
        r = trace(mrhooker, "-q", "--fake-time", "+0 x10", *argv, timeout=scaled(60))
        out = r.out
    else:
        r = faketime("+0 x10", argv)
        out = r.stdout.decode()
    assert r.returncode == 0, (tool, r)
    wall, monotonic, real = map(float, out.split())   # real: times()'s elapsed time, which neither tool fakes
    # (a loaded machine wakes the sleep late: 10 real ms late is 100 fake ms at x10)
    assert 1.95 <= wall <= 4 and abs(wall - monotonic) <= 0.15 and real < 1.5, (tool, out)


ELAPSED_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
int main(void)
{
    const clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME};
    for (int i = 0; i < 4; i++) {
        struct timespec ts;
        clock_gettime(clocks[i], &ts);
        printf("%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
    }
    return 0;
}
"""


def test_each_elapsed_clock_runs_at_the_rate_from_its_own_reading(mrhooker, cprog):
    """Under a rate every elapsed clock ran from CLOCK_MONOTONIC's reading at the start: the raw clock's drift
    and the time the machine slept were multiplied by the rate (x1000000: CLOCK_MONOTONIC_RAW read negative, 120,000
    s behind CLOCK_MONOTONIC). Each now runs from its own reading: none behind where it really was before the
    start, none far from the others; the coarse one is read precisely (a tick times a rate is long)."""
    prog = cprog(ELAPSED_C)
    clocks = (time.CLOCK_MONOTONIC, time.CLOCK_MONOTONIC, time.CLOCK_MONOTONIC_RAW, time.CLOCK_BOOTTIME)
    before = [time.clock_gettime(c) for c in clocks]
    start = time.monotonic()
    r = trace(mrhooker, "-q", "--fake-time", "+0 x1000", prog)
    took = time.monotonic() - start
    assert r.returncode == 0, r
    seen = [float(x) for x in r.out.split()]
    for real, fake in zip(before, seen):
        assert real - 0.1 <= fake <= real + (took + 1) * 1000, (before, seen, took)
    assert seen[0] <= seen[1] < seen[0] + 60, seen   # the coarse clock read after the precise one: not a tick x1000 behind


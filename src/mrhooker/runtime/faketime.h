/* faketime.h (target side): --fake-time, the clock a traced program sees. faketime.c implements it.
 *
 * The program reads the realtime clocks and waits on them through libc; under --fake-time the traced entry
 * points of those functions (faults.FAKE_TIME names them and what each is) call mrh_faked_NAME(original,
 * arguments...) instead of the original: one small function per faked function, which calls the original
 * with translated arguments and translates its results. Hazards:
 * - Agreement: time() reads a coarse clock, up to a tick behind the precise one; faked apart, time() showed
 *   the second before clock_gettime's (1999 for a program started at 2000-01-01 00:00:00).
 *   Idea: one mapping of the precise CLOCK_REALTIME, fake = fake_anchor + (real - real_anchor) * rate, used by
 *   every reader; time() and CLOCK_REALTIME_COARSE read the precise clock, the others (gettimeofday, ftime,
 *   timespec_get, ntp_gettime, adjtimex) their own precise reading, truncated as they truncate it (the real
 *   anchor is a whole millisecond, so their truncation falls on the same second as the fake time's).
 *   CLOCK_TAI keeps its offset from CLOCK_REALTIME. CPU-time clocks stay real.
 * - Elapsed clocks under a rate: a program that times a wait on CLOCK_MONOTONIC (Python's time.sleep is an
 *   absolute clock_nanosleep on it) saw 2 s pass while its wall clock moved 20 s under x10, and waited 2 real
 *   seconds. Idea: with a rate, the elapsed clocks (monotonic, raw, boot time) run at it too, each from its own
 *   reading when the fake clock was set (in the header: every process of the trace agrees; one anchor for all
 *   multiplied the raw clock's drift and the time the machine slept by the rate), and their deadlines are
 *   mapped back like realtime ones; without a rate they stay real (a shift of the date is no reason to move
 *   them), and attached too (the detach would turn a monotonic clock back). libfaketime does the same for
 *   elapsed times.
 * - Waits past libc: Rust's std waits on a futex through syscall(SYS_futex, ...) with a deadline it computed
 *   from the (now fake) monotonic clock; unmapped, a wait of 2 s took 25 real seconds under x10, and spun under
 *   x0.5. Idea: syscall() is faked too, for the futex operations that take a time (and futex_waitv).
 * - Deadlines: a program that waits until "fake now + 1 s" on a realtime clock (pthread_cond_timedwait,
 *   sem_timedwait, clock_nanosleep(TIMER_ABSTIME), an absolute timer, ...) would wait a day under +1d, or not
 *   at all under a date in the past. Idea: the deadline is mapped back, real = real_anchor + (fake -
 *   fake_anchor) / rate, into a copy on the stack (the program's memory is never written), after reading it
 *   through the kernel (process_vm_readv), so that a pointer the original would refuse (EFAULT) is passed on
 *   untouched instead of crashing here. Only the faked clocks' deadlines are mapped: without a rate a condition
 *   variable set to CLOCK_MONOTONIC (glibc keeps its clock in bit 1 of __data.__wrefs), a monotonic clockwait,
 *   a timer's clock (remembered from timer_create, lock-free: timers never cross fork or exec) or a timerfd's
 *   (its /proc/self/fdinfo) that is not realtime leaves the deadline alone.
 * - Rates (x10): relative waits (nanosleep, sleep, poll, select, epoll_wait, alarm, relative timers, ...) are
 *   divided by the rate, as libfaketime does, and the remaining times they report multiplied back. Without a
 *   rate those functions are not even traced (faults.py), and their faked versions call the original as is.
 *   A relative wait on a CPU-time clock is never scaled.
 * - Numbers: fake dates run to the ends of a 64-bit time_t (year 292 billion), past the 64-bit nanoseconds of
 *   2262. Idea: seconds and nanoseconds apart, sums in __int128, saturating at the ends.
 * - The runtime's own calls (reading the clock for time(), /proc, nanosleep for sleep()) must not be recorded
 *   or faked. Idea: they call the originals by pointer (mrh_original), or raise the thread's depth.
 */
#ifndef MRHOOKER_FAKETIME_H
#define MRHOOKER_FAKETIME_H

#include "trace.h"

/* Is fake time on in this trace? */
#define MRH_FAKE_TIME() MRH_UNLIKELY(mrh_trace != NULL && mrh_trace->fake_time_on)
/* A call MRH_TRACE_ENTER does not record is faked too if it is the program's own, from its signal handler (not
 * the runtime's: those run one depth deeper), even as the process's first (the file is mapped then). */
#define MRH_FAKE_UNTRACED(t) MRH_UNLIKELY((t)->handler.frame != NULL && mrh_fake_in_handler((t), __builtin_return_address(0)))

#pragma GCC visibility push(hidden)
int mrh_fake_in_handler(mrh_thread *t, const void *caller);

/* Each takes the original and the function's arguments, with the types of the generated entry points (the
 * prototypes' ABI types: pointers as void *). */

/* readers: the real result, made fake */
long mrh_faked_time(void *original, void *tloc);
int mrh_faked_gettimeofday(void *original, void *tv, void *tz);
int mrh_faked_clock_gettime(void *original, int clock, void *ts);
int mrh_faked_timespec_get(void *original, void *ts, int base);
int mrh_faked_ftime(void *original, void *tb);
int mrh_faked_ntp_gettime(void *original, void *ntv);
int mrh_faked_ntp_gettimex(void *original, void *ntv);
int mrh_faked_adjtimex(void *original, void *tx);
int mrh_faked_clock_adjtime(void *original, int clock, void *tx);

/* absolute waits: a fake deadline made real */
int mrh_faked_pthread_cond_timedwait(void *original, void *cond, void *mutex, const void *abstime);
int mrh_faked_pthread_cond_clockwait(void *original, void *cond, void *mutex, int clock, const void *abstime);
int mrh_faked_sem_timedwait(void *original, void *sem, const void *abstime);
int mrh_faked_sem_clockwait(void *original, void *sem, int clock, const void *abstime);
int mrh_faked_pthread_mutex_timedlock(void *original, void *mutex, const void *abstime);
int mrh_faked_pthread_mutex_clocklock(void *original, void *mutex, int clock, const void *abstime);
int mrh_faked_pthread_rwlock_timedrdlock(void *original, void *rwlock, const void *abstime);
int mrh_faked_pthread_rwlock_timedwrlock(void *original, void *rwlock, const void *abstime);
int mrh_faked_pthread_rwlock_clockrdlock(void *original, void *rwlock, int clock, const void *abstime);
int mrh_faked_pthread_rwlock_clockwrlock(void *original, void *rwlock, int clock, const void *abstime);
int mrh_faked_pthread_timedjoin_np(void *original, unsigned long thread, void *ret, const void *abstime);
int mrh_faked_pthread_clockjoin_np(void *original, unsigned long thread, void *ret, int clock, const void *abstime);
int mrh_faked_mq_timedsend(void *original, int mq, const void *msg, unsigned long len, unsigned int prio,
                           const void *abstime);
long mrh_faked_mq_timedreceive(void *original, int mq, void *msg, unsigned long len, void *prio,
                               const void *abstime);
int mrh_faked_cnd_timedwait(void *original, void *cond, void *mutex, const void *abstime);
int mrh_faked_mtx_timedlock(void *original, void *mutex, const void *abstime);
/* syscall(): a futex wait's time (a deadline or a duration), futex_waitv's deadline; any other call as is */
long mrh_faked_syscall(void *original, long number, long a1, long a2, long a3, long a4, long a5, long a6);
/* absolute or relative */
int mrh_faked_clock_nanosleep(void *original, int clock, int flags, const void *req, void *rem);
int mrh_faked_timer_settime(void *original, void *timer, int flags, const void *value, void *old);
int mrh_faked_timerfd_settime(void *original, int fd, int flags, const void *value, void *old);
/* the clock of each timer, for timer_settime */
int mrh_faked_timer_create(void *original, int clock, void *event, void *timer);
int mrh_faked_timer_delete(void *original, void *timer);

/* relative waits, under a rate: divided by it; remaining times multiplied back */
int mrh_faked_nanosleep(void *original, const void *req, void *rem);
unsigned int mrh_faked_sleep(void *original, unsigned int seconds);
int mrh_faked_usleep(void *original, unsigned int usec);
int mrh_faked_thrd_sleep(void *original, const void *req, void *rem);
int mrh_faked_poll(void *original, void *fds, unsigned long nfds, int timeout);
int mrh_faked_ppoll(void *original, void *fds, unsigned long nfds, const void *timeout, const void *sigmask);
int mrh_faked_select(void *original, int nfds, void *readfds, void *writefds, void *exceptfds, void *timeout);
int mrh_faked_pselect(void *original, int nfds, void *readfds, void *writefds, void *exceptfds,
                      const void *timeout, const void *sigmask);
int mrh_faked_epoll_wait(void *original, int epfd, void *events, int maxevents, int timeout);
int mrh_faked_epoll_pwait(void *original, int epfd, void *events, int maxevents, int timeout, const void *sigmask);
int mrh_faked_epoll_pwait2(void *original, int epfd, void *events, int maxevents, const void *timeout,
                           const void *sigmask);
int mrh_faked_sigtimedwait(void *original, const void *set, void *info, const void *timeout);
unsigned int mrh_faked_alarm(void *original, unsigned int seconds);
unsigned int mrh_faked_ualarm(void *original, unsigned int usec, unsigned int interval);
int mrh_faked_setitimer(void *original, int which, const void *value, void *old);
int mrh_faked_getitimer(void *original, int which, void *value);
int mrh_faked_timer_gettime(void *original, void *timer, void *value);
int mrh_faked_timerfd_gettime(void *original, int fd, void *value);
#pragma GCC visibility pop

#endif

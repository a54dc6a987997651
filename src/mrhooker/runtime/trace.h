/* trace.h (target side): recording calls for `mrhooker trace`, with no Python in the target.
 *
 * The generated entry point of a traced function (see codegen.trace_entries_source) calls the original and
 * records the call into a buffer shared with the mrhooker process, which decodes and prints it. Hazards:
 * - Speed: tens of nanoseconds a call. Idea: one record per call, written after the call returns (entry time
 *   and duration in it), into one ring reserved with a compare-and-swap; times from the TSC (rdtsc) where it
 *   is invariant, converted to nanoseconds by the reader; no locks, no system calls.
 * - The target's memory: a string or buffer argument may be invalid (open(NULL), write(fd, bad, n)).
 *   Idea: captured after the call; what a successful call validated (a read's returned bytes, a write's
 *   buffer, a path) is copied directly; after a failed or injected call, everything is copied with
 *   process_vm_readv, which fails instead of faulting (and after EFAULT, nothing is).
 * - errno: the record needs the call's errno without changing what the caller sees.
 *   Idea: errno is cleared before the call; a call that set none gets its old errno back.
 * - A full ring: the target never waits forever and never loses a record silently.
 *   Idea: it waits for the reader (which drains every few ms) while the reader is alive (its heartbeat, beaten
 *   by the reader and by the launcher's guardian process, so a slow reader is alive); a record that can't be
 *   written (the reader is gone) is counted in `dropped`, which the reader reports.
 * - A process that dies mid-record (SIGKILL between reserving and committing): the reader would wait for that
 *   record forever. Idea: the reader skips an uncommitted record after a while, resynchronising on magic.
 * - fork: the child's pid and tids change. Idea: cached per thread, reset in the child (atfork).
 * - Fault injection (--inject) must cost nothing where it isn't asked for, and be reproducible where it is.
 *   Idea: one table of rules in the file (inject_offset, written by the launcher before the target starts,
 *   read-only after); a function without a rule pays one load. A rule counts the function's calls in this
 *   process (private counters, zeroed in a fork child, as strace counts per tracee) and decides on call n by
 *   `when`, then by a hash of (seed, function, n) against the probability: the same seed gives the same calls
 *   whatever the threads' interleaving. A chosen call is delayed, or not made at all: the rule's result and
 *   errno are returned instead, and its record says MRH_INJECTED.
 * - Fake time (--fake-time): the realtime clocks a program reads through libc run from another start, at
 *   another rate; monotonic clocks are left alone. Idea: the entry points of clock_gettime, gettimeofday, time
 *   and timespec_get pass their results through mrh_fake_* (fake = fake_anchor + (real - real_anchor) * rate).
 *
 * The shared file (MRHOOKER_TRACE, created by the launcher; mirrored by mrhooker/tracing.py):
 *
 *   offset 0      header (4096 bytes, see mrh_trace_header)
 *   offset 4096   counters: for each traced function, {calls, errors, ns} (uint64), for `-c`
 *   ring_offset   the ring: `ring_size` bytes (a power of two) of records, each 8-byte aligned, never split at
 *                 its end
 *
 * A record (all little-endian):
 *   u32 size        bytes, including this header and what follows; written last (the commit): 0 = not yet
 *   u16 magic       MRH_RECORD_MAGIC
 *   u16 fn          the function's index (MRH_PAD: filler up to the ring's end)
 *   u32 pid, tid
 *   u64 ts          entry time (TSC ticks, or CLOCK_MONOTONIC ns: see header.clock)
 *   u64 dur         duration, same unit
 *   u64 ret         the result's bits
 *   i32 err         errno after the call; 0 if it set none
 *   u8 flags        MRH_FAILED, MRH_ENTRY_ONLY (a call that does not return: exec, exit), MRH_UNSAFE (no copies)
 *   u8 nargs, ncaps, pad
 *   u64 args[nargs] the arguments' bits (floats as double bits)
 *   captures[ncaps] each: u16 which (argument index, or 255 for the result), u16 kind, u32 full (the length the
 *                   data had), u32 len (bytes stored here), u32 pad; then len bytes, padded to 8
 */
#ifndef MRHOOKER_TRACE_H
#define MRHOOKER_TRACE_H

#include <errno.h>
#include <stdint.h>
#include <x86intrin.h>
#include "preload.h"

#define MRH_TRACE_MAGIC 0x4d52485452414345ull   /* "MRHTRACE" */
#define MRH_TRACE_VERSION 2
#define MRH_RECORD_MAGIC 0x524d
#define MRH_PAD 0xffff
#define MRH_RET 255

/* MRH_INJECTED: not made, a rule's result given instead; MRH_DELAYED: made, a rule's delay added. (8: the
 * reader's own.) */
enum { MRH_FAILED = 1, MRH_ENTRY_ONLY = 2, MRH_UNSAFE = 4, MRH_INJECTED = 16, MRH_DELAYED = 32 };
/* Not stored: the return of a call already counted at its start (an exec that failed), for the -c counters. */
#define MRH_COUNTED 0x100
enum { MRH_CLOCK_MONOTONIC = 1, MRH_CLOCK_TSC = 2 };
/* Paths are kept whole. A string vector (argv, envp) keeps its first `len` strings, each cut at -s (at most 4096)
 * and stored as a byte that says whether it was cut, its bytes, a NUL; its `full` is how many strings the
 * vector has (counted up to MRH_STRV_COUNTED). A struct the reader shows by its members (struct timespec,
 * struct stat) is kept whole too, up to MRH_STRUCT_KEPT bytes. */
enum { MRH_CAP_STRING = 1, MRH_CAP_BYTES = 2, MRH_CAP_SOCKADDR = 3, MRH_CAP_PATH = 4, MRH_CAP_STRV = 5,
       MRH_CAP_STRUCT = 6 };
#define MRH_STRUCT_KEPT 1024
#define MRH_STRV_COUNTED 4096

typedef struct mrh_trace_header {
    uint64_t magic, version;
    uint64_t ring_offset, ring_size;
    uint64_t nfn;
    uint64_t records_on, counts_on;   /* what to write (set by the launcher) */
    uint64_t strsize;                 /* bytes kept of strings and buffers (-s) */
    /* The clock, chosen by the first process that maps the file (clock_state 0 -> 1 -> 2). */
    uint64_t clock_state, clock, tsc_hz, anchor_tsc, anchor_ns;
    uint64_t inject_offset;           /* the rules (mrh_inject_rule per function), or 0: no injection */
    uint64_t inject_seed;             /* --seed */
    uint64_t fake_time_on;            /* --fake-time: 1, with: */
    int64_t fake_anchor_real_ns, fake_anchor_ns;   /* CLOCK_REALTIME at the start, and the time shown for it */
    uint64_t fake_rate_ppm;           /* how fast fake time runs, in millionths (1000000: as fast as real) */
    uint64_t pad0[10];
    uint64_t write_pos;               /* producers (compare-and-swap) */
    uint64_t pad1[7];
    uint64_t read_pos;                /* the reader: everything before it may be overwritten */
    uint64_t heartbeat_ns;            /* CLOCK_MONOTONIC when the reader last said it lives; 0: gone */
    uint64_t dropped;                 /* records that could not be written (atomic) */
    uint64_t pad2[5];
} mrh_trace_header;

/* A fault injection rule of one function (--inject; tracing.InjectRule writes it). */
typedef struct mrh_inject_rule {
    uint32_t armed;                   /* 1: this function has a rule */
    int32_t error;                    /* errno a chosen call gets (0: none) */
    int64_t retval;                   /* the result a chosen call gets, if `fail` */
    uint32_t fail;                    /* 1: a chosen call isn't made */
    uint32_t probability;             /* of a call `when` allows, in 2^-32 (0xffffffff: every one) */
    uint64_t first, last, step;       /* when=FIRST..LAST+STEP (calls from 1; last 0: no end; step 0: FIRST only) */
    uint64_t delay_enter_ns, delay_exit_ns;
} mrh_inject_rule;
enum { MRH_INJECT_CHOSEN = 1, MRH_INJECT_FAIL = 2 };

/* A call in progress (on the caller's stack). */
typedef struct mrh_call {
    uint64_t start;   /* ts */
    int *errno_at;    /* this thread's errno */
    int saved_errno;  /* errno at entry */
    int err;          /* errno the call set, 0 if none */
    int fn;
} mrh_call;

/* What to copy out of the target's memory into a record. */
typedef struct mrh_capture {
    const void *ptr;
    uint64_t len;     /* bytes to copy (before the -s cut); strings: the most to look at; vectors: strings kept */
    uint16_t which;   /* argument index, or MRH_RET */
    uint16_t kind;    /* MRH_CAP_* */
} mrh_capture;

#pragma GCC visibility push(hidden)
extern mrh_trace_header *mrh_trace;   /* the mapped file, once this process traced a call; else NULL */
int mrh_trace_enter_slow(mrh_thread *t, int fn, mrh_call *call, const void *caller);
void mrh_trace_record(mrh_thread *t, mrh_call *call, uint64_t ret, int failed, int flags, const uint64_t *args,
                      int nargs, const mrh_capture *caps, int ncaps);
extern int mrh_trace_tsc;              /* the clock is the TSC (header.clock == MRH_CLOCK_TSC) */
extern const mrh_inject_rule *mrh_inject_rules;   /* the file's rules, or NULL: no injection in this trace */
int mrh_inject_enter(int fn);           /* counts the call; MRH_INJECT_* for it (delay_enter done) */
void mrh_inject_exit(int fn);           /* delay_exit of a chosen call */
struct timespec;
struct timeval;
void mrh_fake_timespec(int clock, struct timespec *ts);   /* realtime clocks only */
void mrh_fake_timeval(struct timeval *tv);
long mrh_fake_seconds(long real);
uint64_t mrh_trace_monotonic(void);    /* CLOCK_MONOTONIC in ns */
#pragma GCC visibility pop

/* Does fn have an injection rule? (One load when the trace has none.) */
#define MRH_INJECT_ARMED(fn) MRH_UNLIKELY(mrh_inject_rules != NULL && mrh_inject_rules[fn].armed)
#define MRH_FAKE_TIME() MRH_UNLIKELY(mrh_trace != NULL && mrh_trace->fake_time_on)

/* Now, in the trace's clock. */
static inline __attribute__((always_inline)) uint64_t mrh_trace_now(void)
{
    return MRH_LIKELY(mrh_trace_tsc) ? __rdtsc() : mrh_trace_monotonic();
}

/* Before the original: 1 if this call is traced (then mrh_trace_record after it), 0 if not (the runtime's
 * own calls, a signal handler, the dynamic loader's calls, no trace file). */
#define MRH_TRACE_ENTER(t, fn, call) mrh_trace_enter((t), (fn), (call), __builtin_return_address(0))

static inline __attribute__((always_inline)) int mrh_trace_enter(mrh_thread *t, int fn, mrh_call *call,
                                                                 const void *caller)
{
    if (MRH_INSIDE(t)) return 0;
    if (MRH_UNLIKELY(mrh_trace == NULL)) return mrh_trace_enter_slow(t, fn, call, caller);
    call->fn = fn;
    call->errno_at = &errno;
    call->saved_errno = *call->errno_at;
    *call->errno_at = 0;
    call->start = mrh_trace_now();
    return 1;
}

/* Right after the original returned: its errno, and the caller's back if it set none. */
static inline __attribute__((always_inline)) void mrh_trace_returned(mrh_call *call)
{
    call->err = *call->errno_at;
    if (call->err == 0) *call->errno_at = call->saved_errno;
}

#define MRH_ARG(x) ((uint64_t)(x))
#define MRH_ARG_PTR(x) ((uint64_t)(uintptr_t)(x))
static inline uint64_t mrh_arg_double(double d)
{
    uint64_t u;
    __builtin_memcpy(&u, &d, sizeof u);
    return u;
}

#endif

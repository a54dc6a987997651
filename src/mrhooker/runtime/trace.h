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
 *   process_vm_readv, which fails instead of faulting (and after a call that worked yet left EFAULT, nothing
 *   is).
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
 *   read-only after): a function's first rule in its own slot, its others after the nfn slots, chained by
 *   `next` in command-line order; a function without a rule pays one load. The calls of a function are counted
 *   once in this process (private counters, zeroed in a fork child, as strace counts per tracee), and call n
 *   goes to the rules in order: each decides by `when`, then by a hash of (seed, function, n, its place in the
 *   chain) against its probability; the first that chooses the call decides what it gets. The same seed gives
 *   the same calls whatever the threads' interleaving. A chosen call is delayed, or not made at all: the
 *   rule's result and errno are returned instead, and its record says MRH_INJECTED.
 * - Fake time (--fake-time): see faketime.h.
 *
 * The shared file (MRHOOKER_TRACE, made by mrhooker) is described in tracefile.h.
 *
 * A traced function's generated entry point (codegen.trace_entries_source) holds only what is specific to it:
 * its prototype, slot and descriptor (mrh_traced: how it fails, what to copy of its arguments). Everything else
 * is here and in trace.c: the macros below, mrh_trace_end() and the capture descriptors it applies.
 */
#ifndef MRHOOKER_TRACE_H
#define MRHOOKER_TRACE_H

#include <errno.h>
#include <stdint.h>
#include <x86intrin.h>
#include "preload.h"

#include "tracefile.h"

/* Not stored: the return of a call already counted at its start (an exec that failed), for the -c counters. */
#define MRH_COUNTED 0x100

/* A call in progress (on the caller's stack). */
typedef struct mrh_call {
    uint64_t start;   /* ts */
    int *errno_at;    /* this thread's errno */
    int saved_errno;  /* errno at entry */
    int err;          /* errno the call set, 0 if none */
    int fn;
    const mrh_inject_rule *rule;   /* the --inject rule that chose this call, or NULL */
    const void *caller;            /* its return address */
} mrh_call;

/* What a record keeps of the memory an argument (or the result) points to: tracespec.Capture, generated as
 * data per traced function. */
enum { MRH_WHEN_ALWAYS = 0, MRH_WHEN_OK = 1, MRH_WHEN_POSITIVE = 2, MRH_WHEN_BEFORE = 3, MRH_WHEN_SHARED = 4 };
enum { MRH_LEN_NUL = 0, MRH_LEN_FIXED = 1, MRH_LEN_ARG = 2, MRH_LEN_RET_UPTO_ARG = 3, MRH_LEN_DEREF_ARG = 4,
       MRH_LEN_STRINGS = 5, MRH_LEN_ARG_TIMES = 6, MRH_LEN_ARG_BITS = 7, MRH_LEN_RET_TIMES = 8, MRH_LEN_ITEMS = 9,
       MRH_LEN_NUL_UPTO_ARG = 10, MRH_LEN_ARG_READ_RET = 11, MRH_LEN_ARG_PAGES = 12 };
typedef struct mrh_capture_desc {
    uint8_t which;    /* argument index, or MRH_RET */
    uint8_t kind;     /* MRH_CAP_* */
    uint8_t when;     /* MRH_WHEN_*: always (copied safely after a failure; strings and vectors also into the
                       * record at entry of a call that may not return), only when the call worked (memory it
                       * filled), only when it returned more than 0, or before the call (as it was passed: the
                       * call changes it; see mrh_trace_before), or before the call only if argument `ref` is the
                       * same memory (an output: `sigprocmask(how, &s, &s)`), else always */
    uint8_t length;   /* MRH_LEN_*: to the NUL, `size`, argument `ref` (a negative signed one: 0), the result up to
                       * argument `ref`, the unsigned int argument `ref` points to, `size` strings, argument `ref`
                       * times `size` (an array), argument `ref`'s count of bits in bytes, at most `size` (an
                       * fd_set's nfds), the result times `size` (an array the call filled), argument `ref` (the
                       * result: MRH_RET) times argument `size` (fwrite's items, those fread filled), to the NUL
                       * but at most argument `ref` bytes (strnlen's string: the call read no further, and the
                       * bytes after may be unmapped), argument `ref` of which the call read as many as it
                       * returned (write's: those past a short write's result are copied through the kernel), a byte
                       * for each page of argument `ref` bytes (mincore's vector) */
    uint8_t ref;
    uint8_t ref_signed;
    uint8_t only_if;  /* kept only when argument only_if is one of `values` (nvalues > 0): fcntl's lock commands */
    uint8_t nvalues;
    uint32_t size;
    const uint64_t *values;
} mrh_capture_desc;

/* How a traced function says it failed: it can't; it returns fail_bits with errno set; it returns an error number
 * (posix_spawn, pthread_create: 0 when it worked, errno left alone). */
enum { MRH_FAILS_NEVER = 0, MRH_FAILS_WITH_ERRNO = 1, MRH_FAILS_WITH_RESULT = 2 };

/* A traced function, as its entry point hands it to mrh_trace_end(). */
typedef struct mrh_traced {
    uint64_t fail_bits;   /* the result that says the call failed (with errno set): -1, or NULL ... */
    uint8_t fails;        /* MRH_FAILS_*: if it can fail so at all, or by returning an error number */
    uint8_t noreturn;     /* recorded at entry too: it may not return (exec returns only when it fails, exit
                           * never, kill not if it kills its own process) */
    uint8_t forks;        /* returns twice (fork): the child's side took no time of its own */
    uint8_t nargs;
    uint8_t ncaps;
    const mrh_capture_desc *caps;
} mrh_traced;

/* What to copy out of the target's memory into a record. */
typedef struct mrh_capture {
    const void *ptr;
    uint64_t len;     /* bytes to copy (before the -s cut); strings: the most to look at (UINT64_MAX: to the
                       * NUL, however far); vectors: strings kept */
    uint16_t which;   /* argument index, or MRH_RET */
    uint16_t kind;    /* MRH_CAP_* */
    uint16_t unsure;  /* the call vouched for fewer than len bytes (a short write): copied through the kernel */
} mrh_capture;

#pragma GCC visibility push(hidden)
extern mrh_trace_header *mrh_trace;   /* the mapped file, once this process traced a call; else NULL */
int mrh_trace_enter_slow(mrh_thread *t, int fn, mrh_call *call, const void *caller);
/* After the call, with whether it failed and the record's flags (mrh_trace_end works them out, inline, from the
 * descriptor): what to copy, and the record. */
void mrh_trace_record(mrh_thread *t, mrh_call *call, const mrh_traced *d, uint64_t ret, int failed, int flags,
                      const uint64_t *args);
/* The same, for a function with nothing to copy (most): fewer instructions on the path every call takes. */
void mrh_trace_record_plain(mrh_thread *t, mrh_call *call, uint64_t ret, int failed, int flags, const uint64_t *args,
                            int nargs);

/* The memory a call changes, as it was passed (select's sets, a socklen_t it reads and writes): copied before the
 * call (mrh_trace_before), kept with the record (mrh_trace_end_before). Only the functions that have such captures
 * declare one, on their entry point's stack. */
#define MRH_BEFORE_KEPT 512
typedef struct mrh_before {
    int n;
    mrh_capture caps[4];
    unsigned char data[MRH_BEFORE_KEPT];
} mrh_before;
void mrh_trace_before(mrh_before *b, const mrh_traced *d, const uint64_t *args);
void mrh_trace_record_before(mrh_thread *t, mrh_call *call, const mrh_traced *d, uint64_t ret, int failed, int flags,
                             const uint64_t *args, const mrh_before *b);
/* wait(NULL), waitpid(pid, NULL, 0): the status the program didn't ask for is still the reader's only news of how
 * the child ended (strace's `+++ exited with 3 +++`). Idea: the traced entry passes a status of its own instead
 * of NULL (NULL only says "not wanted"), and this adds it to the record as the argument's capture when the call
 * reaped a child; the line still shows NULL (the argument is 0). */
static inline void mrh_trace_unasked_status(mrh_before *b, int which, const int *status, const void *passed,
                                            int64_t ret)
{
    b->n = 0;
    if (passed == NULL && ret > 0) {
        b->caps[0] = (mrh_capture){status, sizeof *status, (uint16_t)which, MRH_CAP_STRUCT};
        b->n = 1;
    }
}

/* Before a call that may not return (d->noreturn): its record at entry (unless a rule fails it instead). */
void mrh_trace_at_entry(mrh_thread *t, mrh_call *call, const mrh_traced *d, const uint64_t *args);
/* The mapped file, mapped now if need be, for a call from the program's signal handler (MRH_PROGRAM_HANDLER). */
mrh_trace_header *mrh_trace_in_handler(mrh_thread *t, const void *caller);
extern int mrh_trace_tsc;              /* the clock is the TSC (header.clock == MRH_CLOCK_TSC) */
extern const mrh_inject_rule *mrh_inject_rules;   /* the file's rules, or NULL: no injection in this trace */
/* Counts the call; call->rule: the rule that chooses it (its delay_enter done), or NULL. */
const mrh_inject_rule *mrh_inject_enter(mrh_call *call);
void mrh_inject_exit(mrh_call *call);   /* after a chosen call: its errno, its delay_exit */
uint64_t mrh_trace_monotonic(void);    /* CLOCK_MONOTONIC in ns */
uint32_t mrh_trace_pid(void);          /* this process's pid, once the file is mapped */
#pragma GCC visibility pop

/* Does fn have an injection rule? (One load when the trace has none.) */
/* One load of the table's address: a detach (attach.c) makes it NULL while calls are made. */
static inline __attribute__((always_inline)) int mrh_inject_armed(int fn)
{
    const mrh_inject_rule *rules = __atomic_load_n(&mrh_inject_rules, __ATOMIC_RELAXED);
    return rules != NULL && rules[fn].armed;
}
#define MRH_INJECT_ARMED(fn) MRH_UNLIKELY(mrh_inject_armed(fn))
/* A call a rule chose (mrh_inject_enter's result, NULL if none): is it not made? */
static inline int mrh_inject_fails(const mrh_inject_rule *rule) { return rule != NULL && rule->fail; }

/* Now, in the trace's clock. */
static inline __attribute__((always_inline)) uint64_t mrh_trace_now(void)
{
    return MRH_LIKELY(mrh_trace_tsc) ? __rdtsc() : mrh_trace_monotonic();
}

/* Before the original: 1 if this call is traced (then mrh_trace_end after it), 0 if not (the runtime's
 * own calls, a signal handler that interrupted the runtime, the dynamic loader's calls, no trace file). */
#define MRH_TRACE_ENTER(t, fn, call) mrh_trace_enter((t), (fn), (call), mrh_call_site(__builtin_return_address(0)))

/* A call of the program's signal handler that interrupted the program's own code or a record being written:
 * traced like any other, as strace and ltrace show them (a SIGCHLD handler's waitpid is the only news of how a
 * child ended). Hazard: the handler may interrupt a traced call anywhere, or the runtime holding a lock or the
 * GIL. Idea: a record reserves its own place in the ring (reserve: a CAS), so a handler's record nests in the
 * interrupted call's; the handler's own calls run one depth above the depth it found (signals.c), which is 0 in
 * the program's code and 1 in a record (t->recording), whose reservation may be made and not yet committed: the
 * nested record then never waits for room in the ring (the reader would wait for that commit: dropped instead,
 * and counted; while the record waits for room, holding none, the handler's may wait too). A handler that interrupted anything else of the runtime records nothing. Hooks never run in
 * handlers (signals.c). */
#define MRH_PROGRAM_HANDLER(t)                                                                          \
    ((t)->handler.frame != NULL && (t)->depth == (t)->handler.depth + 1 &&                              \
     ((t)->handler.depth == 0 || ((t)->handler.depth == 1 && (t)->recording)))

static inline __attribute__((always_inline)) int mrh_trace_enter(mrh_thread *t, int fn, mrh_call *call,
                                                                 const void *caller)
{
    if (MRH_INSIDE(t)) {
        if (MRH_LIKELY(!MRH_PROGRAM_HANDLER(t)) || mrh_trace_in_handler(t, caller) == NULL) return 0;
    } else if (MRH_UNLIKELY(mrh_trace == NULL)) {
        return mrh_trace_enter_slow(t, fn, call, caller);
    }
    call->fn = fn;
    call->rule = NULL;
    call->caller = caller;
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

/* Did the call fail? A function that returns its error number has it recorded as its errno too (-c's errors, -Z,
 * JSON's "errno"); the program's errno was left as it was (mrh_trace_returned). */
static inline __attribute__((always_inline)) int mrh_trace_failed(mrh_call *call, const mrh_traced *d, uint64_t ret)
{
    if (d->fails == MRH_FAILS_WITH_RESULT) {
        if (ret == 0) return 0;
        call->err = (int)ret;
        return 1;
    }
    return d->fails == MRH_FAILS_WITH_ERRNO && ret == d->fail_bits && call->err != 0;
}

/* Whether the call failed, and its record's flags: inline, so that the compiler reads the entry point's descriptor
 * (a constant) at compile time; the rest out of line. */
static inline __attribute__((always_inline)) int mrh_trace_flags(const mrh_call *call, const mrh_traced *d)
{
    int flags = d->noreturn ? MRH_COUNTED : 0;   /* counted at its start already */
    if (MRH_UNLIKELY(call->rule != NULL))   /* a rule chose it: failed instead of made, or delayed */
        flags |= call->rule->fail ? MRH_INJECTED : MRH_DELAYED;
    return flags;
}

static inline __attribute__((always_inline)) void mrh_trace_end(mrh_thread *t, mrh_call *call, const mrh_traced *d,
                                                                 uint64_t ret, const uint64_t *args)
{
    mrh_trace_returned(call);
    int failed = mrh_trace_failed(call, d, ret);
    if (!d->ncaps && !d->forks) mrh_trace_record_plain(t, call, ret, failed, mrh_trace_flags(call, d), args, d->nargs);
    else mrh_trace_record(t, call, d, ret, failed, mrh_trace_flags(call, d), args);
}

static inline __attribute__((always_inline)) void mrh_trace_end_before(mrh_thread *t, mrh_call *call,
                                                                        const mrh_traced *d, uint64_t ret,
                                                                        const uint64_t *args, const mrh_before *b)
{
    mrh_trace_returned(call);
    int failed = mrh_trace_failed(call, d, ret);
    mrh_trace_record_before(t, call, d, ret, failed, mrh_trace_flags(call, d), args, b);
}

/* A value as the 64 bits a record keeps: integers sign- or zero-extended, pointers as addresses, floating values
 * as a double's bits. */
static inline uint64_t mrh_double_bits(double d)
{
    uint64_t u;
    __builtin_memcpy(&u, &d, sizeof u);
    return u;
}
#define MRH_BITS_INT(x) ((uint64_t)(x))
#define MRH_BITS_PTR(x) ((uint64_t)(uintptr_t)(x))
#define MRH_BITS_FLOAT(x) mrh_double_bits((double)(x))

/* The call, or what an --inject rule gives instead of it (then it isn't made). The call is written once (each
 * entry point's code is compiled per trace: its size is the cold build's time); a function without a rule pays
 * one load and a test for the rule table. */
#define MRH_TRACED_CALL(c, made) __extension__({                                                       \
    __typeof__(made) mrh_r_;                                                                         \
    if (MRH_LIKELY(!MRH_INJECT_ARMED((c).fn)) || !mrh_inject_fails(mrh_inject_enter(&(c))))          \
        mrh_r_ = (made);                                                                             \
    else                                                                                             \
        mrh_r_ = (__typeof__(made))(intptr_t)(c).rule->retval;                                       \
    if (MRH_UNLIKELY((c).rule != NULL)) mrh_inject_exit(&(c));                                       \
    mrh_r_;                                                                                          \
})
#define MRH_TRACED_CALL_VOID(c, made)                                                                \
    do {                                                                                             \
        if (MRH_LIKELY(!MRH_INJECT_ARMED((c).fn)) || !mrh_inject_fails(mrh_inject_enter(&(c)))) made; \
        if (MRH_UNLIKELY((c).rule != NULL)) mrh_inject_exit(&(c));                                   \
    } while (0)

#endif

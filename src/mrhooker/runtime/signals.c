/* signals.c (target side): hooks never run inside the target's signal handlers.
 *
 * Hazard: a handler interrupts arbitrary code, possibly a hook holding the GIL or the runtime holding a lock;
 * a hooked call from the handler that ran a hook would wait for them forever.
 * Idea: handlers installed through sigaction()/signal() are wrapped: the wrapper raises the thread's depth, so
 * every hooked call from the handler goes to its original. The target sees its own handlers in oldact.
 * Hazard: a signal arriving while a handler is being replaced must see a handler and its calling convention
 * (SA_SIGINFO or not) that belong together.
 * Idea: each signal has two records; a new one is written into the one not in use, then published by one
 * atomic store of its index.
 * Hazard: a trace or a hook of sigaction or signal defines the name itself: its entry point must still install
 * the target's handler wrapped.
 * Idea: the names are weak here; the original such an entry point calls is this file's wrapper
 * (mrh_signal_wrapper, handed out by resolve.c's caller_proof), which calls libc's (looked up past it).
 */
#define _GNU_SOURCE
#include "preload.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef struct {
    void (*handler)(void);   /* the target's handler */
    int siginfo;             /* it takes (int, siginfo_t *, void *) */
} handler_record;

static handler_record records[NSIG][2];
static int current[NSIG];   /* which record is in use (atomic) */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);   /* resolved at load */

/* Hazard: a handler that longjmps out (siglongjmp from SIGSEGV or SIGALRM) never comes back here, so the depth
 * it raised would stay raised: every later call unhooked and unrecorded, silently.
 * Idea: the wrapper notes its frame (and the alternate stack, if it runs on one), and that of the handler it
 * interrupted if it did; code running in a frame older than a handler's (above it on the stack, or off its
 * alternate stack) can't be inside that handler any more: a call made from there (mrh_left_handler), or the next
 * handler's wrapper, from the stack pointer of the code it interrupted (a timer's next signal may come before
 * the next call), restores the depth the handler found, and is back in the handler it interrupted if it left
 * only the innermost. The outermost handler is noted too: a timer's signals, pending while the machine is
 * loaded, each come as the handler before leaves by siglongjmp (the mask put back before the stack), nesting
 * handlers as deep as they come, and a jump out of them all must find the depth the first one found. A longjmp
 * to a point whose later calls run deeper than the handler ran is not noticed (the calls stay unhooked, as
 * before). In a trace, whose runtime never runs the program's code at a raised depth, a
 * jump out of every handler known, the first of which interrupted the program or the runtime working for it (a
 * record, the clock; depth 0 or 1), leaves the depth at 0; a record's reservation of the ring is filled in, or
 * the trace's reader would wait for it (trace.c's mrh_trace_abandon). */
static int left_handler(const mrh_handler *h, const char *here)
{
    return h->stack_hi ? (here < h->stack_lo || here >= h->stack_hi) : here > h->frame;
}

/* Has the code at `here` left the innermost handler? Then leave it, and those it left with it: back in the one
 * it interrupted, in one between that and the outermost (which, if more than three were nested, is not known:
 * taken for the outermost), or out of them all (the depth the outermost found). */
static int leave_handlers(mrh_thread *t, const char *here)
{
    if (!left_handler(&t->handler, here)) return 0;
    int found;   /* the depth the code jumped to runs at */
    if (t->outer_handler.frame && !left_handler(&t->outer_handler, here)) {   /* back in the one it interrupted */
        found = t->handler.depth;
        t->handler = t->outer_handler;
    } else if (!left_handler(&t->root_handler, here)) {
        found = t->root_handler.depth + 1;
        t->handler = t->root_handler;
    } else {
        found = t->root_handler.depth;
        t->handler = t->root_handler = (mrh_handler){0};
    }
    t->outer_handler = (mrh_handler){0};
    t->depth = found;
    if (!t->handler.frame && found <= 1 && mrh_trace_abandon) mrh_trace_abandon(t);
    return 1;
}

static void signal_trampoline(int sig, siginfo_t *info, void *context)
{
    mrh_thread *t = &mrh_tls;
    if (MRH_UNLIKELY(t->recording == MRH_RESERVING) && mrh_trace_interrupted) mrh_trace_interrupted(t, context);
    if (t->handler.frame) leave_handlers(t, (const char *)((ucontext_t *)context)->uc_mcontext.gregs[REG_RSP]);
    int saved = t->depth;
    t->depth = saved + 1;
    /* what to put back at the return: the handler this one interrupted, and the one that one interrupted */
    mrh_handler outer = t->handler, outer2 = t->outer_handler;
    t->outer_handler = outer;
    stack_t alt;
    int on_alt = syscall(SYS_sigaltstack, NULL, &alt) == 0 && (alt.ss_flags & SS_ONSTACK);
    t->handler = (mrh_handler){__builtin_frame_address(0), saved, on_alt ? (char *)alt.ss_sp : NULL,
                               on_alt ? (char *)alt.ss_sp + alt.ss_size : NULL};
    if (!outer.frame) t->root_handler = t->handler;
    handler_record r = records[sig][__atomic_load_n(&current[sig], __ATOMIC_ACQUIRE)];
    if (r.siginfo) ((void (*)(int, siginfo_t *, void *))r.handler)(sig, info, context);
    else ((void (*)(int))r.handler)(sig);
    t->handler = outer;
    t->outer_handler = outer2;
    if (!outer.frame) t->root_handler = (mrh_handler){0};
    t->depth = saved;
}

__attribute__((noinline)) int mrh_left_handler(mrh_thread *t)
{
    return leave_handlers(t, __builtin_frame_address(0));
}

static int is_function(void (*h)(void))
{
    return h != (void (*)(void))SIG_DFL && h != (void (*)(void))SIG_IGN && h != (void (*)(void))SIG_ERR;
}

static int runtime_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    if (MRH_UNLIKELY(!real_sigaction)) {
        mrh_signals_init();
        if (!real_sigaction) {
            errno = ENOSYS;
            return -1;
        }
    }
    if (sig <= 0 || sig >= NSIG) return real_sigaction(sig, act, oldact);
    int was = __atomic_load_n(&current[sig], __ATOMIC_ACQUIRE);
    handler_record previous = records[sig][was];
    struct sigaction wrapped;
    int published = 0;
    if (act) {
        void (*h)(void) = (act->sa_flags & SA_SIGINFO) ? (void (*)(void))act->sa_sigaction
                                                         : (void (*)(void))act->sa_handler;
        if (is_function(h)) {
            records[sig][!was] = (handler_record){h, (act->sa_flags & SA_SIGINFO) != 0};
            __atomic_store_n(&current[sig], !was, __ATOMIC_RELEASE);   /* before the kernel can call it */
            published = 1;
            wrapped = *act;
            wrapped.sa_sigaction = signal_trampoline;
            wrapped.sa_flags |= SA_SIGINFO;
            act = &wrapped;
        }
    }
    int rc = real_sigaction(sig, act, oldact);
    if (rc != 0 && published) __atomic_store_n(&current[sig], was, __ATOMIC_RELEASE);
    if (rc == 0 && oldact && oldact->sa_sigaction == signal_trampoline) {
        /* Show the target its own handler, as it installed it. */
        if (previous.siginfo) {
            oldact->sa_sigaction = (void (*)(int, siginfo_t *, void *))previous.handler;
        } else {
            oldact->sa_flags &= ~SA_SIGINFO;
            oldact->sa_handler = (void (*)(int))previous.handler;
        }
    }
    return rc;
}

/* glibc's signal() and sysv_signal() call its internal sigaction, not ours: the same semantics, through ours.
 * flags: signal's (BSD: SA_RESTART, the signal blocked in its handler) or sysv_signal's (SA_RESETHAND|SA_NODEFER,
 * what a program built with -std=c99 or -ansi calls signal() is: __sysv_signal). */
static __sighandler_t install(int sig, __sighandler_t handler, int flags)
{
    if (handler == SIG_ERR) {   /* glibc's refusal: as a handler, -1 would be installed (and returned as failure) */
        errno = EINVAL;
        return SIG_ERR;
    }
    mrh_thread *t = &mrh_tls;
    t->depth++;   /* sigemptyset() and the rest are ours, not the program's calls */
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = flags;
    sigemptyset(&act.sa_mask);
    if (sig > 0 && sig < NSIG && !(flags & SA_NODEFER)) sigaddset(&act.sa_mask, sig);
    int rc = runtime_sigaction(sig, &act, &old);
    t->depth--;
    return rc < 0 ? SIG_ERR : old.sa_handler;
}

static __sighandler_t runtime_signal(int sig, __sighandler_t handler)
{
    return install(sig, handler, SA_RESTART);
}

static __sighandler_t runtime_sysv_signal(int sig, __sighandler_t handler)
{
    return install(sig, handler, SA_RESETHAND | SA_NODEFER);
}

void *mrh_signal_wrapper(const char *name)
{
    if (mrh_same_string(name, "sigaction")) return (void *)runtime_sigaction;
    if (mrh_same_string(name, "signal") || mrh_same_string(name, "bsd_signal")) return (void *)runtime_signal;
    if (mrh_same_string(name, "__sysv_signal") || mrh_same_string(name, "sysv_signal"))
        return (void *)runtime_sysv_signal;
    return NULL;
}

/* The program's sigaction and signal (and signal's other names), unless a trace's or a hook's entry point defines
 * the name. */
MRH_EXPORT __attribute__((weak)) int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    return runtime_sigaction(sig, act, oldact);
}

MRH_EXPORT __attribute__((weak)) __sighandler_t signal(int sig, __sighandler_t handler)
{
    return runtime_signal(sig, handler);
}

MRH_EXPORT __attribute__((weak)) __sighandler_t bsd_signal(int sig, __sighandler_t handler)
{
    return runtime_signal(sig, handler);
}

MRH_EXPORT __attribute__((weak)) __sighandler_t __sysv_signal(int sig, __sighandler_t handler)
{
    return runtime_sysv_signal(sig, handler);
}

MRH_EXPORT __attribute__((weak)) __sighandler_t sysv_signal(int sig, __sighandler_t handler)
{
    return runtime_sysv_signal(sig, handler);
}

/* At load (or at the first sigaction, if a constructor of another library calls it first). */
void mrh_signals_init(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    if (!real_sigaction)
        real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))mrh_lookup_next("sigaction");
    t->depth--;
}

/* preload.h: what the target side's files (preload.c, resolve.c, follow.c, signals.c and the generated
 * entries.c) share. None of it is seen by the hook side, which gets what it needs through mrh_runtime. */
#ifndef MRHOOKER_PRELOAD_H
#define MRHOOKER_PRELOAD_H

#include <stdint.h>
#include <time.h>

#include "mrhooker_rt.h"

/* The per-thread state, all of it defined in tls.c (which says where it lives, and why). Initial-exec TLS: one
 * instruction to reach it and no allocation, so it is usable from allocator hooks and signal handlers. Declared
 * before the pragma below: an attach build takes these from a library of their own. */
#define MRH_TLS __attribute__((tls_model("initial-exec")))
extern __thread mrh_thread mrh_tls MRH_TLS;
extern __thread const void *mrh_entry_caller MRH_TLS;   /* the thunk's caller (patch.c: set by the thunk) */
extern __thread int mrh_resolving MRH_TLS;              /* this thread is inside a lookup (resolve.c's hazards) */
extern __thread int mrh_start_gave_up MRH_TLS;          /* this thread waited for another thread's start as long
                                                         * as it may: until READY, its calls don't wait (preload.c) */
extern __thread uint32_t mrh_my_tid MRH_TLS;            /* trace.c: this thread's id, 0: not looked up yet ... */
extern __thread uint32_t mrh_my_tid_pid MRH_TLS;        /* ... for this pid */
extern __thread int mrh_forking MRH_TLS;                /* this thread runs a fork: how many fork handlers of
                                                         * builds (preload.c, attach.c) have run their prepare and
                                                         * not yet their parent or child one; shared by attach
                                                         * builds, so one loaded since sees it (attach.c,
                                                         * mrhooker_attach) */
/* Not per thread, but shared by attach builds the same way (tls.c): the mrh_hook_restart (pyrt.c) of the hook side
 * an attach started in this process, or NULL (set once, by the build that started it), and the runtime table of
 * the build whose script it runs now (set by each build that starts it: preload.c, load_hook_side). */
extern void *mrh_attached_hook_side;
extern const void *mrh_hook_side_owner;

/* Hidden unless marked MRH_EXPORT: the preload library exports only the hooked symbols and the wrappers
 * (sigaction, exec*, ...), so nothing else can interpose on the runtime or be interposed by it. */
#pragma GCC visibility push(hidden)
extern int mrh_state;                 /* see mrhooker_rt.h for who moves it */
extern mrh_slot mrh_slots[];          /* generated, one per hooked symbol */
extern const int mrh_nslots;

/* preload.c */
int mrh_init_for_call(const void *caller);   /* the runtime's set-up done (now, if need be)? 0: not from there */
int mrh_begin_slow(mrh_thread *t, const void *caller);   /* may this hooked call run its hook? starts hooks */
void mrh_first_hook_on_thread(mrh_thread *t);              /* the hook side's per-thread set-up */
void *mrh_thread_wrapper(const char *name);   /* the runtime's pthread_create for that name, or NULL */
void mrh_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* "mrhooker: ..." line */
void mrh_report_resolved(int slot);   /* tells the launcher a name missing at load is defined now */

/* The settings this process was launched with (MRHOOKER_*, see mrhooker_rt.h), read once. */
typedef struct mrh_settings {
    const char *trace, *trace_id;   /* `mrhooker trace`: the shared trace file, and its identity */
    const char *hooks, *runtime, *kind, *module, *script;
    const char *python_path, *python_home, *executable, *output, *output_id;
    const char *report, *report_id;   /* the launcher's report file (preload.c, reports), and its identity */
    const char *attach;   /* attached (mrhooker -p): the unix socket to mrhooker that attach.c holds */
    const char *maps;     /* a traced process's copies of its memory map: this + ".PID" (trace.c) */
    int follow;           /* exec'd children are hooked too */
    int active;           /* this process is to be hooked or traced */
    long start_wait_ms;   /* how long a thread waits for another thread's start */
} mrh_settings;
extern mrh_settings mrh_config;

void mrh_attach_settings(const char *text);   /* attach.c: settings from these "NAME=value\0...\0" strings */
const char *mrh_setting_in(const char *text, const char *name);   /* one of them (text NULL: the environment's) */
void mrh_attach_state(int on);                /* attach.c: hooks on at an attach, OFF at its detach */

/* resolve.c */
void mrh_resolve_init(void);                  /* at load: the real dlsym, and every slot's original */
void *mrh_resolve(int slot);                  /* the original of a slot, looked up if not known yet */
void mrh_resolve_missing(void);               /* an attach: the slots load left without an original, again */
void *mrh_original(const char *name);         /* the next definition of any symbol, cached; NULL if none */
void *mrh_lookup_next(const char *name);      /* the same, never a runtime wrapper or proxy (see resolve.c) */
void mrh_resolve_after_fork(void);            /* in a fork child: its locks are reset */
void *mrh_boot_alloc(size_t size);            /* serves malloc/calloc while their originals are looked up */
int mrh_boot_owns(const void *p);
size_t mrh_boot_size(const void *p);
int mrh_in_loader(const void *code);          /* is this code address in the dynamic loader? */
struct link_map;
struct dl_phdr_info;
const void *mrh_dynamic_of(const struct dl_phdr_info *info);   /* an object's dynamic section (resolve.c) */
void *mrh_find_in_object(const struct link_map *map, const char *name);   /* an object's definition, or NULL */

/* patch.c */
void mrh_patch_entries(const char *spec, int attaching);   /* the functions MRHOOKER_ENTRY says, hooked at their
                                                            * entry: at load, or by an attach (with attach.py) */
void mrh_patch_restore(void);                /* an attach's detach: their first bytes back */
void mrh_entry_thunk_return(void);           /* where an entry point called by the thunk returns to */

/* follow.c */
void mrh_follow_init(void);                   /* snapshot MRHOOKER_*, or strip them (--no-follow) */
void *mrh_follow_wrapper(const char *name);   /* its wrapper of an exec function (execve, ...), or NULL */

/* signals.c */
void mrh_signals_init(void);
void *mrh_signal_wrapper(const char *name);   /* signals.c's sigaction or signal for that name, or NULL */
int mrh_left_handler(mrh_thread *t);          /* with depth > 0: did the program longjmp out of a handler? */
/* trace.c, in a trace's preload only: a record a longjmp out of a signal handler abandoned; a handler that
 * interrupted a record's reservation */
__attribute__((weak, visibility("hidden"))) void mrh_trace_abandon(mrh_thread *t);
__attribute__((weak, visibility("hidden"))) void mrh_trace_interrupted(mrh_thread *t, const void *context);
/* trace.c, in a trace's preload only: its prctl's or syscall's wrapper (the original of a traced one), or NULL */
__attribute__((weak, visibility("hidden"))) void *mrh_trace_wrapper(const char *name);

/* depth > 0: hooks and recording are off on this thread (the runtime, a hook, a signal handler running) */
#define MRH_INSIDE(t) (MRH_UNLIKELY((t)->depth > 0) && !((t)->handler.frame && mrh_left_handler(t) && (t)->depth == 0))

#pragma GCC visibility pop

/* strcmp for the runtime's own lookups by name: a script may hook strcmp, and a lookup made while resolving
 * originals must not call into a hook entry (it would resolve again, for ever). */
static inline int mrh_same_string(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

/* The lookups' other string work, for the same reason (these loops stay loops: the target side is compiled with
 * -fno-tree-loop-distribute-patterns, so the compiler doesn't make them calls of memcpy or strlen). */
static inline int mrh_starts_with(const char *s, const char *prefix)
{
    while (*prefix && *s == *prefix) s++, prefix++;
    return *prefix == 0;
}

static inline size_t mrh_length(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static inline void mrh_copy(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

/* pthread_atfork for the runtime's own fork handlers (preload.c). Not by that name: a script may hook or trace
 * pthread_atfork, so the name binds to the preload's own entry, whose original dlsym can't find (libc has only
 * pthread_atfork@GLIBC_2.2.5, a hidden compat version; programs carry libc_nonshared's copy, which calls this):
 * the handlers were never registered. What libc_nonshared's copy does, then: __register_atfork with this
 * library's handle, so a dlclose of it would take them away. The handlers are also kept, to run around a clone()
 * that makes a process (preload.c, clone), which runs no atfork handlers. */
__attribute__((visibility("hidden"))) int mrh_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* The site of a call whose entry point returns to `ret`: the caller's return address, which the thunk of a
 * function hooked at its entry (patch.c) keeps for it just before its call. */
static inline const void *mrh_call_site(const void *ret)
{
    return MRH_UNLIKELY(ret == (const void *)mrh_entry_thunk_return) ? mrh_entry_caller : ret;
}

/* CLOCK_MONOTONIC `ms` milliseconds from now: the deadline of the runtime's own bounded waits (a start, a fork's
 * wait for an attach pass). */
static inline struct timespec mrh_monotonic_after_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += ms % 1000 * 1000000L;
    if (t.tv_nsec >= 1000000000L) t.tv_sec++, t.tv_nsec -= 1000000000L;
    return t;
}

/* The original of a slot: resolved at load in nearly every process, so read without a call. */
static inline void *mrh_original_of(int slot)
{
    void *p = __atomic_load_n(&mrh_slots[slot].original, __ATOMIC_ACQUIRE);
    return MRH_LIKELY(p != NULL) ? p : mrh_resolve(slot);
}

#endif

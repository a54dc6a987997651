/* mrhooker_rt.h: the contract between the two halves of mrhooker's runtime inside a hooked process.
 *
 * Hooks run inside someone else's program, which must behave exactly as before except where a hook says
 * otherwise. The hazard is sharing: if the hooks' Python used the target's libc, its locks (setlocale,
 * stdio, the allocator's), its GIL or its interpreter, a hook could wait for a lock the interrupted target
 * code holds, change a Python target's exceptions or sys.path, or see its own calls hooked.
 *
 * Idea: two halves in two link-map namespaces.
 *   target side   the preload library: preload.c, resolve.c, follow.c, signals.c and one generated entry point
 *                 per hooked symbol (entry.h). LD_PRELOADed, so it lives in the target's namespace. It links
 *                 no Python: a process that never calls a hooked function pays only for loading it.
 *   hook side     the hook library: pyrt.c, namespace.c and the user's Cython module or the generated
 *                 trampolines of a .py script. Loaded at the first hooked call with dlmopen(LM_ID_NEWLM), so
 *                 it gets a libc and a libpython of its own: an interpreter that shares nothing with the
 *                 target but the kernel (descriptors, memory, threads) and the few things namespace.c hands
 *                 across on purpose (the allocator, thread keys, thread creation, fork).
 * The halves cannot name each other's symbols (namespaces don't share them). The hook side gets everything
 * from the target side in one mrh_runtime table at start, and gives back an mrh_hook_ops table.
 *
 * A hooked call: the target calls write() -> the entry point (target side) -> the hook library's
 * implementation (hook side: Cython function or trampoline) -> possibly the original write (target side's
 * libc, through mrh_runtime's slots) -> back. The per-thread state below travels with the call.
 */
#ifndef MRHOOKER_RT_H
#define MRHOOKER_RT_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#define MRH_LIKELY(x) __builtin_expect(!!(x), 1)
#define MRH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MRH_EXPORT __attribute__((visibility("default")))

/* ---- the process state (mrh_state, target side) ------------------------------------------------------
 *
 *   UNSTARTED --first hooked call--> STARTING --start thread--> READY --exit--> OFF
 *                                             \-------------------------------> OFF (start failed)
 * Who moves it:
 *   - mrh_begin_slow(), holding start_lock: UNSTARTED -> STARTING; the same thread then starts the hooks.
 *   - that thread (start_main), holding start_lock: STARTING -> READY or OFF.
 *   - a fork child whose starting thread was not the forking thread: STARTING -> OFF (fork_child).
 *   - reading the environment: -> OFF when the process was not launched by mrhooker, or must not be hooked
 *     (--no-follow). The hook library: -> OFF through mrh_runtime.disable (the script failed to load).
 *   - preload_fini: READY -> OFF after the hook script's atexit handlers ran (first run by exit() just before
 *     ld.so's _dl_fini: preload.c, __libc_start_main).
 * OFF is final in a launched process. In an attached one (attach.c), each attach moves OFF -> UNSTARTED (or
 * READY, when an earlier attach started the hook side, which stays loaded) and its detach moves it back to OFF
 * (mrh_attach_state, holding start_lock). Entry points read it without a lock: a stale read only sends a call
 * through mrh_begin_slow().
 */
enum {
    MRH_UNSTARTED = 0,
    MRH_READY = 1,
    MRH_STARTING = 2,
    MRH_OFF = 3,
};

#define MRH_CSTR_MAX 16

/* A value returned by an original function, kept so that a failing hook can return it. */
typedef union {
    long long i;
    double d;
    long double ld;
    void *p;
} mrh_value;

/* ---- the per-thread state (target side's initial-exec TLS; the hook side reaches it through the thread
 * pointer and mrh_runtime.tls_offset) ---------------------------------------------------------------- */
/* A record's reservation of the trace's ring: the ring's header, where it starts (any filler to the ring's end
 * first) and the record's size. */
/* A signal handler running on a thread (signals.c): its wrapper's frame, the depth before it, and the alternate
 * stack it runs on (else NULL). */
typedef struct mrh_handler {
    char *frame;
    int depth;
    char *stack_lo, *stack_hi;
} mrh_handler;

typedef struct mrh_reservation {
    uint64_t pos;
    void *in;
    uint32_t need;
} mrh_reservation;

typedef struct mrh_thread {
    /* > 0: this thread is inside a hook, the runtime, an original called by a hook, or a signal handler;
     * hooked calls go straight to their originals. Raised and lowered by whoever enters those. */
    int depth;
    int hook_side_ready;  /* the hook namespace's libc has its per-thread state for this thread (thread_init) */
    void *tstate;         /* this thread's Python thread state (hook side), made at its first Python hook (or
                           * the interpreter's own, on the thread that started it); NULL before */
    int tstate_owned;     /* tstate was made for this thread: deleted when the thread ends (thread_exit) */
    /* The thread is ending: its thread-specific data has been destroyed (thread_exit ran), so nothing would
     * delete a thread state made now. Hooks it still runs (libc's per-thread clean-up frees, the exit of a
     * process whose last thread returns) each get a thread state of their own, deleted when they end. */
    int exited;
    /* The Python hook running on this thread (hooks never nest on one thread: see depth). Set by the
     * trampoline, read by set_errno()/get_errno() and the original's wrapper. */
    int entry_errno;      /* errno when the hook was entered: what an original starts with */
    int errno_set;        /* set_errno() was called ... */
    int errno_value;      /* ... with this value */
    int orig_called;      /* the original ran during this hook ... */
    int orig_errno;       /* ... leaving this errno ... */
    mrh_value orig_ret;   /* ... and this result */
    int in_python_hook;   /* a Python hook is running on this thread (between mrh_hook_begin and its end) */
    /* bytes the running hook got for C strings (`const char *` arguments and originals' results), with the
     * pointers they were made from: handed back to C, such an object stands for its pointer, not a copy
     * (strchr's result must point into the caller's string). References held until the hook ends. */
    int ncstr;
    void *cstr_obj[MRH_CSTR_MAX];
    const char *cstr_ptr[MRH_CSTR_MAX];
    int fork_held;        /* fork_prepare's MRH_FORK_*: what fork_parent/fork_child undo on this thread */
    int in_python_fork;   /* between the hook interpreter's PyOS_BeforeFork and PyOS_AfterFork_* (os.fork in a
                           * hook does them itself): set and cleared by its os.register_at_fork callbacks */
    /* The innermost signal handler running on this thread (frame NULL: none), the handler that one interrupted,
     * if it interrupted one, and the outermost (the one that interrupted no handler; the innermost itself when it
     * runs alone). A program that longjmps out of a handler never returns through its wrapper; a later call from
     * an older frame shows it left (mrh_left_handler); a jump may leave several (signals that came as the handler
     * before left by siglongjmp, the mask put back before the stack), or go back into the outer one. Moved by
     * signals.c's wrapper and mrh_left_handler. */
    mrh_handler handler, outer_handler, root_handler;
    /* Writing a record (trace.c's record, its depth raised): one of MRH_RECORDING (none of the ring held),
     * MRH_RESERVING (its compare-and-swap in flight), MRH_RESERVED (a reservation held, not committed yet),
     * MRH_COMMITTED; else 0. A signal handler interrupting it may still record its program's calls, and may wait
     * for room in the ring only if nothing may be reserved (trace.h's MRH_PROGRAM_HANDLER). Moved by trace.c's
     * record and reserve (and by mrh_trace_interrupted, RESERVING to RESERVED, the compare-and-swap having
     * succeeded). */
    int recording;
    /* The reservation (from MRH_RESERVING on), so that a program leaving a handler by longjmp, which abandons the
     * record the handler interrupted, can fill it in (trace.c's mrh_trace_abandon); while a signal handler's
     * record runs inside the thread's own, that one's in outer_reserved (need 0: none). Moved by trace.c's
     * reserve and write_nested_record. */
    mrh_reservation reserved, outer_reserved;
} mrh_thread;
enum { MRH_RECORDING = 1, MRH_RESERVING = 2, MRH_RESERVED = 3, MRH_COMMITTED = 4 };

/* fork_held: what the hook side's fork_prepare did on the forking thread */
enum {
    MRH_FORK_NOTHING = 0,     /* no hooks, or os.fork in a hook's Python: CPython's own protocol runs */
    MRH_FORK_TOOK_GIL = 1,    /* it took the GIL and ran PyOS_BeforeFork: give the GIL back after */
    MRH_FORK_HAD_GIL = 2,     /* the thread held the GIL already (an original that forks, called with it): it ran
                               * PyOS_BeforeFork only */
};

/* The errno the caller of a Python hook sees: what set_errno() said, else what the original left, else what
 * it was when the hook was entered. (Also what get_errno() tells the hook.) */
static inline int mrh_hook_errno(const mrh_thread *t)
{
    return t->errno_set ? t->errno_value : t->orig_called ? t->orig_errno : t->entry_errno;
}

/* One hooked symbol. The table is generated into the preload library; the runtime fills original and impl. */
typedef struct mrh_slot {
    const char *name;        /* the symbol */
    const char *impl_symbol; /* its implementation in the hook library */
    void *original;          /* the next definition after the preload library (resolve.c) */
    void *impl;              /* the implementation, once READY */
    int results;             /* the registers its result comes back in (1 rax, 2 rdx, 4 xmm0, 8 xmm1): what
                              * patch.c's thunk leaves as the entry point set them (codegen.result_registers) */
    int stack_words;         /* eightbytes of its arguments on the stack: what the thunk copies for the entry point
                              * (codegen.stack_words) */
} mrh_slot;

/* ---- target side -> hook side, at start -------------------------------------------------------------- */
typedef struct mrh_runtime {
    long tls_offset;                 /* &mrh_tls minus the thread pointer: the same in every thread */
    long errno_offset;               /* the target's errno likewise (libc's initial-exec TLS) */
    mrh_slot *slots;
    int nslots;
    void *(*resolve)(int slot);              /* the original of a slot, looked up if it is not known yet */
    void *(*original)(const char *name);     /* the next definition of any symbol (Cython's original()) */
    void (*disable)(void);                   /* hooks off in this process from now on */
    void (*track_thread_state)(mrh_thread *t);  /* t has a Python thread state: thread_exit when the thread ends */
    /* The hook settings (MRHOOKER_* as this process got them) */
    const char *kind, *module, *script, *hooks_path, *python_path, *python_home, *executable;
    const char *output, *output_id;
    const char *report, *report_id;  /* the launcher's report file (preload.c, reports) */
    /* What the hook namespace takes from the target's libc instead of its own (namespace.c says why). */
    struct {
        void *(*malloc)(size_t);
        void *(*calloc)(size_t, size_t);
        void *(*realloc)(void *, size_t);
        void (*free)(void *);
        void *(*memalign)(size_t, size_t);
        int (*posix_memalign)(void **, size_t, size_t);
        void *(*aligned_alloc)(size_t, size_t);
        size_t (*malloc_usable_size)(void *);
    } alloc;
    int (*key_create)(pthread_key_t *, void (*)(void *));
    int (*key_delete)(pthread_key_t);
    void *(*getspecific)(pthread_key_t);
    int (*setspecific)(pthread_key_t, const void *);
    int (*thread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    pid_t (*fork)(void);
    int detached;   /* an attached process's detach has happened, and no attach since (preload.c,
                     * mrh_attach_state; set before park_output): a hook still running must not open the
                     * output again (pyrt.c, output_descriptor) */
} mrh_runtime;

/* ---- hook side -> target side ------------------------------------------------------------------------ */
typedef struct mrh_hook_ops {
    void (*thread_init)(void);           /* a thread's first hooked call: the hook namespace's libc state */
    void (*thread_exit)(mrh_thread *t);  /* the thread ends: delete its Python thread state if it made one */
    void (*fork_prepare)(mrh_thread *t); /* PyOS_BeforeFork, with the GIL: no other thread holds it at the fork */
    void (*fork_parent)(mrh_thread *t);
    void (*fork_child)(mrh_thread *t);
    void (*at_exit)(void);               /* run the hook script's atexit handlers, flush hook output */
    void *(*symbol)(const char *name);   /* a symbol of the hook library: the slots' implementations */
    void (*park_output)(void);           /* an attached process's detach (preload.c, mrh_attach_state): the
                                          * hook output's descriptor let go of, its number kept (pyrt.c) */
} mrh_hook_ops;

/* The hook library's one entry point (pyrt.c). NULL: hooks can't run (it has said why). */
typedef const mrh_hook_ops *(*mrh_hook_start_fn)(const mrh_runtime *rt);

/* ---- the environment protocol --------------------------------------------------------------------------
 * Written by the launcher (launch.py, hook_environment) into the target's environment; read once per
 * process by the preload library (preload.c, read_settings) and copied, because the target may change its
 * environment. Inherited by exec'd children, and put back by follow.c's exec wrappers when a program execs
 * with an environment of its own. Stripped (with our LD_PRELOAD entry) by a --no-follow process.
 *   MRHOOKER_HOOKS         the hook library (a resolved path in a private directory)
 *   MRHOOKER_RUNTIME       the hook side's runtime library (pyrt.so), likewise
 *   MRHOOKER_KIND          "pyx" or "py"
 *   MRHOOKER_MODULE        the hook script's module name
 *   MRHOOKER_SCRIPT        the .py script's path (kind "py")
 *   MRHOOKER_PYTHONPATH    sys.path for the hooks' interpreter, one entry per line
 *   MRHOOKER_PYTHONHOME    its home (the launching Python's sys.base_prefix)
 *   MRHOOKER_PYTHON        its sys.executable
 *   MRHOOKER_OUTPUT        where hook output goes: a path each process opens itself
 *   MRHOOKER_OUTPUT_ID     "DEV:INO" that path must have (else output is dropped, never misdirected)
 *   MRHOOKER_REPORT        the launcher's file of records about the run (preload.c, reports; runreport.py)
 *   MRHOOKER_REPORT_ID     "DEV:INO" it must have
 *   MRHOOKER_FOLLOW        "0": hook only the launcher's child (--no-follow)
 *   MRHOOKER_PARENT        the launcher's pid (for --no-follow)
 *   MRHOOKER_START_WAIT_MS how long a thread waits for another thread's start (default 5000)
 *   MRHOOKER_TRACE         `mrhooker trace`: the shared file calls are recorded into (trace.h), instead of
 *                          the hook settings above
 *   MRHOOKER_TRACE_ID      "DEV:INO" it must have
 *   MRHOOKER_ENTRY         the functions to hook at their entry, and how (patch.c; written by atentry.py)
 *   MRHOOKER_MAPS          a traced process copies its /proc/self/maps to this path + ".PID" when it starts
 *                          tracing and at its exit (trace.c): where its calls' sites are (`mrhooker sweep`)
 *   MRHOOKER_ATTACH        attached (mrhooker -p): the unix socket to mrhooker the process holds (attach.c).
 *                          An attach's settings are not in the environment: attached.py passes them, as
 *                          NAME=value strings, to mrhooker_attach(), and read_settings reads them from there.
 */

#endif

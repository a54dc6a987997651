/* mrhooker_rt.h: the contract between the pieces of one hook build.
 *
 *   preload library  preload.c + generated entry points (one exported function per hooked symbol).
 *                    LD_PRELOADed into the target. It does not link libpython, so a process that never
 *                    calls a hooked function pays only for loading a small library.
 *   hook library     pyrt.c + the user's Cython module (.pyx) or generated trampolines (.py).
 *                    dlopen'd by the preload library at the first hooked call, after libpython is there.
 *
 * The hook library reaches the preload library's globals and thread-local state directly: the preload
 * library is always loaded first, and its TLS is in the static TLS block (initial-exec model).
 */
#ifndef MRHOOKER_RT_H
#define MRHOOKER_RT_H

#include <stddef.h>

#define MRH_LIKELY(x) __builtin_expect(!!(x), 1)
#define MRH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MRH_EXPORT __attribute__((visibility("default")))

/* Process-wide state of the runtime (mrh_state). */
enum {
    MRH_UNSTARTED = 0, /* no hooked call yet: the next one starts Python */
    MRH_READY = 1,     /* hooks run */
    MRH_STARTING = 2,  /* one thread is starting Python; others wait or use the original */
    MRH_WAITING = 3,   /* the target is Python and its interpreter is not initialized yet */
    MRH_OFF = 4        /* hooks never run in this process (not followed, failed start, exiting) */
};

/* A value returned by an original function, kept so that a failing hook can return it. */
typedef union {
    long long i;
    double d;
    long double ld;
    void *p;
} mrh_value;

/* Per-thread state. One per thread, in static TLS; all fields start at zero. */
typedef struct mrh_thread {
    int depth;            /* > 0: inside a hook, the runtime or a signal handler: hooked calls go to the original */
    int attached;         /* this thread has a Python thread state that lives as long as the thread */
    int owns_tstate;      /* ... and the runtime made it (so deletes it at thread exit) */
    void *tstate;         /* that thread state, where only the runtime can delete it (own interpreter): saves
                           * a lookup per hook; NULL otherwise */
    int gil_taken;        /* the running hook took the GIL itself, so may drop it around original calls */
    int errno_set;        /* set_errno() was called in the running hook ... */
    int errno_value;      /* ... with this value, applied after the GIL is released */
    int entry_errno;      /* errno when the running hook was entered: what an original call starts with */
    int orig_slot;        /* slot whose original ran during the running hook, -1 if none */
    int orig_errno;       /* errno right after that original call */
    mrh_value orig_ret;   /* and its result */
    int fork_held;        /* this thread took the GIL in the fork prepare handler */
    int fork_locked;      /* ... and start_lock */
} mrh_thread;

/* One hooked symbol. The table is generated; the runtime fills original and impl. */
typedef struct mrh_slot {
    const char *name;        /* the symbol */
    const char *impl_symbol; /* its implementation in the hook library */
    void *original;          /* the next definition (RTLD_NEXT) */
    void *impl;              /* the implementation, once the runtime is READY */
} mrh_slot;

/* What the hook library needs from the preload library to start. */
typedef struct mrh_start_args {
    int attach;                /* 1: the target runs Python already; 0: start our own interpreter */
    const char *kind;          /* "pyx" or "py" */
    const char *module;        /* module name of the hook script */
    const char *script;        /* path of the .py script (kind "py"), or NULL */
    const char *hooks_path;    /* path of the hook library itself */
    const char *python_path;   /* sys.path of the Python that ran mrhooker, joined with ':' */
    const char *python_home;   /* its sys.prefix */
    const char *executable;    /* its sys.executable */
    const char *output;        /* where hook output goes: a path, or NULL for our stderr */
} mrh_start_args;

/* Entry points of the hook library, returned by its mrh_hooklib_start(). */
typedef struct mrh_hooklib_ops {
    void (*attach_thread)(mrh_thread *t); /* give this thread a lasting Python thread state */
    void (*detach_thread)(mrh_thread *t); /* at thread exit: delete it again */
    void (*fork_prepare)(mrh_thread *t);
    void (*fork_parent)(mrh_thread *t);
    void (*fork_child)(mrh_thread *t);
    void (*at_exit)(mrh_thread *t);       /* run the hook module's atexit handlers */
} mrh_hooklib_ops;

typedef const mrh_hooklib_ops *(*mrh_hooklib_start_fn)(const mrh_start_args *args);

/* Defined by the preload library. */
extern __thread mrh_thread mrh_tls __attribute__((tls_model("initial-exec")));
extern volatile int mrh_state;
extern mrh_slot mrh_slots[];
extern const int mrh_nslots;

int mrh_begin_slow(mrh_thread *t);           /* may this hooked call run its hook? Starts the runtime if needed */
void mrh_attach_thread(mrh_thread *t);       /* first hook on this thread */
void *mrh_resolve(int slot);                 /* the original of a slot, resolving it if needed */
void *mrh_original(const char *name);        /* the next definition of any symbol, cached */
void mrh_warn(const char *fmt, ...);         /* one line to the hook output's destination, "mrhooker: " first */
void mrh_disable(void);                      /* hooks off in this process from now on */

/* Bootstrap allocator: serves malloc/calloc while their originals are being looked up (glibc's dlsym may
 * allocate), so hooks on the allocator itself are possible. */
void *mrh_boot_alloc(size_t size);
int mrh_boot_owns(const void *p);
size_t mrh_boot_size(const void *p);

#endif

/* preload.c (target side): settings, starting the hook side, threads, fork and exit.
 *
 * The generated entry points (entry.h) run a hook only when the process is READY; everything else comes
 * through mrh_begin_slow(), which starts the hook side at the first hooked call (lazy start): a process that
 * never calls a hooked function (a shell, most of what a build runs) never loads Python.
 *
 * Starting, and its hazards:
 * - The first hooked call can come from anywhere: inside setlocale() (holding libc's locale lock), inside a
 *   Python target's take_gil() (holding its GIL's mutex), inside a constructor run by dlopen (holding the
 *   dynamic loader's lock), on a thread with a small stack.
 *   Idea: the start needs none of the target's locks: the hook side has its own libc and interpreter, and the
 *   loader's locks are recursive, so the calling thread starts the hooks itself (start_here), on a stack of
 *   the runtime's own (8 MiB, swapcontext), whatever locks it holds.
 * - A call made by the dynamic loader's own code (its allocations during dlopen) comes in the middle of the
 *   loader's work, with its lists half updated: no dlmopen may run there.
 *   Idea: such calls go to the original, without a start (mrh_in_loader).
 * - Other threads call hooked functions while one thread starts the hooks.
 *   Idea: they wait for the start, so that no call is lost. The exception: a thread holding a lock the start
 *   needs (the loader's: in a dlopen constructor or dl_iterate_phdr callback of its own) would wait forever.
 *   Waiting has a limit (MRHOOKER_START_WAIT_MS, 5 s); a thread that reached it makes its calls unhooked
 *   until the start is done, and the number of such calls is reported.
 * - Calls made before this library's constructor (other libraries' constructors run first) do the runtime's
 *   set-up early (preload_init runs once, from whichever comes first).
 */
#define _GNU_SOURCE
#include "preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "output.h"

__thread mrh_thread mrh_tls __attribute__((tls_model("initial-exec")));
int mrh_state = MRH_UNSTARTED;
mrh_settings mrh_config;

/* ---- set-up, once per process -------------------------------------------------------------------------- */

/* 0 before preload_init, 1 while it runs, 2 after. Moved only by preload_init (compare-and-swap). */
static int init_state;

/* start_lock guards mrh_state's moves out of UNSTARTED and STARTING, and the start_* variables; it is held
 * across fork() so that no start is half done in the child. start_done is broadcast when STARTING ends. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_done;
static pthread_t start_owner;           /* the thread starting the hooks, while STARTING */
static unsigned long start_missed;      /* calls that went to the original because their thread gave up
                                         * waiting for the start (atomic) */
/* This thread waited for another thread's start as long as it may: until READY, its calls don't wait. */
static __thread int start_gave_up __attribute__((tls_model("initial-exec")));
static const mrh_hook_ops *ops;         /* the hook side's entry points, once READY (never changes after) */
static pid_t start_pid;                 /* the process that started: the one whose atexit handlers run */
static pthread_key_t thread_key;        /* its destructor deletes a thread's Python thread state */

/* ---- messages ------------------------------------------------------------------------------------------ */

void mrh_warn(const char *fmt, ...)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;   /* open, write, close: the runtime's calls, not the program's */
    int saved = errno;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = mrh_output_format_warning(line, sizeof line, fmt, ap);
    va_end(ap);
    int fd = mrh_output_open(mrh_config.output, mrh_config.output_id);
    if (fd >= 0) {
        mrh_output_write_all(fd, line, n);
        close(fd);
    }
    t->depth--;
    errno = saved;
}

/* ---- settings ------------------------------------------------------------------------------------------ */

static char settings_store[1 << 16];   /* copies: the target may change its environment later */
static size_t settings_used;

static const char *setting(const char *name)
{
    const char *v = getenv(name);
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n + 1 > sizeof settings_store - settings_used) return NULL;
    char *copy = settings_store + settings_used;
    memcpy(copy, v, n + 1);
    settings_used += n + 1;
    return copy;
}

static void read_settings(void)
{
    mrh_settings *c = &mrh_config;
    c->trace = setting("MRHOOKER_TRACE");
    c->trace_id = setting("MRHOOKER_TRACE_ID");
    c->hooks = setting("MRHOOKER_HOOKS");
    c->runtime = setting("MRHOOKER_RUNTIME");
    c->kind = setting("MRHOOKER_KIND");
    c->module = setting("MRHOOKER_MODULE");
    c->script = setting("MRHOOKER_SCRIPT");
    c->python_path = setting("MRHOOKER_PYTHONPATH");
    c->python_home = setting("MRHOOKER_PYTHONHOME");
    c->executable = setting("MRHOOKER_PYTHON");
    c->output = setting("MRHOOKER_OUTPUT");
    c->output_id = setting("MRHOOKER_OUTPUT_ID");
    const char *follow = getenv("MRHOOKER_FOLLOW");
    c->follow = !follow || strcmp(follow, "0") != 0;
    const char *wait = getenv("MRHOOKER_START_WAIT_MS");
    c->start_wait_ms = wait && *wait ? atol(wait) : 5000;
    /* Launched by mrhooker (to hook or to trace), and not a child --no-follow excludes. */
    c->active = (c->hooks || c->trace) != 0;
    if (c->active && !c->follow) {
        const char *parent = getenv("MRHOOKER_PARENT");
        if (!parent || atol(parent) != (long)getppid()) c->active = 0;
    }
    if (!c->active || !c->hooks || !c->runtime || !c->kind || !c->module) mrh_state = MRH_OFF;
}

/* ---- threads ------------------------------------------------------------------------------------------- */

/* Hazard: a thread's Python thread state must be deleted when the thread ends, but hooks may run on the thread
 * after thread_key's destructor: in the program's own destructors of later keys, and in libc's clean-up after
 * every destructor (its frees of per-thread buffers). A thread state made there after the runtime deleted the
 * thread's own is never deleted; in the child of a fork from a thread, whose only thread state that was,
 * CPython 3.11 aborted making it ("init_threadstate: thread state already initialized").
 * Idea: the destructor sets its value again until libc's last round (PTHREAD_DESTRUCTOR_ITERATIONS), so the
 * thread state outlives the program's destructors; it is deleted in that round, and the depth stays raised:
 * what the thread calls after that is libc's clean-up, which goes to the originals. */
static __thread int exit_rounds __attribute__((tls_model("initial-exec")));   /* this thread's destructor calls */

static void thread_exit(void *arg)   /* thread_key's destructor */
{
    mrh_thread *t = arg;
    if (!t->tstate || !ops) return;
    t->depth++;
    if (++exit_rounds < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(thread_key, t);   /* called again in the next round */
        t->depth--;
        return;
    }
    ops->thread_exit(t);   /* the depth stays raised (see above) */
}

static void track_thread_state(mrh_thread *t)   /* the hook side made t's Python thread state */
{
    t->depth++;
    pthread_setspecific(thread_key, t);
    t->depth--;
}

void mrh_first_hook_on_thread(mrh_thread *t)
{
    t->depth++;
    int saved = errno;
    ops->thread_init();
    t->hook_side_ready = 1;
    t->depth--;
    errno = saved;
}

/* ---- starting ------------------------------------------------------------------------------------------ */

static mrh_runtime runtime;   /* handed to the hook side; filled by fill_runtime before the start */

static void fill_runtime(void)
{
    mrh_runtime *r = &runtime;
    r->tls_offset = (char *)&mrh_tls - (char *)__builtin_thread_pointer();
    r->errno_offset = (char *)&errno - (char *)__builtin_thread_pointer();
    r->slots = mrh_slots;
    r->nslots = mrh_nslots;
    r->resolve = mrh_resolve;
    r->original = mrh_original;
    r->disable = NULL;   /* set below: a static function */
    r->track_thread_state = track_thread_state;
    mrh_settings *c = &mrh_config;
    r->kind = c->kind, r->module = c->module, r->script = c->script, r->hooks_path = c->hooks;
    r->python_path = c->python_path, r->python_home = c->python_home, r->executable = c->executable;
    r->output = c->output, r->output_id = c->output_id;
#define ORIGINAL(field, name) r->field = (__typeof__(r->field))mrh_original(name)
    ORIGINAL(alloc.malloc, "malloc");
    ORIGINAL(alloc.calloc, "calloc");
    ORIGINAL(alloc.realloc, "realloc");
    ORIGINAL(alloc.free, "free");
    ORIGINAL(alloc.memalign, "memalign");
    ORIGINAL(alloc.posix_memalign, "posix_memalign");
    ORIGINAL(alloc.aligned_alloc, "aligned_alloc");
    ORIGINAL(alloc.malloc_usable_size, "malloc_usable_size");
    ORIGINAL(key_create, "pthread_key_create");
    ORIGINAL(key_delete, "pthread_key_delete");
    ORIGINAL(getspecific, "pthread_getspecific");
    ORIGINAL(setspecific, "pthread_setspecific");
    ORIGINAL(thread_create, "pthread_create");
    ORIGINAL(fork, "fork");
#undef ORIGINAL
}

static void disable(void) { __atomic_store_n(&mrh_state, MRH_OFF, __ATOMIC_RELEASE); }

/* Loads the hook side into a namespace of its own and starts it. Runs with depth raised: hooked calls made
 * by the loader, the hook namespace's set-up and the hook script's import go to their originals. */
static const mrh_hook_ops *load_hook_side(void)
{
    fill_runtime();
    runtime.disable = disable;
    /* The runtime library, with libpython and a libc of its own, forms the namespace's global scope, so its
     * definitions (namespace.c) are what that libc and libpython call. It loads the hook library itself,
     * RTLD_LOCAL, so that the hooks a Cython script exports (`cdef extern ssize_t write(...)`) are not. */
    void *lib = dlmopen(LM_ID_NEWLM, mrh_config.runtime, RTLD_NOW | RTLD_LOCAL);
    mrh_hook_start_fn start = lib ? (mrh_hook_start_fn)dlsym(lib, "mrh_hook_start") : NULL;
    if (!start) {
        mrh_warn("cannot load %s: %s; hooks are off in this process", mrh_config.runtime, dlerror());
        return NULL;
    }
    const mrh_hook_ops *started = start(&runtime);   /* says why itself when it fails */
    if (!started) return NULL;
    for (int i = 0; i < mrh_nslots; i++) {
        mrh_slots[i].impl = started->symbol(mrh_slots[i].impl_symbol);
        if (!mrh_slots[i].impl) {
            mrh_warn("the hook library %s has no %s; hooks are off in this process", mrh_config.hooks,
                     mrh_slots[i].impl_symbol);
            return NULL;
        }
    }
    return started;
}

/* The start itself, on the starting thread (depth raised), on the runtime's own stack. */
static void start_main(void)
{
    mrh_thread *t = &mrh_tls;
    const mrh_hook_ops *started = load_hook_side();
    pthread_mutex_lock(&start_lock);
    if (started && mrh_state == MRH_STARTING) {
        ops = started;
        start_pid = getpid();
        t->hook_side_ready = 1;   /* the namespace's libc set up this thread itself when it was loaded */
        __atomic_store_n(&mrh_state, MRH_READY, __ATOMIC_RELEASE);
    } else {
        __atomic_store_n(&mrh_state, MRH_OFF, __ATOMIC_RELEASE);
    }
    unsigned long missed = __atomic_load_n(&start_missed, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&start_done);
    pthread_mutex_unlock(&start_lock);
    if (missed && started)
        mrh_warn("%lu hooked call%s went to the original while the hooks started: %s waited %ld ms for the "
                 "start, holding a lock the start needs (the dynamic loader's, in a constructor run by dlopen)",
                 missed, missed == 1 ? "" : "s", missed == 1 ? "its thread" : "their threads",
                 mrh_config.start_wait_ms);
}

/* Runs the start on this thread, on a stack of the runtime's own: the calling thread's may be small (a
 * coroutine's), and Python's start and the hook script's imports go deep. */
static void start_here(void)
{
    enum { STACK = 8 << 20, GUARD = 1 << 16 };
    char *stack = mmap(NULL, STACK + GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                       MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        start_main();
        return;
    }
    mprotect(stack, GUARD, PROT_NONE);
    ucontext_t caller, starter;
    getcontext(&starter);
    starter.uc_stack.ss_sp = stack + GUARD;
    starter.uc_stack.ss_size = STACK;
    starter.uc_link = &caller;
    makecontext(&starter, start_main, 0);
    swapcontext(&caller, &starter);
    munmap(stack, STACK + GUARD);
}

/* With start_lock held: waits until the state is no longer STARTING, or for the limit (see the top). */
static void wait_for_start(void)
{
    if (start_gave_up) return;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += mrh_config.start_wait_ms / 1000;
    deadline.tv_nsec += (mrh_config.start_wait_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) deadline.tv_sec++, deadline.tv_nsec -= 1000000000;
    while (mrh_state == MRH_STARTING)
        if (pthread_cond_clockwait(&start_done, &start_lock, CLOCK_MONOTONIC, &deadline) == ETIMEDOUT) {
            start_gave_up = 1;
            return;
        }
}

static void preload_init(void);

int mrh_init_for_call(const void *caller)
{
    if (MRH_LIKELY(__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 2)) return 1;
    if (mrh_in_loader(caller)) return 0;
    preload_init();   /* called before this library's constructor: a constructor of another library */
    return __atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 2;
}

int mrh_begin_slow(mrh_thread *t, const void *caller)
{
    if (MRH_INSIDE(t) || !mrh_init_for_call(caller)) return 0;
    int state = __atomic_load_n(&mrh_state, __ATOMIC_ACQUIRE);
    if (state == MRH_READY) return 1;
    if (state == MRH_OFF || mrh_in_loader(caller)) return 0;
    t->depth++;
    int saved = errno;
    pthread_mutex_lock(&start_lock);
    if (mrh_state == MRH_UNSTARTED) {
        __atomic_store_n(&mrh_state, MRH_STARTING, __ATOMIC_RELEASE);
        start_owner = pthread_self();
        pthread_mutex_unlock(&start_lock);   /* other threads wait on start_done meanwhile */
        start_here();
        pthread_mutex_lock(&start_lock);
    } else if (mrh_state == MRH_STARTING && !pthread_equal(start_owner, pthread_self())) {
        wait_for_start();
    }
    state = mrh_state;
    if (state == MRH_STARTING) __atomic_add_fetch(&start_missed, 1, __ATOMIC_RELAXED);
    if (state != MRH_STARTING) start_gave_up = 0;
    pthread_mutex_unlock(&start_lock);
    t->depth--;
    errno = saved;
    return state == MRH_READY;
}

/* ---- fork ---------------------------------------------------------------------------------------------- */

/* Idea: at a fork, no start is half done (start_lock is held across it, after any start in progress ends)
 * and no other thread holds the hook side's GIL (this thread takes it, unless it holds it already: a hook's
 * Python that forks, where CPython's own os.fork does the same). The child then re-initialises what other
 * threads held. */
static void fork_prepare(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    t->fork_held = 0;
    pthread_mutex_lock(&start_lock);
    t->fork_locked = 1;
    if (mrh_state == MRH_STARTING && !pthread_equal(start_owner, pthread_self())) wait_for_start();
    if (mrh_state == MRH_READY) ops->fork_prepare(t);
    t->depth--;
}

static void fork_parent(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    if (t->fork_held) ops->fork_parent(t);
    if (t->fork_locked) pthread_mutex_unlock(&start_lock);
    t->fork_locked = 0;
    t->depth--;
}

static void fork_child(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    /* Only this thread exists in the child: what other threads held is reset. */
    pthread_mutex_init(&start_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&start_done, &attr);
    t->fork_locked = 0;
    if (mrh_state == MRH_STARTING && !pthread_equal(start_owner, pthread_self())) {
        mrh_state = MRH_OFF;   /* the starting thread is not in the child */
        mrh_warn("this process forked while its hooks were still starting: the child runs unhooked");
    }
    mrh_resolve_after_fork();
    if (t->fork_held) ops->fork_child(t);
    t->depth--;
}

/* vfork() children share the parent's memory: a hook run there would change the parent's interpreter. The
 * runtime's vfork is fork(), which every correct use of vfork allows. (posix_spawn does not call vfork() and
 * runs no hooks in its child.) */
MRH_EXPORT pid_t vfork(void) { return fork(); }

/* ---- load and exit ------------------------------------------------------------------------------------- */

__attribute__((constructor)) static void preload_init(void)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&init_state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    mrh_thread *t = &mrh_tls;
    t->depth++;
    int saved = errno;
    mrh_resolve_init();
    read_settings();
    mrh_follow_init();
    mrh_signals_init();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&start_done, &attr);
    /* Both survive fork and exec replaces them: set up once per program, before any start, so that a fork
     * while another thread starts waits for it (fork_prepare). */
    pthread_key_create(&thread_key, thread_exit);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    errno = saved;
    t->depth--;
    __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
}

/* Runs in ld.so's _dl_fini, after the target's atexit handlers, so hooks see everything the target does on
 * the way out; stdio buffers are flushed here, through the hooks, rather than later without them. */
__attribute__((destructor)) static void preload_fini(void)
{
    mrh_thread *t = &mrh_tls;
    if (__atomic_load_n(&mrh_state, __ATOMIC_ACQUIRE) != MRH_READY) return;
    int outside_hooks = t->depth == 0;
    t->depth++;   /* getpid() and the rest: the runtime's own calls, not the program's */
    pid_t pid = getpid();
    t->depth--;
    if (pid != start_pid) return;
    if (outside_hooks) fflush(NULL);
    t->depth++;
    ops->at_exit();
    __atomic_store_n(&mrh_state, MRH_OFF, __ATOMIC_RELEASE);
    t->depth--;
}

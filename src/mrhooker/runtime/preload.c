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
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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
static const mrh_hook_ops *ops;         /* the hook side's entry points, once READY (never changes after, but
                                         * for an attach after another build's: mrh_attach_state) */
static pid_t start_pid;                 /* the process that started: the one whose atexit handlers run */
static pthread_key_t thread_key;        /* set in every thread; its destructor marks the thread as ending and
                                         * deletes the Python thread state made for it (thread_exit) */

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
        mrh_output_write_all(fd, line, n, 1);
        close(fd);
    }
    t->depth--;
    errno = saved;
}

/* ---- reports to the launcher ---------------------------------------------------------------------------
 *
 * Hazard: a hooked name that no library defines (a typo: unlinkatt), or hooks that can't start (a script that
 * fails to import), leave the program running unhooked, silently but for a line far up in the output.
 * Idea: each process of a hooked run appends records, whole lines, to a file of the launcher's (opened and
 * checked as the hook output is: output.h); after the run, mrhooker sums them up in its last lines
 * (runreport.py). The records:
 *   missing KEY [NAME...]  at load: the hooked names nothing loaded defines (KEY: this process image; none:
 *                          it found them all)
 *   found NAME             one of them that a library loaded since defines: when its original is found
 *                          (a call looks it up), or at exit
 *   unstarted              the hooks could not start here (the hook output says why)
 *   lost ERRNO             the hook output could not be written here (pyrt.c, output_lost): some of it is lost
 * Every hooked process writes one at load (~10 µs), so that a name found in any process is not reported. */

/* Per slot: no original at load, and none found since (mrh_report_resolved clears it: two threads finding one
 * at once only report it twice). mrh_boot_alloc'd at load. */
static unsigned char *missing_at_load;

static void report(const char *line, size_t n)   /* with depth raised */
{
    if (!mrh_config.report) return;
    int fd = mrh_output_open(mrh_config.report, mrh_config.report_id);
    if (fd < 0) return;
    mrh_output_write_all(fd, line, n, 1);
    close(fd);
}

/* "missing KEY NAME..." for the slots missing_at_load marks, in lines of at most 4 kB (each starting with head). */
static void report_missing(const char *head)
{
    char line[4096];
    size_t head_n = strlen(head), used = 0;
    for (int i = 0; i < mrh_nslots; i++) {
        size_t n = strlen(mrh_slots[i].name);
        if (!missing_at_load[i] || head_n + n + 2 > sizeof line) continue;
        if (used && used + n + 2 > sizeof line) {
            line[used++] = '\n';
            report(line, used);
            used = 0;
        }
        if (!used) {
            memcpy(line, head, head_n);
            used = head_n;
        }
        line[used++] = ' ';
        memcpy(line + used, mrh_slots[i].name, n);
        used += n;
    }
    if (used) {
        line[used++] = '\n';
        report(line, used);
    }
}

void mrh_report_resolved(int slot)   /* resolve.c: a slot's original was found after load (dlopen) */
{
    if (!missing_at_load || !missing_at_load[slot]) return;
    missing_at_load[slot] = 0;   /* reported once, now (the process may never exit normally) */
    mrh_thread *t = &mrh_tls;
    t->depth++;
    int saved = errno;
    char line[600];
    int n = snprintf(line, sizeof line, "found %.512s\n", mrh_slots[slot].name);
    report(line, (size_t)n);
    errno = saved;
    t->depth--;
}

static void report_at_load(void)   /* preload_init, with depth raised */
{
    if (!mrh_config.report || !mrh_config.hooks || mrh_state == MRH_OFF) return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char head[64];
    snprintf(head, sizeof head, "missing %ld:%lld", (long)getpid(), (long long)now.tv_sec * 1000000000 + now.tv_nsec);
    missing_at_load = mrh_boot_alloc(mrh_nslots + 1);
    int missing = 0;
    for (int i = 0; i < mrh_nslots && missing_at_load; i++) missing += missing_at_load[i] = !mrh_slots[i].original;
    if (!missing) {
        size_t n = strlen(head);
        head[n] = '\n';
        report(head, n + 1);
        return;
    }
    report_missing(head);
}

static void report_at_exit(void)   /* preload_fini, with depth raised */
{
    for (int i = 0; missing_at_load && i < mrh_nslots; i++)
        if (missing_at_load[i]) mrh_resolve(i);   /* found now (a library loaded since): reported */
}

/* ---- settings ------------------------------------------------------------------------------------------ */

static char settings_store[1 << 16];   /* copies: the target may change its environment later */
static size_t settings_used;           /* only grows: an attach's settings go after the last one's, whose
                                        * strings the hook side may still hold */
static const char *settings_text;      /* an attach's settings, "NAME=value" strings each ended by a NUL and
                                        * the list by an empty one, read instead of the environment (attach.c) */

/* NAME's value in an attach's settings text, or in the environment when there is none (text NULL). */
const char *mrh_setting_in(const char *text, const char *name)
{
    if (!text) return getenv(name);
    size_t n = mrh_length(name);
    for (const char *entry = text; *entry; entry += strlen(entry) + 1)
        if (strncmp(entry, name, n) == 0 && entry[n] == '=') return entry + n + 1;
    return NULL;
}

static const char *lookup(const char *name) { return mrh_setting_in(settings_text, name); }

static const char *setting(const char *name)
{
    const char *v = lookup(name);
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
    c->report = setting("MRHOOKER_REPORT");
    c->report_id = setting("MRHOOKER_REPORT_ID");
    c->attach = setting("MRHOOKER_ATTACH");
    c->maps = setting("MRHOOKER_MAPS");
    const char *follow = lookup("MRHOOKER_FOLLOW");
    c->follow = !follow || strcmp(follow, "0") != 0;
    const char *wait = lookup("MRHOOKER_START_WAIT_MS");
    c->start_wait_ms = wait && *wait ? atol(wait) : 5000;
    /* Launched by mrhooker (to hook or to trace), and not a child --no-follow excludes; or attached. */
    c->active = (c->hooks || c->trace) != 0;
    if (c->active && !c->follow && !settings_text) {
        const char *parent = lookup("MRHOOKER_PARENT");
        if (!parent || atol(parent) != (long)getppid()) c->active = 0;
    }
    if (!c->active || !c->hooks || !c->runtime || !c->kind || !c->module) mrh_state = MRH_OFF;
}

/* attach.c: an attach's settings replace the environment's (read at load, when there were none). */
void mrh_attach_settings(const char *text)
{
    settings_text = text;
    memset(&mrh_config, 0, sizeof mrh_config);
    read_settings();
    settings_text = NULL;
}

/* ---- threads -------------------------------------------------------------------------------------------
 *
 * Hazard: a thread's Python thread state is deleted by thread_key's destructor, which glibc runs before its
 * own per-thread clean-up: __libc_thread_freeres frees buffers with free(), and a process whose last thread
 * returns exits on that thread. A thread state made for a hook run after the destructor would never be
 * deleted: one leaked per thread, without end in a program that starts threads all day, and even for a
 * thread whose first hooked call is that clean-up.
 * Idea: every thread carries thread_key from its start (the program's pthread_create starts threads through
 * thread_start; the main thread sets it at load), so its destructor always runs and marks the thread as ending
 * (mrh_thread.exited); each hook run after that gets a thread state of its own (pyrt.h, mrh_release). */

static void thread_exit(void *arg)   /* thread_key's destructor, on the ending thread */
{
    mrh_thread *t = &mrh_tls;
    (void)arg;
    t->exited = 1;
    if (t->tstate && ops) {
        t->depth++;
        ops->thread_exit(t);
        t->depth--;
    }
}

static void track_thread_state(mrh_thread *t)   /* the hook side made t's Python thread state */
{
    t->depth++;
    pthread_setspecific(thread_key, t);   /* already set, unless the thread started before this library */
    t->depth--;
}

static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

struct thread_start {
    void *(*routine)(void *);
    void *arg;
};

static void *thread_start(void *p)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    struct thread_start start = *(struct thread_start *)p;
    free(p);
    pthread_setspecific(thread_key, t);
    t->depth--;
    return start.routine(start.arg);
}

/* The program's pthread_create (and the hook namespace's: namespace.c), unless a hook script hooks it: then
 * this is that hook's original (resolve.c, caller_proof). Threads started before this library's constructor,
 * or while the process is not hooked, start as they are. */
static int runtime_pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*routine)(void *), void *arg)
{
    if (MRH_UNLIKELY(!real_pthread_create)) {
        real_pthread_create = (__typeof__(real_pthread_create))mrh_lookup_next("pthread_create");
        if (!real_pthread_create) return EAGAIN;
    }
    if (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2 || __atomic_load_n(&mrh_state, __ATOMIC_ACQUIRE) == MRH_OFF)
        return real_pthread_create(thread, attr, routine, arg);
    mrh_thread *t = &mrh_tls;
    t->depth++;
    int saved = errno;
    struct thread_start *start = malloc(sizeof *start);
    int rc;
    if (start) {
        start->routine = routine;
        start->arg = arg;
        rc = real_pthread_create(thread, attr, thread_start, start);
        if (rc != 0) free(start);
    } else {
        rc = real_pthread_create(thread, attr, routine, arg);
    }
    errno = saved;
    t->depth--;
    return rc;
}

void *mrh_thread_wrapper(const char *name)
{
    return mrh_same_string(name, "pthread_create") ? (void *)runtime_pthread_create : NULL;
}

MRH_EXPORT __attribute__((weak)) int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                                                    void *(*routine)(void *), void *arg)
{
    return runtime_pthread_create(thread, attr, routine, arg);
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
    r->report = c->report, r->report_id = c->report_id;
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
    /* Attached: an earlier attach of another build may have started the hook side, whose interpreter is then
     * this process's for good (a second one, in a namespace of its own, crashed): it takes this build's script. */
    void *lib = NULL;
    mrh_hook_start_fn start = mrh_config.attach ? (mrh_hook_start_fn)__atomic_load_n(&mrh_attached_hook_side,
                                                                                     __ATOMIC_ACQUIRE) : NULL;
    if (!start) {
        lib = dlmopen(LM_ID_NEWLM, mrh_config.runtime, RTLD_NOW | RTLD_LOCAL);
        start = lib ? (mrh_hook_start_fn)dlsym(lib, "mrh_hook_start") : NULL;
        if (!start) {
            mrh_warn("cannot load %s: %s; hooks are off in this process", mrh_config.runtime, dlerror());
            return NULL;
        }
    }
    if (mrh_config.attach) __atomic_store_n(&mrh_hook_side_owner, &runtime, __ATOMIC_RELEASE);
    const mrh_hook_ops *started = start(&runtime);   /* says why itself when it fails */
    if (lib && mrh_config.attach)   /* its interpreter is up (started or not, it stays): the next builds' */
        __atomic_store_n(&mrh_attached_hook_side, dlsym(lib, "mrh_hook_restart"), __ATOMIC_RELEASE);
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
    if (!started) report("unstarted\n", 10);
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
    if (mrh_start_gave_up) return;
    struct timespec deadline = mrh_monotonic_after_ms(mrh_config.start_wait_ms);
    while (mrh_state == MRH_STARTING)
        if (pthread_cond_clockwait(&start_done, &start_lock, CLOCK_MONOTONIC, &deadline) == ETIMEDOUT) {
            mrh_start_gave_up = 1;
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
    if (state != MRH_STARTING) mrh_start_gave_up = 0;
    pthread_mutex_unlock(&start_lock);
    t->depth--;
    errno = saved;
    return state == MRH_READY;
}

/* ---- fork ---------------------------------------------------------------------------------------------- */

/* Idea: at a fork, no start is half done (start_lock is held across it, after any start in progress ends)
 * and the hook interpreter goes through CPython's fork protocol on the forking thread, whichever thread that
 * is (pyrt.c, fork_prepare): no other thread holds its GIL or its locks, and in the child it forgets the
 * threads that are not there. The child then re-initialises what other threads held here. */
/* What this library's fork_prepare did, for its fork_parent or fork_child on the forking thread. Variables of
 * this library, not of the thread-local block, which every attach build of a process shares (tls.c): an inert
 * build's handlers, which run at every fork too, would overwrite the active one's (its start_lock then stayed
 * taken: the next fork hung). Moved only with start_lock held, so by one forking thread at a time. */
static void *fork_locker;       /* the thread (its thread pointer: no call, which a script may hook) whose
                                 * fork_prepare took start_lock ... */
static int fork_locked;         /* ... while it is held: a parent handler run without this library's prepare
                                 * (loaded in between) lets go of nothing */
static int fork_hooked;         /* that fork_prepare ran the hook side's (which says in t->fork_held what to undo) */

static void fork_prepare(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    mrh_forking++;
    pthread_mutex_lock(&start_lock);
    /* the wait lets go of start_lock: another forking thread may come and go meanwhile (were the fields below
     * set before it, that one's would be the ones its parent handler found, and ours never let go) */
    if (mrh_state == MRH_STARTING && !pthread_equal(start_owner, pthread_self())) wait_for_start();
    fork_locker = __builtin_thread_pointer();
    fork_locked = 1;
    fork_hooked = 0;
    if (mrh_state == MRH_READY) {
        if (!t->hook_side_ready) mrh_first_hook_on_thread(t);   /* a thread that never ran a hook forks */
        t->fork_held = MRH_FORK_NOTHING;
        ops->fork_prepare(t);
        fork_hooked = 1;
    }
    t->depth--;
}

static void fork_parent(void)
{
    mrh_thread *t = &mrh_tls;
    if (!fork_locked || fork_locker != __builtin_thread_pointer()) return;
    t->depth++;
    if (fork_hooked && t->fork_held) ops->fork_parent(t);
    fork_hooked = fork_locked = 0;
    pthread_mutex_unlock(&start_lock);
    mrh_forking--;
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
    int hooked = fork_locked && fork_hooked;   /* this library's prepare ran on this (now the only) thread */
    if (fork_locked) mrh_forking--;
    fork_hooked = fork_locked = 0;
    if (mrh_state == MRH_STARTING && !pthread_equal(start_owner, pthread_self())) {
        mrh_state = MRH_OFF;   /* the starting thread is not in the child */
        mrh_warn("this process forked while its hooks were still starting: the child runs unhooked");
    }
    mrh_resolve_after_fork();
    if (hooked && t->fork_held) ops->fork_child(t);
    t->depth--;
}

/* vfork() children share the parent's memory: a hook run there would change the parent's interpreter. The
 * runtime's vfork is fork(), which every correct use of vfork allows. (posix_spawn does not call vfork() and
 * runs no hooks in its child.) */
MRH_EXPORT pid_t vfork(void) { return fork(); }

/* ---- clone ------------------------------------------------------------------------------------------------
 *
 * A program's own clone() (not pthread_create's or posix_spawn's: theirs are libc's internal calls) that makes a
 * process. Hazards:
 * - Without CLONE_VM it is a fork that runs no atfork handlers: the child kept what the runtime's fork handlers
 *   reset (trace.c's cached pid: the child's trace lines came under its parent's pid; --inject's call counts;
 *   the locks other threads held, the hook interpreter's GIL among them).
 *   Idea: the runtime's own fork handlers run around it, in fork's order (the program's own handlers don't, as
 *   they don't around its clone unhooked).
 * - With CLONE_VM the child runs in its parent's memory, on its thread-local block (a clone without
 *   CLONE_SETTLS): a record or a hook there changes the parent's state (trace.c's cached pid: the parent's later
 *   lines came under the child's pid, and its wait's line was lost; the thread's depth, left raised by an exec
 *   the child made from inside the runtime's exec wrapper; the Python thread state).
 *   Idea: with CLONE_VFORK, the parent is suspended until the child execs or exits, as in posix_spawn, whose
 *   child runs no hooks either: the thread's depth is raised across the clone, so the child's calls go to their
 *   originals (its exec still puts MRHOOKER_* back: follow.c), and the parent puts back the depth it had, what
 *   the child did to it undone. Without CLONE_VFORK parent and child run at once on one thread-local block:
 *   nothing tells them apart, and the clone goes through as it is (README, Limits).
 */
#define FORK_HANDLERS_MAX 8
static struct {
    void (*prepare)(void), (*parent)(void), (*child)(void);
} fork_handlers[FORK_HANDLERS_MAX];
static int nfork_handlers;   /* published after its handlers are written (mrh_atfork: constructors at load, an
                              * attach's set-up); read by clone */

extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
extern void *__dso_handle __attribute__((weak));

int mrh_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    int n = __atomic_load_n(&nfork_handlers, __ATOMIC_ACQUIRE);
    if (n < FORK_HANDLERS_MAX) {
        fork_handlers[n].prepare = prepare, fork_handlers[n].parent = parent, fork_handlers[n].child = child;
        __atomic_store_n(&nfork_handlers, n + 1, __ATOMIC_RELEASE);
    }
    return __register_atfork(prepare, parent, child, &__dso_handle ? __dso_handle : NULL);
}

enum { FORK_PREPARE, FORK_PARENT, FORK_CHILD };

/* As fork runs them: the prepare handlers last registered first, the others in the order registered. */
static void run_fork_handlers(int stage)
{
    int n = __atomic_load_n(&nfork_handlers, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++) {
        if (stage == FORK_PREPARE && fork_handlers[n - 1 - i].prepare) fork_handlers[n - 1 - i].prepare();
        if (stage == FORK_PARENT && fork_handlers[i].parent) fork_handlers[i].parent();
        if (stage == FORK_CHILD && fork_handlers[i].child) fork_handlers[i].child();
    }
}

typedef int (*clone_fn)(int (*)(void *), void *, int, void *, ...);
static clone_fn real_clone;   /* libc's, looked up at load (or at a call before it) */

typedef struct clone_start {
    int (*fn)(void *);
    void *arg;
} clone_start;

/* The child of a clone without CLONE_VM: its copy of the wrapper's clone_start. */
static int clone_child(void *p)
{
    clone_start *c = p;
    int saved = errno;
    run_fork_handlers(FORK_CHILD);
    errno = saved;
    return c->fn(c->arg);
}

MRH_EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
    va_list ap;   /* glibc's clone reads all three, whatever the flags */
    va_start(ap, arg);
    pid_t *parent_tid = va_arg(ap, pid_t *);
    void *tls = va_arg(ap, void *);
    pid_t *child_tid = va_arg(ap, pid_t *);
    va_end(ap);
    mrh_thread *t = &mrh_tls;
    if (MRH_UNLIKELY(!real_clone)) {
        t->depth++;
        real_clone = (clone_fn)mrh_lookup_next("clone");
        t->depth--;
        if (!real_clone) {
            errno = ENOSYS;
            return -1;
        }
    }
    if ((flags & CLONE_THREAD) || !fn || !stack || ((flags & CLONE_VM) && !(flags & CLONE_VFORK)))
        return real_clone(fn, stack, flags, arg, parent_tid, tls, child_tid);
    if (flags & CLONE_VM) {
        int depth = t->depth;
        t->depth = depth + 1;
        int pid = real_clone(fn, stack, flags, arg, parent_tid, tls, child_tid);
        t->depth = depth;   /* the child has exec'd or ended: what it left here is undone */
        return pid;
    }
    clone_start start = {fn, arg};
    int saved = errno;
    run_fork_handlers(FORK_PREPARE);
    errno = saved;
    int pid = real_clone(clone_child, stack, flags, &start, parent_tid, tls, child_tid);
    saved = errno;   /* the clone's (unchanged when it worked) */
    run_fork_handlers(FORK_PARENT);
    errno = saved;
    return pid;
}

/* attach.c: hooks are on from an attach to its detach. OFF is final in a launched process; in an attached one
 * each attach moves OFF -> UNSTARTED (READY when an earlier attach of this library started the hook side, which
 * stays loaded) and its detach moves the state back to OFF. */
void mrh_attach_state(int on)
{
    mrh_settings *c = &mrh_config;
    pthread_mutex_lock(&start_lock);
    if (!on || !c->active || !c->hooks || !c->runtime || !c->kind || !c->module)
        __atomic_store_n(&mrh_state, MRH_OFF, __ATOMIC_RELEASE);
    else if (mrh_state != MRH_STARTING) {
        /* another build's script runs in the hook side since this one's started: this one's is imported again
         * (at the first hooked call, as a start) */
        if (ops && __atomic_load_n(&mrh_hook_side_owner, __ATOMIC_ACQUIRE) != &runtime) ops = NULL;
        __atomic_store_n(&mrh_state, ops ? MRH_READY : MRH_UNSTARTED, __ATOMIC_RELEASE);
    }
    if (on && ops) {   /* the hook side, started by an earlier attach, writes where this one says */
        runtime.output = c->output, runtime.output_id = c->output_id;
        runtime.report = c->report, runtime.report_id = c->report_id;
    }
    __atomic_store_n(&runtime.detached, !on, __ATOMIC_RELEASE);
    const mrh_hook_ops *started = ops;
    pthread_mutex_unlock(&start_lock);
    if (!on && started) started->park_output();   /* let go of mrhooker's stderr (or -o file): its reader sees
                                                   * the end */
    if (on) {
        mrh_resolve_missing();
        report_at_load();
    }
}

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
    if (mrh_config.active) mrh_patch_entries(lookup("MRHOOKER_ENTRY"), 0);   /* before any original is used */
    mrh_follow_init();
    mrh_signals_init();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&start_done, &attr);
    /* Both survive fork and exec replaces them: set up once per program, before any start, so that a fork
     * while another thread starts waits for it (fork_prepare). */
    pthread_key_create(&thread_key, thread_exit);
    pthread_setspecific(thread_key, t);   /* this (the main) thread's; thread_start sets the others' */
    real_pthread_create = (__typeof__(real_pthread_create))mrh_lookup_next("pthread_create");
    real_clone = (clone_fn)mrh_lookup_next("clone");
    mrh_atfork(fork_prepare, fork_parent, fork_child);
    report_at_load();
    errno = saved;
    t->depth--;
    __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
}

/* The hook script's atexit handlers, in the process that started the hooks, with stdio's buffers flushed
 * through the hooks first (rather than later without them); 1 if they ran. Running them again runs only those
 * registered since. */
static int run_hooks_at_exit(void)
{
    mrh_thread *t = &mrh_tls;
    if (__atomic_load_n(&mrh_state, __ATOMIC_ACQUIRE) != MRH_READY) return 0;
    int outside_hooks = t->depth == 0;
    t->depth++;   /* getpid() and the rest: the runtime's own calls, not the program's */
    pid_t pid = getpid();
    t->depth--;
    if (pid != start_pid) return 0;
    if (outside_hooks) fflush(NULL);
    t->depth++;
    ops->at_exit();
    t->depth--;
    return 1;
}

/* exit() calls ld.so's _dl_fini after the target's atexit handlers; _dl_fini runs the destructors of the hook
 * namespace's objects before the target's (glibc goes through the namespaces from the last), so a library the
 * hook script loaded is finalised by then (libcrypto's OPENSSL_cleanup: hashlib or ssl in an atexit handler
 * crashed the program). The handlers run just before it instead: the program gives __libc_start_main the
 * _dl_fini it registers, and gets this in its place. */
static void (*real_rtld_fini)(void);

static void hooks_at_exit_then_rtld_fini(void)
{
    run_hooks_at_exit();
    real_rtld_fini();
}

typedef int (*start_main_fn)(int (*)(int, char **, char **), int, char **, void (*)(void), void (*)(void),
                             void (*)(void), void *);

MRH_EXPORT int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv, void (*init)(void),
                                 void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    start_main_fn real = (start_main_fn)mrh_lookup_next("__libc_start_main");
    if (rtld_fini) {
        real_rtld_fini = rtld_fini;
        rtld_fini = hooks_at_exit_then_rtld_fini;
    }
    return real(main, argc, argv, init, fini, rtld_fini, stack_end);
}

/* Runs in ld.so's _dl_fini: hooks stay on for the destructors of the program (before this one's), and the
 * handlers those registered run here (all of them, in a program not started by __libc_start_main). */
__attribute__((destructor)) static void preload_fini(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    report_at_exit();
    t->depth--;
    if (run_hooks_at_exit()) __atomic_store_n(&mrh_state, MRH_OFF, __ATOMIC_RELEASE);
}

/* preload.c: the part of mrhooker's runtime that is LD_PRELOADed into every hooked process.
 *
 * It holds no Python: the generated entry points (one per hooked symbol) call mrh_begin_slow() unless the
 * runtime is READY, and this file starts Python at the first hooked call (lazy start), then loads the hook
 * library. Everything that must be right before Python exists lives here: per-thread re-entrancy depth,
 * originals (RTLD_NEXT), fork and exit handling, and the signal-handler guard.
 */
#define _GNU_SOURCE
#include "mrhooker_rt.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-thread state (see mrhooker_rt.h). Initial-exec TLS: one instruction to reach it, and no allocation,
 * so it is usable from allocator hooks and signal handlers. */
MRH_EXPORT __thread mrh_thread mrh_tls __attribute__((tls_model("initial-exec")));

/* Process state. Written with start_lock held, in a single-threaded fork child, or set to MRH_OFF (which is
 * final) at exit; read without the lock on the fast path, where a stale read only sends a call through
 * mrh_begin_slow(). */
MRH_EXPORT volatile int mrh_state = MRH_UNSTARTED;

/* start_lock serialises starting the runtime, and is held across fork() so that no start is half done in the
 * child. Threads that might hold the GIL never wait on it (see mrh_begin_slow). */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_t start_owner;        /* the thread holding start_lock to start, while MRH_STARTING */
static const mrh_hooklib_ops *ops;   /* the hook library's entry points, once READY */
static pid_t start_pid;              /* the process that started Python: the one whose atexit handlers run */
static pthread_key_t thread_key;     /* its destructor deletes the Python thread states the runtime made */
static int loaded;                           /* preload_init has run: the program's own code may start */
static int (*py_is_initialized)(void);        /* Py_IsInitialized, once libpython is in the process */
static void *(*py_this_thread_state)(void);   /* PyGILState_GetThisThreadState, likewise */

/* Settings from the environment, read once (config_read). The strings are copied into config_store because
 * the target may change its environment later. */
static struct {
    int read;
    const char *hooks, *kind, *module, *script, *libpython, *pyversion;
    const char *python_path, *python_home, *executable, *output;
} config;
static char config_store[1 << 16];

/* ---- messages -------------------------------------------------------------------------------------- */

void mrh_warn(const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "mrhooker: ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    /* The hook output's destination, opened for this one line: the target's own descriptors may be anything. */
    int fd = config.output ? open(config.output, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY) : -1;
    ssize_t rc = write(fd >= 0 ? fd : 2, line, n);
    (void)rc;
    if (fd >= 0) close(fd);
}

void mrh_disable(void) { mrh_state = MRH_OFF; }

/* ---- bootstrap allocator ----------------------------------------------------------------------------- */

/* glibc's dlsym() may call calloc(); when calloc itself is hooked, its original is not known yet at that
 * moment. Such early requests are served from this static arena and never given back. */
static unsigned char boot_arena[1 << 16] __attribute__((aligned(16)));
static size_t boot_used;   /* guarded by boot_lock */
static pthread_mutex_t boot_lock = PTHREAD_MUTEX_INITIALIZER;

void *mrh_boot_alloc(size_t size)
{
    size_t need = 16 + ((size + 15) & ~(size_t)15);
    void *p = NULL;
    pthread_mutex_lock(&boot_lock);
    if (need <= sizeof boot_arena - boot_used) {
        unsigned char *block = boot_arena + boot_used;
        *(size_t *)block = size;   /* the size, for realloc of an arena block */
        p = block + 16;
        boot_used += need;
    }
    pthread_mutex_unlock(&boot_lock);
    return p;   /* zeroed: the arena is static and never reused */
}

int mrh_boot_owns(const void *p)
{
    return (const unsigned char *)p >= boot_arena && (const unsigned char *)p < boot_arena + sizeof boot_arena;
}

size_t mrh_boot_size(const void *p) { return *(const size_t *)((const unsigned char *)p - 16); }

/* ---- originals --------------------------------------------------------------------------------------- */

/* Set while this thread is inside dlsym() looking up an original. glibc's dlsym may call malloc, calloc and
 * free (for its error messages); when those are hooked, their own originals may not be known yet, and
 * looking them up would recurse without end. Such calls get no original (NULL): the entry points then use
 * the bootstrap arena (malloc, calloc) or leak (free). */
static __thread int resolving __attribute__((tls_model("initial-exec")));

void *mrh_resolve(int slot)
{
    mrh_slot *s = &mrh_slots[slot];
    void *p = __atomic_load_n(&s->original, __ATOMIC_ACQUIRE);
    if (MRH_LIKELY(p != NULL) || resolving) return p;
    mrh_thread *t = &mrh_tls;
    t->depth++;   /* hooked calls made by dlsym go to their originals */
    resolving = 1;
    p = dlsym(RTLD_NEXT, s->name);
    resolving = 0;
    t->depth--;
    if (p) __atomic_store_n(&s->original, p, __ATOMIC_RELEASE);
    return p;
}

/* Symbols asked for by name (mrhooker.h's original() for Cython scripts): a small cache on top of dlsym. */
#define NAMED_MAX 256
static struct { const char *name; void *addr; } named[NAMED_MAX];
static int named_count;                     /* entries published; readers need no lock */
static pthread_mutex_t named_lock = PTHREAD_MUTEX_INITIALIZER;   /* serialises adding entries */

MRH_EXPORT void *mrh_original(const char *name)
{
    for (int i = 0; i < mrh_nslots; i++)
        if (strcmp(mrh_slots[i].name, name) == 0) return mrh_resolve(i);
    int n = __atomic_load_n(&named_count, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (strcmp(named[i].name, name) == 0) return named[i].addr;
    if (resolving) return NULL;
    mrh_thread *t = &mrh_tls;
    t->depth++;
    resolving = 1;
    void *p = dlsym(RTLD_NEXT, name);
    resolving = 0;
    pthread_mutex_lock(&named_lock);
    if (p && named_count < NAMED_MAX) {
        char *copy = mrh_boot_alloc(strlen(name) + 1);
        if (copy) {
            strcpy(copy, name);
            named[named_count].name = copy;
            named[named_count].addr = p;
            __atomic_store_n(&named_count, named_count + 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&named_lock);
    t->depth--;
    return p;
}

/* ---- configuration ----------------------------------------------------------------------------------- */

static const char *store_copy(const char *text, size_t n)
{
    static size_t used;
    if (n + 1 > sizeof config_store - used) return NULL;
    char *p = config_store + used;
    memcpy(p, text, n);
    p[n] = 0;
    used += n + 1;
    return p;
}

static const char *config_copy(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? store_copy(v, strlen(v)) : NULL;
}

/* Removes our entry from LD_PRELOAD and all MRHOOKER_ variables, so that children do not load the runtime. */
static void forget_environment(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload) {
        const char *rest = preload + strcspn(preload, " :");
        rest += strspn(rest, " :");
        if (*rest) setenv("LD_PRELOAD", rest, 1);
        else unsetenv("LD_PRELOAD");
    }
    extern char **environ;
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "MRHOOKER_", 9) == 0) {
                char name[64];
                size_t n = strcspn(*e, "=");
                if (n >= sizeof name) continue;
                memcpy(name, *e, n);
                name[n] = 0;
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

/* ---- following exec'd children --------------------------------------------------------------------- */

/* Children are hooked because they inherit LD_PRELOAD and MRHOOKER_*. A program that execs with an
 * environment of its own making (env -i, subprocess with env=...) would drop them: the exec functions below
 * put them back. They are weak, so a hook script's own hook on one of them takes its place. */
#define EXEC_ENV_MAX 32
static const char *exec_env[EXEC_ENV_MAX];   /* "MRHOOKER_...=..." as this process got them */
static int exec_env_count;
static const char *preload_self;             /* this library's path, as LD_PRELOAD named it */
static struct {                              /* the real functions, looked up at load (not in fork children) */
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                       char *const[], char *const[]);
    int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
} real_exec;

static void exec_env_snapshot(void)
{
    extern char **environ;
    const char *preload = getenv("LD_PRELOAD");
    if (!preload) return;
    preload += strspn(preload, " :");
    preload_self = store_copy(preload, strcspn(preload, " :"));
    for (char **e = environ; e && *e && exec_env_count < EXEC_ENV_MAX; e++)
        if (strncmp(*e, "MRHOOKER_", 9) == 0) exec_env[exec_env_count++] = store_copy(*e, strlen(*e));
}

/* The exec functions' originals: wanted by the wrappers in every process, followed or not. */
static void exec_originals(void)
{
    real_exec.execve = (int (*)(const char *, char *const[], char *const[]))mrh_original("execve");
    real_exec.execvpe = (int (*)(const char *, char *const[], char *const[]))mrh_original("execvpe");
    real_exec.fexecve = (int (*)(int, char *const[], char *const[]))mrh_original("fexecve");
    real_exec.posix_spawn = (int (*)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                                     const posix_spawnattr_t *, char *const[], char *const[]))mrh_original("posix_spawn");
    real_exec.posix_spawnp = (int (*)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                                      const posix_spawnattr_t *, char *const[], char *const[]))mrh_original("posix_spawnp");
}

static size_t env_count(char *const envp[])
{
    size_t n = 0;
    while (envp && envp[n]) n++;
    return n;
}

/* Does envp carry the hooks (LD_PRELOAD naming this library, and the MRHOOKER_ settings)? */
static int env_carries_hooks(char *const envp[])
{
    int preload = 0, settings = 0;
    for (size_t i = 0; envp && envp[i]; i++) {
        if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) preload = strstr(envp[i], preload_self) != NULL;
        else if (strncmp(envp[i], "MRHOOKER_HOOKS=", 15) == 0) settings = 1;
    }
    return preload && settings;
}

/* Fills `out` (room for env_count(envp) + EXEC_ENV_MAX + 2) with envp plus the hooks' variables, and `preload`
 * (room for strlen of envp's LD_PRELOAD + strlen(preload_self) + 13) with the combined LD_PRELOAD. */
static char *const *env_with_hooks(char *const envp[], char **out, char *preload)
{
    size_t n = 0;
    const char *theirs = "";
    for (size_t i = 0; envp && envp[i]; i++) {
        if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) theirs = envp[i] + 11;
        else if (strncmp(envp[i], "MRHOOKER_", 9) != 0) out[n++] = envp[i];
    }
    for (int i = 0; i < exec_env_count; i++) out[n++] = (char *)exec_env[i];
    strcpy(preload, "LD_PRELOAD=");
    strcat(preload, preload_self);
    if (*theirs && !strstr(theirs, preload_self)) {
        strcat(preload, " ");
        strcat(preload, theirs);
    }
    out[n++] = preload;
    out[n] = NULL;
    return out;
}

static size_t their_preload_length(char *const envp[])
{
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) return strlen(envp[i]);
    return 0;
}

/* Runs `call` with ENV bound to envp, or to envp plus the hooks' variables when it lacks them. The storage
 * is on the stack: no allocation between fork and exec. */
#define WITH_HOOK_ENV(envp, call)                                                                      \
    do {                                                                                               \
        char *const *ENV = (envp);                                                                     \
        if (!preload_self || mrh_tls.depth > 0 || env_carries_hooks(ENV)) return call;                 \
        char *mrh_env[env_count(ENV) + EXEC_ENV_MAX + 2];                                              \
        char mrh_preload[their_preload_length(ENV) + strlen(preload_self) + 16];                       \
        ENV = env_with_hooks(ENV, mrh_env, mrh_preload);                                               \
        return call;                                                                                   \
    } while (0)

#define MRH_WEAK MRH_EXPORT __attribute__((weak))
extern char **environ;

MRH_WEAK int execve(const char *path, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.execve(path, argv, ENV));
}

MRH_WEAK int execv(const char *path, char *const argv[])
{
    WITH_HOOK_ENV(environ, real_exec.execve(path, argv, ENV));
}

MRH_WEAK int execvpe(const char *file, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.execvpe(file, argv, ENV));
}

MRH_WEAK int execvp(const char *file, char *const argv[])
{
    WITH_HOOK_ENV(environ, real_exec.execvpe(file, argv, ENV));
}

MRH_WEAK int fexecve(int fd, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.fexecve(fd, argv, ENV));
}

MRH_WEAK int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.posix_spawn(pid, path, actions, attr, argv, ENV));
}

MRH_WEAK int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.posix_spawnp(pid, file, actions, attr, argv, ENV));
}

/* The execl family: its arguments gathered into an argv, on the stack. */
#define GATHER_ARGS(first, argv)                                                                       \
    size_t mrh_n = 1;                                                                                  \
    va_list mrh_ap;                                                                                    \
    va_start(mrh_ap, first);                                                                           \
    while (va_arg(mrh_ap, char *)) mrh_n++;                                                            \
    va_end(mrh_ap);                                                                                    \
    char *argv[mrh_n + 1];                                                                             \
    argv[0] = (char *)(first);                                                                         \
    va_start(mrh_ap, first);                                                                           \
    for (size_t mrh_i = 1; mrh_i <= mrh_n; mrh_i++) argv[mrh_i] = va_arg(mrh_ap, char *);              \

MRH_WEAK int execl(const char *path, const char *arg, ...)
{
    GATHER_ARGS(arg, argv)
    va_end(mrh_ap);
    return execv(path, argv);
}

MRH_WEAK int execlp(const char *file, const char *arg, ...)
{
    GATHER_ARGS(arg, argv)
    va_end(mrh_ap);
    return execvp(file, argv);
}

MRH_WEAK int execle(const char *path, const char *arg, ...)
{
    GATHER_ARGS(arg, argv)
    char *const *envp = va_arg(mrh_ap, char *const *);
    va_end(mrh_ap);
    return execve(path, argv, envp);
}

/* Called with start_lock held (or from the constructor, before any thread exists). */
static void config_read(void)
{
    if (config.read) return;
    config.read = 1;
    config.hooks = config_copy("MRHOOKER_HOOKS");
    config.kind = config_copy("MRHOOKER_KIND");
    config.module = config_copy("MRHOOKER_MODULE");
    config.script = config_copy("MRHOOKER_SCRIPT");
    config.libpython = config_copy("MRHOOKER_LIBPYTHON");
    config.pyversion = config_copy("MRHOOKER_PYVERSION");
    config.python_path = config_copy("MRHOOKER_PYTHONPATH");
    config.python_home = config_copy("MRHOOKER_PYTHONHOME");
    config.executable = config_copy("MRHOOKER_PYTHON");
    config.output = config_copy("MRHOOKER_OUTPUT");
    if (!config.hooks || !config.kind || !config.module) {
        mrh_state = MRH_OFF;   /* loaded without mrhooker's launcher: stay out of the way */
        return;
    }
    const char *follow = getenv("MRHOOKER_FOLLOW");
    if (!follow || strcmp(follow, "0") != 0) exec_env_snapshot();
    if (follow && strcmp(follow, "0") == 0) {
        /* --no-follow: only the launcher's direct child is hooked; its children must not load us at all. */
        const char *parent = getenv("MRHOOKER_PARENT");
        if (!parent || atol(parent) != (long)getppid()) mrh_state = MRH_OFF;
        forget_environment();
    }
}

/* ---- starting ---------------------------------------------------------------------------------------- */

static void thread_exit(void *arg)
{
    mrh_thread *t = arg;
    if (mrh_state == MRH_READY && ops && t->owns_tstate) {
        t->depth++;
        ops->detach_thread(t);
        t->depth--;
    }
}

void mrh_attach_thread(mrh_thread *t)
{
    if (!ops) return;
    t->depth++;
    ops->attach_thread(t);
    t->depth--;
    if (t->owns_tstate) pthread_setspecific(thread_key, t);
}

/* Is the Python in this process the minor version the hooks were built for? */
static int same_python_version(void)
{
    const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
    if (!get_version || !config.pyversion) return 1;
    const char *v = get_version();
    size_t n = strlen(config.pyversion);
    if (strncmp(v, config.pyversion, n) == 0 && (v[n] < '0' || v[n] > '9')) return 1;
    char running[16];
    snprintf(running, sizeof running, "%.*s", (int)strcspn(v, " "), v);
    mrh_warn("this program runs Python %s but the hooks were built for Python %s: it runs unhooked "
             "(run mrhooker with a Python %s to hook it)", running, config.pyversion, config.pyversion);
    return 0;
}

/* Starts the runtime. Called with start_lock held and t->depth > 0, so that hooked calls made while
 * starting (by libpython, imports, the hook module) go to their originals. */
static void start(mrh_thread *t)
{
    config_read();
    if (mrh_state == MRH_OFF) return;

    int attach;
    py_is_initialized = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    if (py_is_initialized) {
        /* The target is Python itself (libpython linked in, or the interpreter built into the executable):
         * hooks run in its interpreter, once it is up. */
        if (!same_python_version()) { mrh_state = MRH_OFF; return; }
        if (!py_is_initialized()) { mrh_state = MRH_WAITING; return; }
        attach = 1;
    } else {
        if (!config.libpython || !dlopen(config.libpython, RTLD_NOW | RTLD_GLOBAL)) {
            mrh_warn("cannot load %s (%s): hooks are off in this process",
                     config.libpython ? config.libpython : "libpython (MRHOOKER_LIBPYTHON unset)", dlerror());
            mrh_state = MRH_OFF;
            return;
        }
        py_is_initialized = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
        attach = 0;
    }
    py_this_thread_state = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
    start_owner = pthread_self();
    mrh_state = MRH_STARTING;

    void *lib = dlopen(config.hooks, RTLD_NOW | RTLD_LOCAL);
    mrh_hooklib_start_fn start_fn = lib ? (mrh_hooklib_start_fn)dlsym(lib, "mrh_hooklib_start") : NULL;
    if (!start_fn) {
        mrh_warn("cannot load the hook library %s (%s): hooks are off in this process", config.hooks, dlerror());
        mrh_state = MRH_OFF;
        return;
    }
    mrh_start_args args = {
        .attach = attach, .kind = config.kind, .module = config.module, .script = config.script,
        .hooks_path = config.hooks, .python_path = config.python_path, .python_home = config.python_home,
        .executable = config.executable, .output = config.output,
    };
    ops = start_fn(&args);   /* says why itself when it fails */
    if (!ops) { mrh_state = MRH_OFF; return; }
    for (int i = 0; i < mrh_nslots; i++) mrh_slots[i].impl = dlsym(lib, mrh_slots[i].impl_symbol);
    start_pid = getpid();
    mrh_attach_thread(t);
    __atomic_store_n(&mrh_state, MRH_READY, __ATOMIC_RELEASE);
}

int mrh_begin_slow(mrh_thread *t)
{
    /* Before preload_init, calls come from other libraries' constructors (preloaded libraries are initialised
     * after the program's other libraries): they go to the original, and Python is not started inside
     * the dynamic loader's initialisation. */
    if (t->depth > 0 || !__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return 0;
    int state = __atomic_load_n(&mrh_state, __ATOMIC_ACQUIRE);
    switch (state) {
    case MRH_READY:
        return 1;
    case MRH_OFF:
        return 0;
    case MRH_WAITING:
        if (!py_is_initialized()) return 0;
        break;
    case MRH_STARTING:
        /* A thread with a Python thread state may hold the GIL, which the starting thread needs: it must not
         * wait for the start. Its call goes to the original. */
        if (py_this_thread_state && py_this_thread_state()) return 0;
        break;
    }
    t->depth++;
    pthread_mutex_lock(&start_lock);
    state = mrh_state;
    if (state == MRH_UNSTARTED || (state == MRH_WAITING && py_is_initialized())) start(t);
    pthread_mutex_unlock(&start_lock);
    t->depth--;
    return mrh_state == MRH_READY;
}

/* ---- fork -------------------------------------------------------------------------------------------- */

/* A fork from the target's own code (not from inside a hook) while Python runs: take the GIL first, so that
 * no other thread holds it at the fork, and let Python do its before/after-fork work (import lock, thread
 * states, os.register_at_fork callbacks). Forks made by Python code in a hook are Python's own business. */
static void fork_prepare(void)
{
    mrh_thread *t = &mrh_tls;
    int outside_hooks = t->depth == 0;
    t->depth++;   /* the runtime's own calls below (locks, Python) must not run hooks */
    /* Hold start_lock across the fork, so that no start is half done in the child. Not by the starting thread
     * itself (the hook script forks while it is imported), nor by a thread that may hold the GIL, which the
     * starting thread may need: for those, a child of a half-done start runs unhooked (fork_child). */
    int may_hold_gil = py_this_thread_state && py_this_thread_state();
    t->fork_locked = !may_hold_gil && !(mrh_state == MRH_STARTING && pthread_equal(start_owner, pthread_self()));
    if (t->fork_locked) pthread_mutex_lock(&start_lock);
    if (mrh_state == MRH_READY && ops && outside_hooks) ops->fork_prepare(t);
    t->depth--;
}

static void fork_parent(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    if (t->fork_held) ops->fork_parent(t);
    if (t->fork_locked) pthread_mutex_unlock(&start_lock);
    t->depth--;
}

static void fork_child(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    /* Only this thread exists in the child: locks that other threads held are reset. */
    if (!t->fork_locked && mrh_state == MRH_STARTING && !pthread_equal(start_owner, pthread_self()))
        mrh_state = MRH_OFF;   /* another thread was half way through starting: that can't be finished here */
    if (t->fork_locked || mrh_state == MRH_OFF) pthread_mutex_init(&start_lock, NULL);
    pthread_mutex_init(&named_lock, NULL);
    pthread_mutex_init(&boot_lock, NULL);
    if (t->fork_held) ops->fork_child(t);
    t->depth--;
}

/* vfork() children share the parent's memory: a hook run there would change the parent's interpreter. The
 * runtime's vfork is fork(), which every correct use of vfork allows. (posix_spawn does not call vfork() and
 * runs no hooks in its child.) */
MRH_EXPORT pid_t vfork(void) { return fork(); }

/* ---- signals ----------------------------------------------------------------------------------------- */

/* A hook must never run inside a signal handler: the interrupted code may be in a hook or hold the GIL. So
 * handlers installed through sigaction()/signal() are wrapped: the wrapper raises the thread's depth, and
 * every hooked call from the handler goes to its original. The target sees its own handlers in oldact. */
static void (*user_handler[NSIG])(void);   /* the target's handler for each signal ... */
static int user_siginfo[NSIG];            /* ... and whether it takes (int, siginfo_t *, void *) */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void signal_trampoline(int sig, siginfo_t *info, void *context)
{
    mrh_thread *t = &mrh_tls;
    int saved = t->depth;
    t->depth = saved + 1;
    void (*h)(void) = __atomic_load_n(&user_handler[sig], __ATOMIC_ACQUIRE);
    if (user_siginfo[sig]) ((void (*)(int, siginfo_t *, void *))h)(sig, info, context);
    else ((void (*)(int))h)(sig);
    t->depth = saved;
}

static int is_function(void (*h)(void))
{
    return h != (void (*)(void))SIG_DFL && h != (void (*)(void))SIG_IGN && h != (void (*)(void))SIG_ERR;
}

MRH_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    if (!real_sigaction) {
        real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
        if (!real_sigaction) { errno = ENOSYS; return -1; }
    }
    if (sig <= 0 || sig >= NSIG) return real_sigaction(sig, act, oldact);
    struct sigaction wrapped;
    void (*previous)(void) = user_handler[sig];
    int previous_siginfo = user_siginfo[sig];
    if (act) {
        wrapped = *act;
        void (*h)(void) = (act->sa_flags & SA_SIGINFO) ? (void (*)(void))act->sa_sigaction
                                                         : (void (*)(void))act->sa_handler;
        if (is_function(h)) {
            user_siginfo[sig] = (act->sa_flags & SA_SIGINFO) != 0;
            __atomic_store_n(&user_handler[sig], h, __ATOMIC_RELEASE);
            wrapped.sa_sigaction = signal_trampoline;
            wrapped.sa_flags |= SA_SIGINFO;
            act = &wrapped;
        }
    }
    int rc = real_sigaction(sig, act, oldact);
    if (rc == 0 && oldact && oldact->sa_sigaction == signal_trampoline) {
        /* Show the target its own handler, as it installed it. */
        if (previous_siginfo) oldact->sa_sigaction = (void (*)(int, siginfo_t *, void *))previous;
        else {
            oldact->sa_flags &= ~SA_SIGINFO;
            oldact->sa_handler = (void (*)(int))previous;
        }
    }
    return rc;
}

/* glibc's signal() calls its internal sigaction, not ours: same semantics (BSD: restart, not reset). */
MRH_EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sig > 0 && sig < NSIG) sigaddset(&act.sa_mask, sig);
    if (sigaction(sig, &act, &old) < 0) return SIG_ERR;
    return old.sa_handler;
}

/* ---- load and exit ----------------------------------------------------------------------------------- */

__attribute__((constructor)) static void preload_init(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    for (int i = 0; i < mrh_nslots; i++) mrh_resolve(i);
    exec_originals();
    pthread_mutex_lock(&start_lock);
    config_read();
    pthread_mutex_unlock(&start_lock);
    /* Both survive fork and exec replaces them: set up once per program. Registered before any start, so
     * that a fork while another thread starts the runtime waits for it (fork_prepare). */
    pthread_key_create(&thread_key, thread_exit);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
    t->depth--;
}

/* Runs in ld.so's _dl_fini, after the target's atexit handlers, so hooks see everything the target does on
 * the way out; stdio buffers are flushed here, through the hooks, rather than later without them. */
__attribute__((destructor)) static void preload_fini(void)
{
    mrh_thread *t = &mrh_tls;
    if (mrh_state != MRH_READY || !ops) return;
    int outside_hooks = t->depth == 0;
    t->depth++;   /* getpid() and the rest: the runtime's own calls, not the program's */
    pid_t pid = getpid();
    t->depth--;
    if (pid != start_pid) return;
    if (outside_hooks) fflush(NULL);
    t->depth++;
    ops->at_exit(t);
    mrh_state = MRH_OFF;
    t->depth--;
}

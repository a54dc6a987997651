/* follow.c (target side): exec'd children, hooked or not.
 *
 * Children are hooked because they inherit LD_PRELOAD and MRHOOKER_* (see mrhooker_rt.h). Hazards:
 * - A program that execs with an environment of its own making (env -i, execle, posix_spawn or subprocess
 *   with env=...) drops them.
 *   Idea: the exec functions below put them back, from a snapshot taken at load. They are weak, so a hook
 *   script's own hook on one of them takes its place (then such children run unhooked: documented).
 * - Between vfork-like spawning and exec nothing may allocate.
 *   Idea: the new environment is built on the stack.
 * - The wrappers' own string work must not show up as the program's calls (a script hooking strlen).
 *   Idea: they raise the thread's depth around it.
 * - A hook script's (or a trace's) own entry point for execve replaces this weak one.
 *   Idea: the original such an entry point calls is this file's wrapper (mrh_follow_wrapper), not libc's
 *   execve, so the child is followed all the same.
 * - A program that changes its user before it execs (subprocess's user=, setpriv, su) execs a child that may
 *   no longer read this library (it sits in the launching user's private cache): the loader would print an
 *   error into the child's stderr for every exec, its children's too.
 *   Idea: the wrappers check that the child will be able to read the library; if not, the child gets an
 *   environment without our LD_PRELOAD entry and the MRHOOKER_* variables, and runs unhooked, silently, as
 *   a program started by a setuid one would (documented).
 * - --no-follow: only the launcher's child is hooked.
 *   Idea: that process removes our LD_PRELOAD entry and the MRHOOKER_* variables from its environment at
 *   load, so its children never load us.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define EXEC_ENV_MAX 32
static char snapshot_store[1 << 15];
static const char *exec_env[EXEC_ENV_MAX];   /* "MRHOOKER_...=..." as this process got them */
static int exec_env_count;
static const char *preload_self;             /* this library's path, as LD_PRELOAD named it (first) */

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
static struct {   /* the real functions, looked up at load */
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    spawn_fn posix_spawn, posix_spawnp;
} real_exec;

static const char *snapshot_copy(const char *text, size_t n)
{
    static size_t used;
    if (n + 1 > sizeof snapshot_store - used) return NULL;
    char *p = snapshot_store + used;
    memcpy(p, text, n);
    p[n] = 0;
    used += n + 1;
    return p;
}

/* Removes our entry from LD_PRELOAD and all MRHOOKER_ variables, so that children do not load the runtime.
 * Edits environ itself, not through unsetenv: a program may define its own (bash does), which before its main
 * leaves environ as it is (the loop that waited for the entries to go spun for ever). */
static void forget_environment(void)
{
    char **kept = environ;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "MRHOOKER_", 9) == 0) continue;
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0) {
            char *value = *e + 11;
            const char *rest = value + strcspn(value, " :");
            rest += strspn(rest, " :");
            if (!*rest) continue;
            memmove(value, rest, strlen(rest) + 1);   /* the others, after ours */
        }
        *kept++ = *e;
    }
    if (environ) *kept = NULL;
}

/* At load, with depth raised. */
void mrh_follow_init(void)
{
    real_exec.execve = (int (*)(const char *, char *const[], char *const[]))mrh_lookup_next("execve");
    real_exec.execvpe = (int (*)(const char *, char *const[], char *const[]))mrh_lookup_next("execvpe");
    real_exec.fexecve = (int (*)(int, char *const[], char *const[]))mrh_lookup_next("fexecve");
    real_exec.posix_spawn = (spawn_fn)mrh_lookup_next("posix_spawn");
    real_exec.posix_spawnp = (spawn_fn)mrh_lookup_next("posix_spawnp");
    if (!mrh_config.hooks && !mrh_config.trace) return;   /* not launched by mrhooker */
    if (!mrh_config.follow) {
        forget_environment();
        return;
    }
    const char *preload = getenv("LD_PRELOAD");
    if (!preload) return;
    preload += strspn(preload, " :");
    preload_self = snapshot_copy(preload, strcspn(preload, " :"));
    for (char **e = environ; e && *e && exec_env_count < EXEC_ENV_MAX; e++)
        if (strncmp(*e, "MRHOOKER_", 9) == 0) exec_env[exec_env_count++] = snapshot_copy(*e, strlen(*e));
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

/* Fills `out` (room for env_count(envp) + 1) with envp less the hooks' variables, and `preload` (room for
 * their_preload_length(envp) + 1) with envp's LD_PRELOAD less this library (left out if nothing remains). */
static char *const *env_without_hooks(char *const envp[], char **out, char *preload)
{
    size_t n = 0, self_len = strlen(preload_self);
    for (size_t i = 0; envp && envp[i]; i++) {
        if (strncmp(envp[i], "MRHOOKER_", 9) == 0) continue;
        if (strncmp(envp[i], "LD_PRELOAD=", 11) != 0) {
            out[n++] = envp[i];
            continue;
        }
        char *end = stpcpy(preload, "LD_PRELOAD=");
        for (const char *p = envp[i] + 11; *p;) {   /* its entries but ours, separated by spaces or colons */
            p += strspn(p, " :");
            size_t len = strcspn(p, " :");
            if (len && !(len == self_len && strncmp(p, preload_self, len) == 0)) {
                if (end != preload + 11) *end++ = ' ';
                memcpy(end, p, len);
                end += len;
            }
            p += len;
        }
        *end = 0;
        if (end != preload + 11) out[n++] = preload;
    }
    out[n] = NULL;
    return out;
}

static size_t their_preload_length(char *const envp[])
{
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) return strlen(envp[i]);
    return 0;
}

/* Could the exec'd program's loader read this library? access() checks with the real ids and, for a user other
 * than root, without capabilities: as the program will run after exec (setpriv and others keep their
 * capabilities until the exec, which drops them; an effective uid that differs from the real one makes the
 * loader ignore LD_PRELOAD paths anyway). */
static int preload_readable(void) { return access(preload_self, R_OK) == 0; }

/* Runs `call` with ENV bound to envp, or to envp plus the hooks' variables when it lacks them, or to envp less
 * them when the child couldn't load the hooks (see the top), with the thread's depth raised (restored if the
 * call returns: the exec failed, or it was a spawn). */
#define WITH_HOOK_ENV(envp, call)                                                                      \
    do {                                                                                               \
        mrh_thread *mrh_t = &mrh_tls;                                                                  \
        char *const *ENV = (envp);                                                                     \
        if (!preload_self) return call;                                                                \
        mrh_t->depth++;                                                                                \
        int mrh_rc;                                                                                    \
        if (!preload_readable()) {                                                                     \
            char *mrh_env[env_count(ENV) + 1];                                                         \
            char mrh_preload[their_preload_length(ENV) + 1];                                           \
            ENV = env_without_hooks(ENV, mrh_env, mrh_preload);                                        \
            mrh_rc = call;                                                                             \
        } else if (env_carries_hooks(ENV)) {                                                           \
            mrh_rc = call;                                                                             \
        } else {                                                                                       \
            char *mrh_env[env_count(ENV) + EXEC_ENV_MAX + 2];                                          \
            char mrh_preload[their_preload_length(ENV) + strlen(preload_self) + 16];                   \
            ENV = env_with_hooks(ENV, mrh_env, mrh_preload);                                           \
            mrh_rc = call;                                                                             \
        }                                                                                              \
        mrh_t->depth--;                                                                                \
        return mrh_rc;                                                                                 \
    } while (0)

/* The wrappers, and the weak exported functions that call them. */
static int follow_execve(const char *path, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.execve(path, argv, ENV));
}

static int follow_execv(const char *path, char *const argv[])
{
    WITH_HOOK_ENV(environ, real_exec.execve(path, argv, ENV));
}

static int follow_execvpe(const char *file, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.execvpe(file, argv, ENV));
}

static int follow_execvp(const char *file, char *const argv[])
{
    WITH_HOOK_ENV(environ, real_exec.execvpe(file, argv, ENV));
}

static int follow_fexecve(int fd, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.fexecve(fd, argv, ENV));
}

static int follow_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                              const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.posix_spawn(pid, path, actions, attr, argv, ENV));
}

static int follow_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                               const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    WITH_HOOK_ENV(envp, real_exec.posix_spawnp(pid, file, actions, attr, argv, ENV));
}

void *mrh_follow_wrapper(const char *name)
{
    static const struct { const char *name; void *wrapper; } wrappers[] = {
        {"execve", (void *)follow_execve}, {"execv", (void *)follow_execv}, {"execvpe", (void *)follow_execvpe},
        {"execvp", (void *)follow_execvp}, {"fexecve", (void *)follow_fexecve},
        {"posix_spawn", (void *)follow_posix_spawn}, {"posix_spawnp", (void *)follow_posix_spawnp},
    };
    for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++)
        if (mrh_same_string(wrappers[i].name, name)) return wrappers[i].wrapper;
    return NULL;
}

#define MRH_WEAK MRH_EXPORT __attribute__((weak))

MRH_WEAK int execve(const char *path, char *const argv[], char *const envp[])
{
    return follow_execve(path, argv, envp);
}

MRH_WEAK int execv(const char *path, char *const argv[]) { return follow_execv(path, argv); }

MRH_WEAK int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return follow_execvpe(file, argv, envp);
}

MRH_WEAK int execvp(const char *file, char *const argv[]) { return follow_execvp(file, argv); }

MRH_WEAK int fexecve(int fd, char *const argv[], char *const envp[]) { return follow_fexecve(fd, argv, envp); }

MRH_WEAK int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return follow_posix_spawn(pid, path, actions, attr, argv, envp);
}

MRH_WEAK int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return follow_posix_spawnp(pid, file, actions, attr, argv, envp);
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
    for (size_t mrh_i = 1; mrh_i <= mrh_n; mrh_i++) argv[mrh_i] = va_arg(mrh_ap, char *);

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

/* namespace.c (hook side): what the hook namespace takes from the target's libc instead of its own.
 *
 * The runtime library is the first object of the hook namespace, so these definitions come before its libc's
 * in the namespace's global scope: libpython and that libc call them. Everything else the namespace's libc
 * does on its own (locale, stdio, the setlocale lock the target may hold while its first hooked call starts
 * the hooks). What it must not do on its own, and why:
 *
 * - Memory. Two libcs means two heaps, and the hook namespace's heap would be orphaned: its per-thread caches
 *   are freed by the libc that created the thread (the target's), and its locks are reset at fork by the libc
 *   that forks (the target's), so a fork while another thread allocated there would leave the child's hooks
 *   deadlocked. Idea: one heap, the target's allocator's originals (never its hooks). Until the target side
 *   hands them over (mrh_hook_start), the namespace's own start-up is served from a small static arena.
 * - Thread keys. pthread_getspecific() stores values in the thread's descriptor, which both libcs share, at the
 *   index of a key each libc allocates from its own table: the same index in two libcs is one slot, and the
 *   target's key 0 would be the hooks' key 0. Idea: the target's key functions for both.
 * - Threads. A thread that libc did not create lacks its per-thread state (ctype tables): threads made for the
 *   hooks (threading in a hook script) would lack the target libc's, which originals need. Idea: the target's
 *   pthread_create, with this libc's per-thread set-up done first in the new thread.
 * - fork. Only the libc that forks runs its atfork handlers and resets its locks; the target's must. Idea: the
 *   target's fork (os.fork in a hook), which runs the runtime's fork handlers too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrhooker_rt.h"

extern const mrh_runtime *mrh_rt;   /* pyrt.c */
extern long mrh_tls_offset;

/* ---- memory ------------------------------------------------------------------------------------------ */

/* Serves the namespace's libc and libpython while they are loaded, before mrh_hook_start (one thread: the
 * start thread). Never freed. */
static unsigned char early_arena[1 << 16] __attribute__((aligned(16)));
static size_t early_used;

static void *early_alloc(size_t size)
{
    size_t need = 16 + ((size + 15) & ~(size_t)15);
    if (size >= sizeof early_arena || need > sizeof early_arena - early_used) return NULL;
    unsigned char *block = early_arena + early_used;
    *(size_t *)block = size;
    early_used += need;
    return block + 16;
}

static int early(const void *p)
{
    return (const unsigned char *)p >= early_arena && (const unsigned char *)p < early_arena + sizeof early_arena;
}

static size_t early_size(const void *p) { return *(const size_t *)((const unsigned char *)p - 16); }

MRH_EXPORT void *malloc(size_t n)
{
    return MRH_LIKELY(mrh_rt != NULL) ? mrh_rt->alloc.malloc(n) : early_alloc(n);
}

MRH_EXPORT void *calloc(size_t n, size_t m)
{
    if (MRH_LIKELY(mrh_rt != NULL)) return mrh_rt->alloc.calloc(n, m);
    if (m && n > SIZE_MAX / m) return NULL;
    return early_alloc(n * m);   /* zeroed: static, never reused */
}

MRH_EXPORT void free(void *p)
{
    if (p && !early(p)) mrh_rt->alloc.free(p);
}

MRH_EXPORT void *realloc(void *p, size_t n)
{
    if (p && early(p)) {
        void *q = malloc(n);
        size_t old = early_size(p);
        if (q) memcpy(q, p, old < n ? old : n);
        return q;
    }
    return MRH_LIKELY(mrh_rt != NULL) ? mrh_rt->alloc.realloc(p, n) : early_alloc(n);
}

MRH_EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
    if (m && n > SIZE_MAX / m) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n * m);
}

MRH_EXPORT void *memalign(size_t align, size_t n)
{
    return MRH_LIKELY(mrh_rt != NULL) ? mrh_rt->alloc.memalign(align, n) : NULL;
}

MRH_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    return MRH_LIKELY(mrh_rt != NULL) ? mrh_rt->alloc.aligned_alloc(align, n) : NULL;
}

MRH_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    return MRH_LIKELY(mrh_rt != NULL) ? mrh_rt->alloc.posix_memalign(out, align, n) : ENOMEM;
}

MRH_EXPORT void *valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }

MRH_EXPORT void *pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return memalign(page, (n + page - 1) & ~(page - 1));
}

MRH_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p) return 0;
    return early(p) ? early_size(p) : mrh_rt->alloc.malloc_usable_size(p);
}

/* ---- thread keys ------------------------------------------------------------------------------------- */

MRH_EXPORT int pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    return MRH_LIKELY(mrh_rt != NULL) ? mrh_rt->key_create(key, destructor) : EAGAIN;
}

/* gcc sees pthread.h's access attribute on `value` and warns that it is unread: it is only passed on. */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
MRH_EXPORT int pthread_key_delete(pthread_key_t key) { return mrh_rt->key_delete(key); }
MRH_EXPORT void *pthread_getspecific(pthread_key_t key) { return mrh_rt->getspecific(key); }
MRH_EXPORT int pthread_setspecific(pthread_key_t key, const void *value) { return mrh_rt->setspecific(key, value); }

/* ---- threads and fork -------------------------------------------------------------------------------- */

void mrh_thread_init(void);   /* pyrt.c: this libc's per-thread set-up */

struct thread_start {
    void *(*routine)(void *);
    void *arg;
};

static void *thread_trampoline(void *p)
{
    struct thread_start start = *(struct thread_start *)p;
    free(p);
    mrh_thread_init();
    mrh_thread *t = (mrh_thread *)((char *)__builtin_thread_pointer() + mrh_tls_offset);
    t->hook_side_ready = 1;
    return start.routine(start.arg);
}

MRH_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*routine)(void *), void *arg)
{
    struct thread_start *start = malloc(sizeof *start);
    if (!start) return EAGAIN;
    start->routine = routine;
    start->arg = arg;
    int rc = mrh_rt->thread_create(thread, attr, thread_trampoline, start);
    if (rc != 0) free(start);
    return rc;
}

MRH_EXPORT pid_t fork(void) { return mrh_rt->fork(); }

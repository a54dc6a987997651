/* entry.h (target side): what a generated entry point is made of. Included by the generated entries.c, which
 * holds only what is specific to each hooked symbol: its prototype, slot and failure value (codegen.entries_source;
 * tests/unit/golden/hooks.entries.c shows what it writes). An entry point takes the hook when it may run now
 * (MRH_HOOK, then mrh_hook_done), and the original otherwise (mrh_original_of; NULL: mrh_no_original).
 *
 * The C name of an entry point is mrh_entry_N and its symbol is the hooked name (an asm label), so no header's
 * declaration of the same function (memcpy's, a builtin's, a macro named like it) can conflict.
 */
#ifndef MRHOOKER_ENTRY_H
#define MRHOOKER_ENTRY_H

#include <errno.h>
#include "preload.h"

#define MRH_ENTRY(ret, slot, symbol, params)                                                           \
    MRH_EXPORT ret mrh_entry_##slot params __asm__(symbol);                                            \
    ret mrh_entry_##slot params

/* The hook of a slot if it may run now, with the thread's depth raised (then mrh_hook_done() after it), or
 * NULL: the call goes to the original. The fast path is two loads and two tests; everything else (the first
 * hooked call, the start, depth > 0, a call from the dynamic loader) is mrh_begin_slow()'s. `impl` is set
 * before the state becomes READY and never changes after, so a READY state means a usable impl; the NULL
 * test only guards a hook library that lacked a symbol (then the state never became READY anyway). */
#define MRH_HOOK(t, slot) mrh_hook_for((t), (slot), __builtin_return_address(0))

static inline __attribute__((always_inline)) void *mrh_hook_for(mrh_thread *t, int slot, const void *caller)
{
    if (MRH_LIKELY(t->depth == 0 && __atomic_load_n(&mrh_state, __ATOMIC_ACQUIRE) == MRH_READY) ||
        mrh_begin_slow(t, caller)) {
        void *impl = mrh_slots[slot].impl;
        if (MRH_LIKELY(impl != NULL)) {
            if (MRH_UNLIKELY(!t->hook_side_ready)) mrh_first_hook_on_thread(t);
            t->depth++;
            return impl;
        }
    }
    return NULL;
}

static inline __attribute__((always_inline)) void mrh_hook_done(mrh_thread *t) { t->depth--; }

/* No original could be found (a function of a library that is not loaded): the call fails with ENOSYS. */
static inline long mrh_no_original(long failure)
{
    errno = ENOSYS;
    return failure;
}

/* The allocator's special cases: while its own originals are being looked up (see resolve.c), malloc and
 * calloc are served from the bootstrap arena, and what that arena gave out must never reach the real free
 * or realloc. */
#define MRH_FREE_GUARD(p)                                                                              \
    do {                                                                                               \
        if (MRH_UNLIKELY(mrh_boot_owns(p))) return;                                                    \
    } while (0)

#define MRH_REALLOC_GUARD(p, n)                                                                        \
    do {                                                                                               \
        if (MRH_UNLIKELY(mrh_boot_owns(p))) return mrh_boot_realloc((p), (n));                         \
    } while (0)

static inline void *mrh_boot_realloc(void *p, unsigned long n)
{
    void *(*real_malloc)(unsigned long) = (void *(*)(unsigned long))mrh_original("malloc");
    void *q = real_malloc ? real_malloc(n) : mrh_boot_alloc(n);
    size_t old = mrh_boot_size(p);
    if (q) __builtin_memcpy(q, p, old < n ? old : n);
    return q;
}

#endif

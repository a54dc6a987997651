/* resolve.c (target side): the originals. A hook's original is the next definition of its symbol after the
 * preload library, what dlsym(RTLD_NEXT) gives it.
 *
 * Hazards, and the idea for each:
 * - A hook script may hook dlsym itself: our lookups would then run through our own entry point.
 *   Idea: the runtime calls libc's dlsym through a pointer found in libc's own symbol table (find_in_object).
 * - glibc's dlsym may call malloc, calloc and free (for its error strings). When those are hooked, their own
 *   originals may not be known yet, and looking them up would recurse without end.
 *   Idea: `mrh_resolving` marks a thread inside a lookup; such calls get no original (NULL), and the entry points
 *   of malloc/calloc serve them from a static arena (mrh_boot_alloc), free leaks them.
 * - A library loaded later with dlopen(RTLD_LOCAL) (a plugin, a Python extension's libz or libssl) is not in
 *   the global scope, so RTLD_NEXT can't see it, yet its callers reach our entry point.
 *   Idea: when RTLD_NEXT finds nothing, look in each object of the target's namespace (find_in_loaded);
 *   that object is then kept loaded (a dlclose of it would leave a dangling original).
 * - Any of these functions can be called while a hook runs, from a signal handler or during another lookup.
 *   Idea: every call the runtime makes raises the thread's depth, so hooked calls it makes go to originals.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>

/* ---- bootstrap allocator ------------------------------------------------------------------------------ */

static unsigned char boot_arena[1 << 16] __attribute__((aligned(16)));
static size_t boot_used;                                        /* guarded by boot_lock */
static pthread_mutex_t boot_lock = PTHREAD_MUTEX_INITIALIZER;   /* reset in a fork child */

void *mrh_boot_alloc(size_t size)
{
    size_t need = 16 + ((size + 15) & ~(size_t)15);
    void *p = NULL;
    pthread_mutex_lock(&boot_lock);
    if (size < sizeof boot_arena && need <= sizeof boot_arena - boot_used) {
        unsigned char *block = boot_arena + boot_used;
        *(size_t *)block = size;   /* for realloc of an arena block */
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

/* ---- symbol tables ------------------------------------------------------------------------------------ */

static const char *base_name(const char *path)
{
    const char *base = path;
    for (const char *p = path; *p; p++)
        if (*p == '/') base = p + 1;
    return base;
}

/* The default-version definition of `name` in the dynamic symbol table `dynamic` of an object loaded at `base`
 * (GNU hash), or NULL. No IFUNC handling: callers need a plain function (dlsym) or only whether it's there. */
static void *find_in_dynamic(ElfW(Addr) base, const ElfW(Dyn) *dynamic, const char *name)
{
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const uint32_t *gnu_hash = NULL;
    const ElfW(Half) *versym = NULL;
    for (const ElfW(Dyn) *d = dynamic; d->d_tag != DT_NULL; d++) {
        ElfW(Addr) p = d->d_un.d_ptr;
        if (p < base) p += base;   /* glibc relocates these entries in place on most machines */
        if (d->d_tag == DT_SYMTAB) symtab = (const ElfW(Sym) *)p;
        else if (d->d_tag == DT_STRTAB) strtab = (const char *)p;
        else if (d->d_tag == DT_GNU_HASH) gnu_hash = (const uint32_t *)p;
        else if (d->d_tag == DT_VERSYM) versym = (const ElfW(Half) *)p;
    }
    if (!symtab || !strtab || !gnu_hash) return NULL;
    uint32_t h = 5381;
    for (const char *c = name; *c; c++) h = h * 33 + (unsigned char)*c;
    uint32_t nbuckets = gnu_hash[0], symoffset = gnu_hash[1], bloom_words = gnu_hash[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(gnu_hash + 4) + bloom_words);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset) return NULL;
    for (;; i++) {
        uint32_t h2 = chain[i - symoffset];
        const ElfW(Sym) *s = &symtab[i];
        if ((h | 1) == (h2 | 1) && s->st_shndx != SHN_UNDEF && mrh_same_string(strtab + s->st_name, name) &&
            (!versym || !(versym[i] & 0x8000)))
            return (void *)(base + s->st_value);
        if (h2 & 1) return NULL;
    }
}

void *mrh_find_in_object(const struct link_map *map, const char *name)
{
    return find_in_dynamic(map->l_addr, map->l_ld, name);
}

/* libc's dlsym (or libdl's, before glibc 2.34), never a hooked one. Found at load, when the link map can be
 * walked without a lock (no other thread can dlclose yet). */
static void *(*real_dlsym)(void *, const char *);

static void find_real_dlsym(void)
{
    for (struct link_map *m = _r_debug.r_map; m && !real_dlsym; m = m->l_next) {
        const char *base = base_name(m->l_name ? m->l_name : "");
        if (mrh_starts_with(base, "libc.so") || mrh_starts_with(base, "libdl.so"))
            real_dlsym = (void *(*)(void *, const char *))mrh_find_in_object(m, "dlsym");
    }
    if (!real_dlsym) real_dlsym = dlsym;   /* an unusual libc: the PLT's dlsym is the best we have */
}

/* ---- the dynamic loader's own code -------------------------------------------------------------------- */

/* ld.so's text, from its program headers. Computed on first use (it is read-only data: races are benign). */
static uintptr_t loader_start, loader_end;

int mrh_in_loader(const void *code)
{
    if (!loader_end) {
        mrh_tls.depth++;   /* getauxval may be hooked */
        uintptr_t base = getauxval(AT_BASE);
        mrh_tls.depth--;
        if (!base) return 0;
        const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
        const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        for (int i = 0; i < eh->e_phnum; i++) {
            if (ph[i].p_type != PT_LOAD) continue;
            if (base + ph[i].p_vaddr < lo) lo = base + ph[i].p_vaddr;
            if (base + ph[i].p_vaddr + ph[i].p_memsz > hi) hi = base + ph[i].p_vaddr + ph[i].p_memsz;
        }
        loader_start = lo;
        __atomic_store_n(&loader_end, hi, __ATOMIC_RELEASE);
    }
    uintptr_t a = (uintptr_t)code;
    return a >= loader_start && a < __atomic_load_n(&loader_end, __ATOMIC_ACQUIRE);
}

/* ---- functions that depend on who calls them -------------------------------------------------------------
 * dlopen, dlmopen, dlsym and dlvsym look at their caller's address: dlopen loads into the caller's namespace,
 * dlsym(RTLD_DEFAULT/RTLD_NEXT) searches from the caller. Called by the hook side (a hook's original), the
 * caller would be in the hook namespace: a library the target asked for would be loaded into the hooks'.
 * Idea: their originals are these proxies, whose calls come from this library, in the target's namespace
 * (as when an entry point calls them itself). noinline and no tail call: the return address must be here. */
static void *(*real_dlopen)(const char *, int);
static void *(*real_dlmopen)(Lmid_t, const char *, int);
static void *(*real_dlsym_next)(void *, const char *);
static void *(*real_dlvsym)(void *, const char *, const char *);

#define KEEP_CALLER() __asm__ volatile("" ::: "memory")   /* stops the compiler turning the call into a jump */

__attribute__((noinline)) static void *proxy_dlopen(const char *file, int mode)
{
    void *r = real_dlopen(file, mode);
    KEEP_CALLER();
    return r;
}

__attribute__((noinline)) static void *proxy_dlmopen(Lmid_t ns, const char *file, int mode)
{
    void *r = real_dlmopen(ns, file, mode);
    KEEP_CALLER();
    return r;
}

__attribute__((noinline)) static void *proxy_dlsym(void *handle, const char *name)
{
    void *r = real_dlsym_next(handle, name);
    KEEP_CALLER();
    return r;
}

__attribute__((noinline)) static void *proxy_dlvsym(void *handle, const char *name, const char *version)
{
    void *r = real_dlvsym(handle, name, version);
    KEEP_CALLER();
    return r;
}

/* The original to hand out for a name and the real function found for it: a proxy if the name is one of those,
 * follow.c's wrapper for an exec function (so that a hooked or traced execve still follows the child),
 * preload.c's for pthread_create (so that the threads it starts still carry thread_key), signals.c's for
 * sigaction and signal (so that the handlers they install are still wrapped), a trace's for prctl and syscall
 * (trace.c, sandboxes). */
static void *caller_proof(const char *name, void *real)
{
    if (!real) return NULL;
    void *wrapper = mrh_follow_wrapper(name);
    if (!wrapper) wrapper = mrh_thread_wrapper(name);
    if (!wrapper) wrapper = mrh_signal_wrapper(name);
    if (!wrapper && mrh_trace_wrapper) wrapper = mrh_trace_wrapper(name);
    if (wrapper) return wrapper;
    if (mrh_same_string(name, "dlopen")) return real_dlopen = real, (void *)proxy_dlopen;
    if (mrh_same_string(name, "dlmopen")) return real_dlmopen = real, (void *)proxy_dlmopen;
    if (mrh_same_string(name, "dlsym")) return real_dlsym_next = real, (void *)proxy_dlsym;
    if (mrh_same_string(name, "dlvsym")) return real_dlvsym = real, (void *)proxy_dlvsym;
    return real;
}

/* ---- lookups ------------------------------------------------------------------------------------------ */

/* This library's ELF header, which the linker places at its start (a hidden symbol: no call, no lookup). */
extern const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

static int in_preload_library(const void *p)
{
    static uintptr_t hi;   /* this library's end: read-only after the first call */
    uintptr_t lo = (uintptr_t)&__ehdr_start;
    if (!hi) {
        const ElfW(Phdr) *ph = (const ElfW(Phdr) *)((const char *)&__ehdr_start + __ehdr_start.e_phoff);
        uintptr_t top = 0, first = UINTPTR_MAX;
        for (int i = 0; i < __ehdr_start.e_phnum; i++)
            if (ph[i].p_type == PT_LOAD) {
                if (ph[i].p_vaddr + ph[i].p_memsz > top) top = ph[i].p_vaddr + ph[i].p_memsz;
                if (ph[i].p_vaddr < first) first = ph[i].p_vaddr;
            }
        hi = lo - first + top;
    }
    return (uintptr_t)p >= lo && (uintptr_t)p < hi;
}

const void *mrh_dynamic_of(const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            return (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    return NULL;
}

/* The paths of the loaded objects that define a name, collected by dl_iterate_phdr (which holds the loader's
 * write lock, so no dlopen may be called from its callback: it takes the loader's other lock first). */
#define LOADED_MAX 64
static char loaded_names[1 << 14];                                    /* guarded by loaded_lock */
static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;      /* reset in a fork child */

struct loaded_list { const char *symbol; size_t used; int count; int offset[LOADED_MAX]; };

static int collect_definers(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct loaded_list *list = arg;
    const char *name = info->dlpi_name;
    size_t n = name ? mrh_length(name) : 0;
    if (n == 0 || name[0] != '/' || list->count >= LOADED_MAX || list->used + n + 1 > sizeof loaded_names) return 0;
    const ElfW(Dyn) *dynamic = mrh_dynamic_of(info);
    if (!dynamic) return 0;
    int hashed = 0;   /* an object without a GNU hash table (old linkers) can't be read here: dlsym will tell */
    for (const ElfW(Dyn) *d = dynamic; d->d_tag != DT_NULL; d++) hashed |= d->d_tag == DT_GNU_HASH;
    void *p = hashed ? find_in_dynamic(info->dlpi_addr, dynamic, list->symbol) : NULL;
    if (hashed && (!p || in_preload_library(p))) return 0;
    mrh_copy(loaded_names + list->used, name, n + 1);
    list->offset[list->count++] = (int)list->used;
    list->used += n + 1;
    return 0;
}

/* `name` in the objects of the target's namespace that RTLD_NEXT does not search (loaded later, RTLD_LOCAL).
 * An object found so stays loaded.
 * Hazard: a dlopen, even RTLD_NOLOAD, runs the constructors its object and their dependencies haven't run yet,
 * in the middle of this lookup, which hands out no originals (`mrh_resolving`): at load, every library's, for a
 * traced name that nothing defines (cos without libm made curl's gnutls fail its ASN.1 set-up). Idea: not at
 * load (`loading`), and later dlopen only an object that defines the name (read in its symbol table first): one
 * that was loaded and set up, in all but a constructor calling into a library of its own dlopen that sets up
 * after it. */
static void *find_in_loaded(const char *name)
{
    static struct loaded_list list;   /* guarded by loaded_lock */
    void *found = NULL;
    pthread_mutex_lock(&loaded_lock);
    list.symbol = name;
    list.used = 0;
    list.count = 0;
    dl_iterate_phdr(collect_definers, &list);
    for (int i = 0; i < list.count && !found; i++) {
        /* RTLD_NOLOAD from this library opens only what the target's namespace has: never the hook side's. */
        void *h = dlopen(loaded_names + list.offset[i], RTLD_NOLOAD | RTLD_LAZY);
        if (!h) continue;
        void *p = real_dlsym(h, name);   /* an IFUNC's choice, which the symbol table doesn't give */
        if (p && !in_preload_library(p)) found = p;   /* h's reference is kept: the object stays loaded */
        else dlclose(h);
    }
    pthread_mutex_unlock(&loaded_lock);
    return found;
}

/* Set while mrh_resolve_init runs, at load: every object is in the global scope then, where RTLD_NEXT looks, and
 * the lookup must not call what may be traced (dlopen, its locks) before those names have their originals. */
static int loading;

/* The next definition of `name` after this library. Raises depth: hooked calls made by dlsym (and its
 * allocations) go to their originals. */
void *mrh_lookup_next(const char *name)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    mrh_resolving = 1;
    if (MRH_UNLIKELY(!real_dlsym)) find_real_dlsym();   /* a lookup before this library's constructor */
    void *p = real_dlsym(RTLD_NEXT, name);
    if (!p && !loading) p = find_in_loaded(name);
    mrh_resolving = 0;
    t->depth--;
    return p;
}

void *mrh_resolve(int slot)
{
    mrh_slot *s = &mrh_slots[slot];
    void *p = __atomic_load_n(&s->original, __ATOMIC_ACQUIRE);
    if (MRH_LIKELY(p != NULL) || mrh_resolving) return p;
    p = caller_proof(s->name, mrh_lookup_next(s->name));
    if (p) {
        __atomic_store_n(&s->original, p, __ATOMIC_RELEASE);
        mrh_report_resolved(slot);
    }
    return p;
}

/* ---- originals by name (Cython's original(), dlsym(RTLD_NEXT, ...) in a hook) --------------------------- */

/* Filled on demand and never emptied: the entries in the order they were added, found through an
 * open-addressing index of their numbers (a process remembers a few dozen names, so it touches a page or two of
 * this, where entries spread by their hashes would touch all six: ~20 kB more in every hooked process). Readers
 * take no lock: an entry's name and address are written before its number is published in the index. */
#define NAMED_SIZE 1024
static struct named {
    const char *name;
    void *addr;
} named[NAMED_SIZE];
static unsigned short named_index[NAMED_SIZE];   /* 1 + the number of the entry there; 0: free */
static unsigned named_count;                     /* entries added */
static pthread_mutex_t named_lock = PTHREAD_MUTEX_INITIALIZER;   /* serialises adding entries */

static unsigned name_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* In front of the table: the last address found for each name pointer (a Cython hook passes the same
 * literal every time), so that a repeated lookup is a few instructions. The pointer alone does not say the
 * name: the memory of a name that was looked up may hold another one later (a bytes object freed, a buffer
 * reused), so a hit also compares the string with the table's copy of the name (which is never freed). Each
 * entry is a seqlock: the writer (holding named_lock) makes seq odd, writes, makes it even; a reader that saw
 * it change uses the table. */
#define BY_POINTER 64
static struct by_pointer {
    unsigned seq;
    const char *name;   /* the caller's pointer */
    const char *copy;   /* the table's copy of the name it held */
    void *addr;
} by_pointer[BY_POINTER];

static inline struct by_pointer *pointer_slot(const char *name)
{
    return &by_pointer[(unsigned)((uintptr_t)name >> 3) % BY_POINTER];
}

static void remember_pointer(const char *name, const char *copy, void *addr)   /* with named_lock held */
{
    struct by_pointer *e = pointer_slot(name);
    __atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&e->name, name, __ATOMIC_RELAXED);
    __atomic_store_n(&e->copy, copy, __ATOMIC_RELAXED);
    __atomic_store_n(&e->addr, addr, __ATOMIC_RELAXED);
    __atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
}

static inline void *recall_pointer(const char *name)
{
    struct by_pointer *e = pointer_slot(name);
    unsigned seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
    const char *n = __atomic_load_n(&e->name, __ATOMIC_RELAXED);
    const char *copy = __atomic_load_n(&e->copy, __ATOMIC_RELAXED);
    void *addr = __atomic_load_n(&e->addr, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if ((seq & 1) || n != name || __atomic_load_n(&e->seq, __ATOMIC_RELAXED) != seq) return NULL;
    return mrh_same_string(copy, name) ? addr : NULL;
}

void *mrh_original(const char *name)
{
    void *hit = recall_pointer(name);
    if (MRH_LIKELY(hit != NULL)) return hit;
    if (mrh_resolving) return NULL;
    mrh_thread *t = &mrh_tls;
    unsigned h = name_hash(name);
    for (unsigned i = 0; i < NAMED_SIZE; i++) {
        unsigned number = __atomic_load_n(&named_index[(h + i) % NAMED_SIZE], __ATOMIC_ACQUIRE);
        if (!number) break;
        struct named *e = &named[number - 1];
        if (e->name == name || mrh_same_string(e->name, name)) {
            t->depth++;
            pthread_mutex_lock(&named_lock);
            remember_pointer(name, e->name, e->addr);
            pthread_mutex_unlock(&named_lock);
            t->depth--;
            return e->addr;
        }
    }
    void *p = NULL;
    int slot = -1;
    for (int i = 0; i < mrh_nslots && slot < 0; i++)   /* a hooked symbol: its slot knows it already */
        if (mrh_same_string(mrh_slots[i].name, name)) slot = i;
    p = slot >= 0 ? mrh_resolve(slot) : caller_proof(name, mrh_lookup_next(name));
    if (!p) return NULL;
    t->depth++;
    pthread_mutex_lock(&named_lock);
    const char *kept = NULL;   /* the table's copy of the name: none if the table is full */
    for (unsigned i = 0; i < NAMED_SIZE && named_count < NAMED_SIZE; i++) {
        unsigned short *at = &named_index[(h + i) % NAMED_SIZE];
        if (*at) {
            if (!mrh_same_string(named[*at - 1].name, name)) continue;
            kept = named[*at - 1].name;   /* another thread added it meanwhile */
            break;
        }
        char *copy = mrh_boot_alloc(mrh_length(name) + 1);   /* never freed, like the entry */
        if (!copy) break;
        mrh_copy(copy, name, mrh_length(name) + 1);
        struct named *e = &named[named_count];
        e->name = copy;
        e->addr = p;
        __atomic_store_n(at, (unsigned short)++named_count, __ATOMIC_RELEASE);
        kept = copy;
        break;
    }
    if (kept) remember_pointer(name, kept, p);
    pthread_mutex_unlock(&named_lock);
    t->depth--;
    return p;
}

/* ---- load and fork ------------------------------------------------------------------------------------ */

/* The allocator's slots first: dlsym allocates on its error paths (a symbol no library defines), and those
 * allocations must come from the real allocator, not the bootstrap arena, since their free may not be hooked. */
static int is_allocator(const char *name)
{
    return mrh_same_string(name, "malloc") || mrh_same_string(name, "calloc") || mrh_same_string(name, "realloc") ||
           mrh_same_string(name, "free");
}

void mrh_resolve_init(void)
{
    if (!real_dlsym) find_real_dlsym();
    for (int i = 0; i < mrh_nslots; i++)
        if (is_allocator(mrh_slots[i].name)) mrh_resolve(i);
    loading = 1;
    for (int i = 0; i < mrh_nslots; i++) mrh_resolve(i);
    loading = 0;
}

/* An attach: the library was dlopen'd into a process whose libraries are all set up, and RTLD_NEXT from it sees
 * only its own dependencies; what it didn't find at load is looked for in the loaded libraries now. */
void mrh_resolve_missing(void)
{
    for (int i = 0; i < mrh_nslots; i++)
        if (!__atomic_load_n(&mrh_slots[i].original, __ATOMIC_ACQUIRE)) mrh_resolve(i);
}

void mrh_resolve_after_fork(void)
{
    pthread_mutex_init(&boot_lock, NULL);
    pthread_mutex_init(&loaded_lock, NULL);
    pthread_mutex_init(&named_lock, NULL);
}

/* attach.c (target side): the runtime in a process mrhooker did not start (`mrhooker trace -p PID`).
 *
 * attach.py loads this library into the running process with the process's own dlopen (RTLD_LOCAL, so nothing
 * binds to it by name) and, in the same thread, calls mrhooker_attach() with the settings a launched process
 * gets from its environment. A preloaded library gets the program's calls because the loader binds them to it;
 * in a running process they are bound already. So:
 * - Patching: every GOT slot of every object in the program's namespace that holds a hooked function (PLT
 *   calls: JUMP_SLOT; -z now / -fno-plt calls and address-of references: GLOB_DAT and 64-bit pointers) is set
 *   to that function's entry point, and the value it held is kept (a lazily bound slot's PLT stub included).
 *   The originals are found as when preloaded (resolve.c: RTLD_NEXT, the global scope).
 * - Detach puts every slot back. Entry points stay mapped (the library is never unloaded: a thread may be in
 *   one, or hold a pointer to one taken by `&write`), inert: the trace is off, hooks are OFF.
 *
 * Hazards, and the idea for each:
 * - A dlclose unmaps an object whose slots were changed: writing its slots back would write into whatever is
 *   mapped there now. Idea: slots are read and written only inside dl_iterate_phdr's callback, where the
 *   loader's write lock is held (an object leaves the list under it and is unmapped only after), and only for
 *   objects in the list at that moment.
 * - Other threads call through a slot while it is written: the write must be one aligned 8-byte store.
 *   RELRO pages are read-only: such a page is made writable for the store and read-only again.
 * - An object the loader is still loading (another thread's dlopen) is in its list before it is relocated:
 *   its slots would be overwritten, and its RELRO pages protected by the loader under our feet (a store after
 *   that crashes the program; our making one read-only before the loader's last write crashes it too). Idea:
 *   an object is patched once _dl_find_object knows it (glibc adds objects there after relocating them); with
 *   an older glibc, its read-only pages are written through /proc/self/mem instead, which changes no
 *   protection (the kernel's copy of 8 aligned bytes).
 * - A lazily bound slot that another thread is resolving while it is patched ends up with the function
 *   (unhooked); objects loaded after the attach are not bound to the entry points by the loader. Idea: the
 *   watcher thread looks again every 50 ms: new objects are patched and lost slots are set again. (Wrapping
 *   dlopen instead would change its caller, and so the RUNPATH and $ORIGIN it searches.)
 * - mrhooker may die at any moment (SIGKILL included); the process must then go on, unhooked. Idea: the
 *   process holds a connection to mrhooker (a unix socket whose path the settings give); the watcher detaches
 *   when it closes, whoever closes it. Detach is the same code whether mrhooker asked for it or died.
 * - A second thread makes the kernel count references on every descriptor a system call uses (fdget: ~50 ns
 *   more for each read or write of a single-threaded program), and our descriptor would be the program's to
 *   see, close or reuse. Idea: the watcher takes a descriptor table of its own (unshare(CLONE_FILES)) holding
 *   the connection alone, and the program's table lets go of it: the program's table is shared with no one
 *   again and holds nothing of ours. (Should unshare fail, the connection stays in the program's table at a
 *   high number, checked to be the same socket before each use: a program that closes it detaches us.)
 * - fork: the child inherits the patched slots, not the connection (it is the watcher's). Idea: with
 *   MRHOOKER_FOLLOW=1 (-f) the child connects to mrhooker again and starts a watcher of its own; without, or if
 *   mrhooker is gone, the child puts the slots back at once.
 * - fork while a thread holds the loader's list lock (dl_iterate_phdr's: the watcher in a pass, or a thread of
 *   the program unwinding an exception): the child's copy of that lock stays taken for good, glibc resets only
 *   its other loader locks. A child putting its slots back through dl_iterate_phdr waited forever (and its
 *   parent in waitpid). Ideas: the child puts them back from its list of patches without the loader (it is the
 *   only thread: no dlclose can run; an object still in the loader's list is still mapped); and a fork waits
 *   for the watcher's pass to end (attach_fork_prepare takes patch_lock, waiting a bounded time: see there), so
 *   the child of a program that never walks its objects itself gets that lock free, for its own use and for a
 *   watcher of its own (-f).
 * - vfork: its child runs in the parent's memory until it execs, and calls the program makes there (Python's
 *   subprocess calls execv; dash, execve) ran hooks and the trace in the parent's memory: the parent's GIL was
 *   left taken (its hooks never ran again, on later attaches neither) and its cached thread id became the
 *   child's (its trace lines carried the child's pid). Idea: as when launched (preload.c), vfork runs as fork:
 *   its slots are patched too, to vfork_as_fork.
 * Left out: sigaction's handler tracking and pthread_create's thread key are not patched in (a handler that
 *   longjmps out of a hooked call leaves that thread untraced; a hook script's threads' states are cleaned at
 *   exit only); exec'd children are not hooked (no LD_PRELOAD).
 */
#define _GNU_SOURCE
#include "preload.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* trace.c's switch, in a trace build (weak: a hook build has none). on=1: map the trace file at the next call;
 * on=0: record nothing more. */
void mrh_trace_switch(int on) __attribute__((weak));

/* ---- the patched slots -----------------------------------------------------------------------------------
 * patch_lock serialises every pass over the slots (the watcher's, mrhooker_attach's, a fork child's); the
 * fields below are guarded by it. A forking thread holds it from attach_fork_prepare to the parent's or the
 * child's handler (see the hazards); the child initialises it again. */
static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;

struct object { ElfW(Addr) base; const ElfW(Dyn) *dynamic; };   /* an object's identity: l_addr and l_ld */

struct patch {
    void **slot;
    void *old;       /* what it held: put back at detach */
    void *entry;     /* what it holds while attached */
    struct object object;
    int readonly;    /* on a page the loader made read-only (RELRO) */
};

static struct patch *patches;       /* mmap'd (no allocation: malloc may be hooked) */
static size_t npatches, patches_cap;
static struct object *objects;      /* the objects patched so far */
static size_t nobjects, objects_cap;
static unsigned long long seen_adds = ~0ULL, seen_subs = ~0ULL;   /* dl_iterate_phdr's counters at the last pass */
static void **entries;              /* per slot: its entry point in this library (NULL: no original, not patched) */
static int *by_name;                /* open-addressing index of the slots by name: 1 + slot, 0 free */
static unsigned by_name_size;
static ElfW(Addr) self_base;        /* this library's l_addr: its own slots are never patched */
static int mem_fd = -1;             /* /proc/self/mem, open during a pass (glibc < 2.35) */
static int (*find_object)(void *, void *);   /* glibc 2.35+'s _dl_find_object, or NULL */
static void *vfork_original;        /* libc's vfork (what a pointer to it holds), or NULL */
static pid_t (*fork_for_vfork)(void);   /* fork's entry point here if fork is hooked (its hook and trace see the
                                         * call, as when launched), else libc's fork */

/* Doubles *array (mmap'd), keeping its items. The new array is in place before the old one is unmapped: a fork
 * child may read it whatever this thread was doing (see attach_fork_prepare). -1: no memory, *array as it was. */
static int grow(void *array, size_t *cap, size_t item)
{
    void **at = array, *old = *at;
    size_t cap2 = *cap ? *cap * 2 : 256;
    void *p = mmap(NULL, cap2 * item, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    if (old) memcpy(p, old, *cap * item);
    __atomic_store_n(at, p, __ATOMIC_RELEASE);
    if (old) munmap(old, *cap * item);
    *cap = cap2;
    return 0;
}

static unsigned hash_name(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int slot_named(const char *name)
{
    if (!by_name_size) return -1;
    for (unsigned i = hash_name(name) & (by_name_size - 1);; i = (i + 1) & (by_name_size - 1)) {
        int n = by_name[i];
        if (!n) return -1;
        if (mrh_same_string(mrh_slots[n - 1].name, name)) return n - 1;
    }
}

/* The entry points and the index, once per library (mrhooker_attach, with patch_lock held). */
static int index_slots(void)
{
    if (by_name) return 0;
    Dl_info info;
    struct link_map *self = NULL;
    if (!dladdr1((void *)index_slots, &info, (void **)&self, RTLD_DL_LINKMAP) || !self) return -ENOENT;
    self_base = self->l_addr;
    find_object = (int (*)(void *, void *))mrh_lookup_next("_dl_find_object");
    unsigned size = 16;
    while (size < 2u * (unsigned)mrh_nslots) size *= 2;
    entries = mmap(NULL, mrh_nslots * sizeof *entries + size * sizeof *by_name, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (entries == MAP_FAILED) return entries = NULL, -ENOMEM;
    int *index = (int *)(entries + mrh_nslots);
    for (int i = 0; i < mrh_nslots; i++) {
        if (!mrh_original_of(i)) continue;   /* nothing defines it: nothing can be bound to it */
        entries[i] = dlsym(self, mrh_slots[i].name);   /* from this library: its own definition */
        if (!entries[i]) continue;
        unsigned j = hash_name(mrh_slots[i].name) & (size - 1);
        while (index[j]) j = (j + 1) & (size - 1);
        index[j] = i + 1;
    }
    by_name_size = size;
    by_name = index;
    int fork_slot = slot_named("fork");
    fork_for_vfork = (pid_t (*)(void))(fork_slot >= 0 ? entries[fork_slot] : mrh_lookup_next("fork"));
    vfork_original = fork_for_vfork ? mrh_lookup_next("vfork") : NULL;
    return 0;
}

/* What a vfork slot holds while attached (see the hazards). */
static pid_t vfork_as_fork(void)
{
    return fork_for_vfork();
}

/* The read-only page made writable for the slots being written (a pass closes it at its end). */
static void *open_page;

static void close_page(void)
{
    if (open_page) mprotect(open_page, 4096, PROT_READ);
    open_page = NULL;
}

/* Writes a slot with one aligned 8-byte store (see the hazards): a read-only page is made writable around it,
 * or, when mrhooker can't tell that its object is loaded (no _dl_find_object), written through /proc/self/mem. */
static int write_slot(void **slot, void *value, int readonly)
{
    if (!readonly) {
        __atomic_store_n(slot, value, __ATOMIC_RELEASE);
        return 0;
    }
    if (!find_object)
        return mem_fd >= 0 && pwrite(mem_fd, &value, sizeof value, (off_t)(uintptr_t)slot) == (ssize_t)sizeof value
                   ? 0 : -1;
    void *page = (void *)((uintptr_t)slot & ~(uintptr_t)4095);
    if (page != open_page) {   /* slots come in address order: one mprotect pair per page, not per slot */
        close_page();
        if (mprotect(page, 4096, PROT_READ | PROT_WRITE) != 0) return -1;
        open_page = page;
    }
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    return 0;
}

/* Is the object loaded and relocated (see the hazards)? Without _dl_find_object: assumed. */
static int object_ready(const struct object *o)
{
    unsigned char result[256];   /* struct dl_find_object, with room for fields a later glibc adds */
    return !find_object || find_object((void *)o->dynamic, result) == 0;
}

static int same_object(const struct object *a, const struct object *b)
{
    return a->base == b->base && a->dynamic == b->dynamic;
}

/* The object's link map if it is in the program's namespace (the base one: never the hook side's), from the
 * loader's list; else NULL. */
static struct link_map *in_program_namespace(const struct object *o)
{
    for (struct link_map *m = _r_debug.r_map; m; m = m->l_next)
        if (m->l_addr == o->base && m->l_ld == o->dynamic) return m;
    return NULL;
}

struct dynamic_info {
    const ElfW(Sym) *symtab;
    const char *strtab;
    const ElfW(Rela) *jmprel, *rela;
    size_t njmprel, nrela;
};

static void read_dynamic(const struct object *o, struct dynamic_info *d)
{
    memset(d, 0, sizeof *d);
    size_t relaent = sizeof(ElfW(Rela));
    for (const ElfW(Dyn) *e = o->dynamic; e->d_tag != DT_NULL; e++) {
        ElfW(Addr) p = e->d_un.d_ptr;
        if (p < o->base) p += o->base;   /* as in resolve.c: most entries are relocated in place */
        switch (e->d_tag) {
        case DT_SYMTAB: d->symtab = (const ElfW(Sym) *)p; break;
        case DT_STRTAB: d->strtab = (const char *)p; break;
        case DT_JMPREL: d->jmprel = (const ElfW(Rela) *)p; break;
        case DT_PLTRELSZ: d->njmprel = e->d_un.d_val; break;
        case DT_RELA: d->rela = (const ElfW(Rela) *)p; break;
        case DT_RELASZ: d->nrela = e->d_un.d_val; break;
        case DT_RELAENT: relaent = e->d_un.d_val ? e->d_un.d_val : relaent; break;
        }
    }
    d->njmprel /= sizeof(ElfW(Rela));
    d->nrela /= relaent;
}

static void add_patch(void **slot, void *entry, const struct object *o, ElfW(Addr) ro_lo, ElfW(Addr) ro_hi)
{
    void *old = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (old == entry) return;
    if (npatches == patches_cap && grow(&patches, &patches_cap, sizeof *patches) != 0) return;   /* unpatched */
    int readonly = (ElfW(Addr))slot >= ro_lo && (ElfW(Addr))slot < ro_hi;
    if (write_slot(slot, entry, readonly) != 0) return;
    patches[npatches] = (struct patch){slot, old, entry, *o, readonly};
    __atomic_store_n(&npatches, npatches + 1, __ATOMIC_RELEASE);   /* counted once whole (a fork child's view) */
}

/* Patches one object's slots of hooked functions. */
static void patch_object(const struct object *o, const struct dynamic_info *dyn, const struct dl_phdr_info *info)
{
    struct dynamic_info d = *dyn;
    if (!d.symtab || !d.strtab) return;
    /* the pages the loader made read-only: RELRO's, whole pages only (as its _dl_protect_relro rounds) */
    ElfW(Addr) ro_lo = 0, ro_hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
            ElfW(Addr) start = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            ro_lo = start & ~(ElfW(Addr))4095;
            ro_hi = (start + info->dlpi_phdr[i].p_memsz) & ~(ElfW(Addr))4095;
        }
    for (int pass = 0; pass < 2; pass++) {
        const ElfW(Rela) *r = pass ? d.rela : d.jmprel;
        size_t n = pass ? d.nrela : d.njmprel;
        for (size_t i = 0; r && i < n; i++) {
            unsigned type = ELF64_R_TYPE(r[i].r_info), sym = ELF64_R_SYM(r[i].r_info);
            if (!sym || !(type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT ||
                          (type == R_X86_64_64 && r[i].r_addend == 0)))
                continue;
            const char *name = d.strtab + d.symtab[sym].st_name;
            int index = slot_named(name);
            void *entry, *function;
            if (index >= 0) {
                entry = entries[index];
                function = mrh_original_of(index);
            } else if (vfork_original && mrh_same_string(name, "vfork")) {
                entry = (void *)vfork_as_fork;
                function = vfork_original;
            } else {
                continue;
            }
            void **slot = (void **)(o->base + r[i].r_offset);
            /* A call slot is ours whatever it holds (the function, or its PLT stub before the first call); a
             * pointer only if it still points to the function (the program may have changed the variable). */
            if (type != R_X86_64_JUMP_SLOT && __atomic_load_n(slot, __ATOMIC_ACQUIRE) != function) continue;
            add_patch(slot, entry, o, ro_lo, ro_hi);
        }
    }
}

/* ---- passes ---------------------------------------------------------------------------------------------- */

enum { PASS_PATCH, PASS_RESTORE, PASS_RESTORE_ALONE };

/* Forgets what belongs to objects gone (dlclose): their memory is not theirs any more. */
static void drop_objects_gone(void)
{
    size_t kept = 0;
    for (size_t i = 0; i < npatches; i++)
        if (in_program_namespace(&patches[i].object)) patches[kept++] = patches[i];
    npatches = kept;
    kept = 0;
    for (size_t i = 0; i < nobjects; i++)
        if (in_program_namespace(&objects[i])) objects[kept++] = objects[i];
    nobjects = kept;
}

/* Puts back every slot that still holds its entry point, and forgets them all. In a pass (the loader's list
 * lock held, objects gone dropped already), or in a fork child, alone, with objects gone skipped here. */
static void restore_slots(void)
{
    for (size_t i = 0; i < npatches; i++) {
        struct patch *q = &patches[i];
        if (__atomic_load_n(q->slot, __ATOMIC_ACQUIRE) == q->entry) write_slot(q->slot, q->old, q->readonly);
    }
    npatches = 0;
    nobjects = 0;
    seen_adds = seen_subs = ~0ULL;
}

struct pass { int what; int first; int changed; };

static int pass_over(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct pass *p = arg;
    (void)size;
    if (p->first) {   /* once per pass: has the list changed since the last one? */
        p->first = 0;
        p->changed = info->dlpi_adds != seen_adds || info->dlpi_subs != seen_subs;
        if (p->changed) drop_objects_gone();
        seen_adds = info->dlpi_adds;
        seen_subs = info->dlpi_subs;
        if (p->what == PASS_RESTORE) {
            restore_slots();
            return 1;
        }
        for (size_t i = 0; i < npatches; i++) {
            struct patch *q = &patches[i];
            void *now = __atomic_load_n(q->slot, __ATOMIC_ACQUIRE);
            if (now != q->entry && now != q->old) {   /* bound by the loader meanwhile (see the top) */
                q->old = now;
                write_slot(q->slot, q->entry, q->readonly);
            }
        }
        if (!p->changed) return 1;
    }
    const ElfW(Dyn) *dynamic = mrh_dynamic_of(info);
    struct object o = {info->dlpi_addr, dynamic};
    if (!dynamic || o.base == self_base || mrh_in_loader(dynamic)) return 0;
    struct link_map *map = in_program_namespace(&o);
    /* not the hook side's objects, nor another trace's runtime (an earlier attach's, inert) */
    if (!map || mrh_find_in_object(map, "mrhooker_attach")) return 0;
    for (size_t i = 0; i < nobjects; i++)
        if (same_object(&objects[i], &o)) return 0;
    struct dynamic_info d;
    read_dynamic(&o, &d);
    if ((d.jmprel || d.rela) && !object_ready(&o)) {   /* being loaded: the next pass patches it */
        seen_adds = ~0ULL;
        return 0;
    }
    if (nobjects == objects_cap && grow(&objects, &objects_cap, sizeof *objects) != 0) return 1;
    objects[nobjects++] = o;
    patch_object(&o, &d, info);
    return 0;
}

/* PASS_PATCH, PASS_RESTORE: inside dl_iterate_phdr; PASS_RESTORE_ALONE: in a fork child, without it (see the
 * hazards: the loader's list is read unlocked, this being the only thread). */
static void run_pass(int what)   /* with patch_lock held and depth raised */
{
    if (!find_object) mem_fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (what == PASS_RESTORE_ALONE) {
        drop_objects_gone();
        restore_slots();
    } else {
        struct pass p = {what, 1, 0};
        dl_iterate_phdr(pass_over, &p);
    }
    close_page();
    if (mem_fd >= 0) close(mem_fd);
    mem_fd = -1;
}

/* ---- the connection to mrhooker and the watcher -------------------------------------------------------- */

/* attached is 1 from a successful mrhooker_attach until the detach; moved with patch_lock held. */
static int attached;
static int link_fd = -1;            /* the connection: the watcher's (in its own table, if link_private) */
static int link_private;            /* the watcher holds it in a descriptor table of its own */
static sem_t watcher_started;        /* posted by a new watcher once link_private is known */
static dev_t link_dev;
static ino_t link_ino;
static int fork_handlers_set;   /* this library's fork handlers are registered (mrhooker_attach) */

/* Is link_fd still our connection, and still open at mrhooker's end? 1: yes; 0: closed by mrhooker (or it
 * sent something: only detach is ever asked for); -1: not ours any more. */
static int link_state(void)
{
    struct stat st;
    if (fstat(link_fd, &st) != 0 || st.st_dev != link_dev || st.st_ino != link_ino) return -1;
    char c;
    ssize_t n = recv(link_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 1;
    return 0;
}

/* Puts everything back and turns the runtime off: what a detach does (with patch_lock held, depth raised).
 * pass: PASS_RESTORE, or PASS_RESTORE_ALONE in a fork child. */
static void unhook(int pass)
{
    mrh_patch_restore();
    run_pass(pass);
    if (mrh_trace_switch) mrh_trace_switch(0);
    mrh_attach_state(0);
    attached = 0;
}

static void detach_here(int ours)   /* with depth raised; ours: link_fd is still our connection */
{
    pthread_mutex_lock(&patch_lock);
    if (attached) unhook(PASS_RESTORE);
    pthread_mutex_unlock(&patch_lock);
    if (ours) {
        static const char done[] = "detached\n";
        send(link_fd, done, sizeof done - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(link_fd);
    }
    link_fd = -1;
}

/* The watcher's own descriptor table, with the connection alone in it (see the hazards). 1: done. */
static int take_own_table(void)
{
    /* Not with hooks: the hook output's descriptor, in the program's table, must be let go of at the detach
     * (preload.c, mrh_attach_state), and Python hooks cost microseconds, not the 50 ns at stake. */
    if (mrh_config.hooks || unshare(CLONE_FILES) != 0) return 0;
    /* the copy holds every descriptor of the program's: none may be kept open by us (a pipe's end of file) */
    int fd = link_fd;
    if ((fd > 0 && syscall(SYS_close_range, 0, fd - 1, 0) != 0) || syscall(SYS_close_range, fd + 1, ~0U, 0) != 0) {
        struct rlimit lim;
        long top = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < (1u << 20) ? (long)lim.rlim_cur : 1 << 20;
        for (long i = 0; i < top; i++)
            if (i != fd) close((int)i);
    }
    return 1;
}

static void *watch(void *arg)
{
    (void)arg;
    mrh_tls.depth = 1;   /* this thread's calls are the runtime's, never the program's */
    link_private = take_own_table();
    sem_post(&watcher_started);
    int state;
    for (;;) {
        struct pollfd p = {link_fd, POLLIN, 0};
        poll(&p, 1, 50);
        if ((state = link_state()) != 1) break;
        pthread_mutex_lock(&patch_lock);
        if (attached) run_pass(PASS_PATCH);
        pthread_mutex_unlock(&patch_lock);
    }
    detach_here(state == 0);
    return NULL;
}

static int start_watcher(void)
{
    int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
        (__typeof__(create))mrh_lookup_next("pthread_create");
    if (!create) return -ENOSYS;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the program's signals go to its own threads */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_t thread;
    sem_init(&watcher_started, 0, 0);
    int rc = create(&thread, &attr, watch, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) return -rc;
    pthread_setname_np(thread, "mrhooker");
    while (sem_wait(&watcher_started) != 0 && errno == EINTR) {
    }
    if (link_private) close(link_fd);   /* the watcher has its own: the program's table lets go of it */
    return 0;
}

static int connect_link(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!path || mrh_length(path) >= sizeof addr.sun_path) return -EINVAL;
    mrh_copy(addr.sun_path, path, mrh_length(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* out of the way of the program's own numbers (a program that dup2()s onto low numbers, or counts them) */
    struct rlimit lim;
    int low = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur > 128 && lim.rlim_cur < (1u << 20)
                  ? (int)lim.rlim_cur - 64 : 3;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, low);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    struct stat st;
    fstat(fd, &st);
    link_dev = st.st_dev;
    link_ino = st.st_ino;
    return fd;
}

/* ---- fork ------------------------------------------------------------------------------------------------
 * A fork waits for any pass in progress and holds patch_lock across it (see the hazards). fork_holder: the
 * thread (its thread pointer: no call) whose attach_fork_prepare holds it, else NULL; a parent or child handler
 * run without this library's prepare (registered during that fork) lets go of nothing. The prepare counts in
 * mrh_forking too: an attach arriving on that thread now would wait for patch_lock, held by itself.
 * Hazard: whoever holds patch_lock may be waiting for a loader lock that the forking thread holds (a fork from
 * a constructor that dlopen runs, or from a dl_iterate_phdr callback), or be the forking thread itself (a
 * constructor run by a lookup's dlopen during an attach). Idea: the fork waits FORK_WAIT_MS at most, then goes
 * on without the lock; the child's restore reads the list without it anyway, and every change to the list
 * leaves it readable at each store (grow, add_patch). */
enum { FORK_WAIT_MS = 200 };   /* a pass takes microseconds, milliseconds when many objects are new */
static void *fork_holder;

static void attach_fork_prepare(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    mrh_forking++;
    struct timespec until = mrh_monotonic_after_ms(FORK_WAIT_MS);
    if (pthread_mutex_clocklock(&patch_lock, CLOCK_MONOTONIC, &until) == 0)
        __atomic_store_n(&fork_holder, __builtin_thread_pointer(), __ATOMIC_RELAXED);
    else
        mrh_forking--;
    t->depth--;
}

/* Did this thread's attach_fork_prepare take patch_lock? Then the mark and the count are let go of. */
static int fork_held_here(void)
{
    if (__atomic_load_n(&fork_holder, __ATOMIC_RELAXED) != __builtin_thread_pointer()) return 0;
    __atomic_store_n(&fork_holder, NULL, __ATOMIC_RELAXED);
    mrh_forking--;
    return 1;
}

static void attach_fork_parent(void)
{
    if (fork_held_here()) pthread_mutex_unlock(&patch_lock);
}

static void attach_fork_child(void)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    fork_held_here();
    pthread_mutex_init(&patch_lock, NULL);
    if (attached) {
        if (!link_private) close(link_fd);   /* the parent's, inherited: it is not the child's to hold */
        link_fd = mrh_config.follow ? connect_link(mrh_config.attach) : -1;
        if (link_fd < 0 || start_watcher() != 0) {   /* without -f, or mrhooker gone: the child runs unhooked */
            if (link_fd >= 0) close(link_fd);
            link_fd = -1;
            pthread_mutex_lock(&patch_lock);
            unhook(PASS_RESTORE_ALONE);
            pthread_mutex_unlock(&patch_lock);
        }
    }
    t->depth--;
}

/* Is another mrhooker runtime (another build's: an attach of other functions) attached in this process now?
 * Two would take the slots from each other and leave them to the last one's inert entry points. */
static int check_other(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    const ElfW(Dyn) *dynamic = mrh_dynamic_of(info);
    struct object o = {info->dlpi_addr, dynamic};
    struct link_map *map = dynamic && o.base != self_base ? in_program_namespace(&o) : NULL;
    long (*slots)(void) = map ? (long (*)(void))mrh_find_in_object(map, "mrhooker_attached_slots") : NULL;
    if (slots && slots() >= 0) *(int *)arg = 1;
    return 0;
}

static int other_attached(void)
{
    int found = 0;
    dl_iterate_phdr(check_other, &found);
    return found;
}

/* Called by attach.py, in the thread that loaded this library. Returns 0, or -errno: -EBUSY when another
 * mrhooker is attached with this same build; -EAGAIN when this thread was stopped inside a fork, between the
 * fork handlers of a build loaded before (attached.py tries again a little later): this library's start_lock or
 * patch_lock may be held by this very thread (a build attached again: the call would wait for itself), and a child born
 * now would inherit the patched slots without this library's fork handler to put them back (glibc runs no
 * handler registered during the fork). The same in *result (attach.py's call returns through rt_sigreturn,
 * which loses the return value: see its notes). */
MRH_EXPORT int mrhooker_attach(const char *settings, long long *result)
{
    mrh_thread *t = &mrh_tls;
    t->depth++;
    int saved = errno, rc = 0;
    if (mrh_forking) {
        if (result) *result = -EAGAIN;
        errno = saved;
        t->depth--;
        return -EAGAIN;
    }
    /* before patch_lock, which the prepare handler takes: once per library, whichever attach comes first */
    int unset = 0;
    if (__atomic_compare_exchange_n(&fork_handlers_set, &unset, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
        mrh_atfork(attach_fork_prepare, attach_fork_parent, attach_fork_child) != 0)
        __atomic_store_n(&fork_handlers_set, 0, __ATOMIC_RELEASE);
    pthread_mutex_lock(&patch_lock);
    if (attached) rc = -EBUSY;
    if (!rc) rc = index_slots();
    if (!rc && other_attached()) rc = -EALREADY;
    if (!rc) {
        mrh_attach_settings(settings);
        rc = connect_link(mrh_config.attach);
    }
    if (rc >= 0) {
        link_fd = rc;
        rc = 0;
        /* at their entry: made ready here (their originals known before the report of names missing), the jmps
         * written by attach.py next (mrhooker_entry_writes) */
        mrh_patch_entries(mrh_setting_in(settings, "MRHOOKER_ENTRY"), 1);
        if (mrh_trace_switch) mrh_trace_switch(1);
        mrh_attach_state(1);
        attached = 1;
        run_pass(PASS_PATCH);
        rc = start_watcher();
        if (rc) {
            unhook(PASS_RESTORE);
            close(link_fd);
            link_fd = -1;
        }
    }
    pthread_mutex_unlock(&patch_lock);
    if (result) *result = rc;
    errno = saved;
    t->depth--;
    return rc;
}

/* How many slots are patched now (tests, and mrhooker's "attached" line). */
MRH_EXPORT long mrhooker_attached_slots(void) { return attached ? (long)npatches : -1; }

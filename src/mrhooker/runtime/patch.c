/* patch.c (target side): hooks at a function's own entry (`mrhooker trace --entry`, `@hook(..., at="entry")`).
 *
 * Through the PLT, a hook sees only the calls that cross from one object into another. A function patched at its
 * entry sends every call to its entry point: printf's own write, fopen's open, the program's own compute().
 *
 * Hazards, and the idea for each:
 * - Decoding x86 and relocating instructions is a job for a real decoder, and the runtime stays small.
 *   Idea: mrhooker plans each patch outside the process from the file on disk (prologue.py, with Capstone) and
 *   hands in, per function, the bytes it must find, the moved instructions and the places in them that depend on
 *   where they run (fixups). Here we only check and copy.
 * - The file on disk may not be what is loaded (an upgraded library, another program after an exec).
 *   Idea: the function's bytes in memory must equal the planned ones, else no patch (the PLT still hooks it).
 * - A 5-byte `jmp rel32` reaches only ±2 GB, and the entry point is in another object, often farther.
 *   Idea: a stub (`jmp *0(%rip)` and the entry's address) and the trampoline go in an arena mapped within reach
 *   of the function; the trampoline holds the moved instructions and jumps back after them.
 * - A thread running the prologue while it is rewritten would run half of each.
 *   Idea: patches are applied at load (preload_init), before the program's main and usually before any thread
 *   of its own; the jmp is written with one atomic store when it fits in an aligned 8 or 16 bytes.
 * - A caller may keep values in registers the ABI lets a call clobber: GCC's -fipa-ra (on at -O2) knows which
 *   registers a function of the same file really changes (a static one, a program's own) and keeps the rest
 *   live across the call. An entry point, or a hook, changes others: the caller would loop or compute wrong.
 *   Idea: the stub goes through mrh_entry_thunk, which saves every call-clobbered register (general and SSE),
 *   calls the entry point with the caller's arguments (its stack arguments copied), and puts back all but
 *   the registers the function's result is in (mrh_slot.results).
 * - Hooks and the runtime call the patched functions too.
 *   Idea: the trampoline becomes the slot's original before the jmp is written, and the entry point sends calls
 *   made at depth > 0 to it (entry.h), as it does for PLT calls. The hook side's own libc (namespace.c) is
 *   another copy, never patched.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The spec (MRHOOKER_ENTRY, written by entries.py): patches separated by ';', each of 8 fields separated by ' ':
 *   SYMBOL OBJECT ADDRESS PATCH_AT MOVED EXPECT CODE FIXUPS
 * OBJECT: the file's base name; ADDRESS: the function's address in the file (hex); PATCH_AT, MOVED: decimal;
 * EXPECT, CODE: hex bytes; FIXUPS: "-" or FIELD:END:TARGET[,...] (hex): the int32 at CODE+FIELD becomes
 * (load base + TARGET) - (trampoline + END). */
#define MAX_BYTES 64

typedef struct patch {
    const char *symbol, *object;
    size_t symbol_n, object_n;
    uintptr_t address;
    unsigned patch_at, moved;
    unsigned char expect[MAX_BYTES], code[MAX_BYTES];
    unsigned nexpect, ncode;
    const char *fixups;   /* the field, as written */
} patch;

/* ---- reading the spec --------------------------------------------------------------------------------- */

static const char *field(const char **p, size_t *n)   /* the next space-separated field; *p moves past it */
{
    const char *start = *p;
    while (**p && **p != ' ' && **p != ';') (*p)++;
    *n = (size_t)(*p - start);
    if (**p == ' ') (*p)++;
    return start;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                                                         : -1;
}

static int read_number(const char *s, size_t n, int base, uintptr_t *out)
{
    uintptr_t v = 0;
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        int d = hex_digit(s[i]);
        if (d < 0 || d >= base) return 0;
        v = v * (uintptr_t)base + (uintptr_t)d;
    }
    *out = v;
    return 1;
}

static int read_bytes(const char *s, size_t n, unsigned char *out, unsigned *count)
{
    if (n % 2 || n / 2 > MAX_BYTES) return 0;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *count = (unsigned)(n / 2);
    return 1;
}

static int read_patch(const char **p, patch *out)
{
    size_t n;
    uintptr_t v;
    const char *s;
    out->symbol = field(p, &out->symbol_n);
    out->object = field(p, &out->object_n);
    s = field(p, &n);
    if (!read_number(s, n, 16, &out->address)) return 0;
    s = field(p, &n);
    if (!read_number(s, n, 10, &v) || v > 16) return 0;
    out->patch_at = (unsigned)v;
    s = field(p, &n);
    if (!read_number(s, n, 10, &v) || v < 5 || v > MAX_BYTES) return 0;
    out->moved = (unsigned)v;
    s = field(p, &n);
    if (!read_bytes(s, n, out->expect, &out->nexpect) || out->nexpect != out->patch_at + out->moved) return 0;
    s = field(p, &n);
    if (!read_bytes(s, n, out->code, &out->ncode)) return 0;
    out->fixups = field(p, &n);
    if (**p == ';') (*p)++;
    return out->symbol_n > 0 && out->object_n > 0;
}

/* ---- where the function is ---------------------------------------------------------------------------- */

static const char *base_name(const char *path)
{
    const char *base = path;
    for (const char *c = path; *c; c++)
        if (*c == '/') base = c + 1;
    return base;
}

static int same_name(const char *a, const char *b, size_t b_n)
{
    size_t i = 0;
    for (; i < b_n && a[i] == b[i]; i++) {}
    return i == b_n && a[i] == '\0';
}

/* The load base of the object whose file has this base name (the program: /proc/self/exe's), or 0 and *found 0. */
static uintptr_t object_base(const patch *p, int *found)
{
    static char exe[4096];
    if (!exe[0]) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
    }
    for (struct link_map *m = _r_debug.r_map; m; m = m->l_next) {
        const char *name = m->l_name && m->l_name[0] ? m->l_name : m == _r_debug.r_map ? exe : "";
        if (same_name(base_name(name), p->object, p->object_n)) {
            *found = 1;
            return m->l_addr;
        }
    }
    *found = 0;
    return 0;
}

/* ---- the arenas: stubs and trampolines within a jmp rel32's reach of their functions --------------------- */

#define ARENA_SIZE (64 * 1024)
#define REACH ((intptr_t)0x7fff0000)

static struct arena {
    unsigned char *base;
    size_t used;
} arenas[16];   /* written only by preload_init's thread, at load */
static int narenas;

static int within(uintptr_t a, uintptr_t b) { return (intptr_t)(a - b) < REACH && (intptr_t)(b - a) < REACH; }

static unsigned char *near_space(uintptr_t near, size_t n)
{
    for (int i = 0; i < narenas; i++) {
        struct arena *a = &arenas[i];
        if (a->used + n <= ARENA_SIZE && within((uintptr_t)a->base, near) &&
            within((uintptr_t)a->base + ARENA_SIZE, near)) {
            a->used += n;
            return a->base + a->used - n;
        }
    }
    if (narenas == (int)(sizeof arenas / sizeof arenas[0])) return NULL;
    /* The nearest free 64 kB, looking outward from the function in 1 MB steps. */
    uintptr_t start = near & ~(uintptr_t)0xffff;
    for (uintptr_t step = 1; step < 2000; step++)
        for (int sign = -1; sign <= 1; sign += 2) {
            uintptr_t hint = start + (uintptr_t)(sign * (intptr_t)(step << 20));
            if (hint < 0x10000 || !within(hint, near)) continue;
            void *m = mmap((void *)hint, ARENA_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if (m == MAP_FAILED) continue;
            if ((uintptr_t)m != hint) {   /* a kernel older than 4.17 takes it as a hint only */
                munmap(m, ARENA_SIZE);
                continue;
            }
            arenas[narenas].base = m;
            arenas[narenas].used = n;
            narenas++;
            return m;
        }
    return NULL;
}

/* x86-64: jmp *0(%rip) followed by the absolute target */
static unsigned char *put_jump(unsigned char *at, uintptr_t to)
{
    static const unsigned char jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
    memcpy(at, jmp, sizeof jmp);
    memcpy(at + sizeof jmp, &to, sizeof to);
    return at + sizeof jmp + sizeof to;
}

/* The stub: the block's address in the stack slot below the return address (no register changed), then
 * mrh_entry_thunk:  lea -8(%rsp),%rsp; push %rax; movabs $block,%rax; mov %rax,8(%rsp); pop %rax; jmp *thunk */
void mrh_entry_thunk(void);
static void make_stub(unsigned char *at, const void *block)
{
    static const unsigned char head[] = {0x48, 0x8d, 0x64, 0x24, 0xf8, 0x50, 0x48, 0xb8};
    static const unsigned char tail[] = {0x48, 0x89, 0x44, 0x24, 0x08, 0x58};
    memcpy(at, head, sizeof head);
    memcpy(at + sizeof head, &block, 8);
    memcpy(at + sizeof head + 8, tail, sizeof tail);
    put_jump(at + sizeof head + 8 + sizeof tail, (uintptr_t)&mrh_entry_thunk);
}

/* mrh_entry_thunk: (%rsp) the block (its entry point, results mask and stack words), 8(%rsp) the caller's return
 * address, 16(%rsp) on its stack arguments. Frame: -8..-72(%rbp) rdi rsi rdx rcx r8 r9 r10 r11 rax; -328(%rbp)
 * xmm0..xmm15; (%rsp) up to 16 eightbytes of the caller's stack arguments, copied for the entry point. The result registers (results: 1 rax, 2 rdx, 4 xmm0, 8 xmm1) are the
 * entry point's; the others are put back as they were. The caller's return address goes to mrh_entry_caller, where
 * the entry point finds its call's site (mrh_call_site). x87 is not touched (the ABI keeps its stack empty at a
 * call; a long double result comes back in st0 as it should). */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl mrh_entry_thunk\n"
        ".hidden mrh_entry_thunk\n"
        ".type mrh_entry_thunk, @function\n"
        "mrh_entry_thunk:\n"
        ".cfi_startproc\n"
        ".cfi_def_cfa_offset 16\n"
        "push %rbp\n"
        ".cfi_def_cfa_offset 24\n"
        ".cfi_offset %rbp, -24\n"
        "mov %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "sub $472, %rsp\n"
        "mov %rdi, -8(%rbp)\n mov %rsi, -16(%rbp)\n mov %rdx, -24(%rbp)\n mov %rcx, -32(%rbp)\n"
        "mov %r8, -40(%rbp)\n mov %r9, -48(%rbp)\n mov %r10, -56(%rbp)\n mov %r11, -64(%rbp)\n mov %rax, -72(%rbp)\n"
        "movups %xmm0, -328(%rbp)\n movups %xmm1, -312(%rbp)\n movups %xmm2, -296(%rbp)\n movups %xmm3, -280(%rbp)\n"
        "movups %xmm4, -264(%rbp)\n movups %xmm5, -248(%rbp)\n movups %xmm6, -232(%rbp)\n movups %xmm7, -216(%rbp)\n"
        "movups %xmm8, -200(%rbp)\n movups %xmm9, -184(%rbp)\n movups %xmm10, -168(%rbp)\n movups %xmm11, -152(%rbp)\n"
        "movups %xmm12, -136(%rbp)\n movups %xmm13, -120(%rbp)\n movups %xmm14, -104(%rbp)\n movups %xmm15, -88(%rbp)\n"
        "mov 8(%rbp), %r11\n mov 16(%r11), %rcx\n"   /* the stack arguments, where the entry point looks */
        "test %rcx, %rcx\n jz 6f\n lea 24(%rbp), %rsi\n mov %rsp, %rdi\n rep movsq\n6:\n"
        "mov mrh_entry_caller@gottpoff(%rip), %rax\n mov 16(%rbp), %r11\n mov %r11, %fs:(%rax)\n"   /* its site */
        "mov -8(%rbp), %rdi\n mov -16(%rbp), %rsi\n mov -32(%rbp), %rcx\n mov -64(%rbp), %r11\n"
        "mov -72(%rbp), %rax\n"   /* a variadic call's count of vector registers */
        "mov 8(%rbp), %r11\n"
        "call *(%r11)\n"
        ".globl mrh_entry_thunk_return\n .hidden mrh_entry_thunk_return\n"
        "mrh_entry_thunk_return:\n"
        "mov 8(%rbp), %r11\n"
        "mov 8(%r11), %r11\n"
        "test $1, %r11d\n jnz 1f\n mov -72(%rbp), %rax\n1:\n"
        "test $2, %r11d\n jnz 2f\n mov -24(%rbp), %rdx\n2:\n"
        "test $4, %r11d\n jnz 3f\n movups -328(%rbp), %xmm0\n3:\n"
        "test $8, %r11d\n jnz 4f\n movups -312(%rbp), %xmm1\n4:\n"
        "mov -8(%rbp), %rdi\n mov -16(%rbp), %rsi\n mov -32(%rbp), %rcx\n mov -40(%rbp), %r8\n"
        "mov -48(%rbp), %r9\n mov -56(%rbp), %r10\n mov -64(%rbp), %r11\n"
        "movups -296(%rbp), %xmm2\n movups -280(%rbp), %xmm3\n movups -264(%rbp), %xmm4\n movups -248(%rbp), %xmm5\n"
        "movups -232(%rbp), %xmm6\n movups -216(%rbp), %xmm7\n movups -200(%rbp), %xmm8\n movups -184(%rbp), %xmm9\n"
        "movups -168(%rbp), %xmm10\n movups -152(%rbp), %xmm11\n movups -136(%rbp), %xmm12\n"
        "movups -120(%rbp), %xmm13\n movups -104(%rbp), %xmm14\n movups -88(%rbp), %xmm15\n"
        "leave\n"
        ".cfi_def_cfa %rsp, 16\n"
        "lea 8(%rsp), %rsp\n"
        ".cfi_def_cfa_offset 8\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size mrh_entry_thunk, .-mrh_entry_thunk\n");

/* The moved code, relocated for where it runs now; 0 when a fixup does not reach (or does not parse). */
static int relocate(const patch *p, unsigned char *code, uintptr_t base)
{
    const char *f = p->fixups;
    if (*f == '-') return 1;
    while (*f && *f != ' ' && *f != ';') {
        uintptr_t v[3];
        for (int k = 0; k < 3; k++) {
            const char *s = f;
            while (*f && *f != ':' && *f != ',' && *f != ' ' && *f != ';') f++;
            if (!read_number(s, (size_t)(f - s), 16, &v[k])) return 0;
            if (k < 2 && *f++ != ':') return 0;
        }
        if (*f == ',') f++;
        if (v[0] + 4 > p->ncode || v[1] > p->ncode) return 0;
        intptr_t rel = (intptr_t)(base + v[2]) - (intptr_t)((uintptr_t)code + v[1]);
        if (rel >= REACH || rel <= -REACH) return 0;
        int32_t rel32 = (int32_t)rel;
        memcpy(code + v[0], &rel32, 4);
    }
    return 1;
}

/* ---- writing the jmp ---------------------------------------------------------------------------------- */

/* The 5 bytes at `at`, in one store when they fit in an aligned 8 or 16 bytes (a thread that runs the function
 * meanwhile sees the old bytes or the new, never half of each); else copied (at load, no other thread yet). */
static void store_5(unsigned char *at, const unsigned char *bytes)
{
    uintptr_t a = (uintptr_t)at;
    if ((a & 7) <= 3) {
        uint64_t *word = (uint64_t *)(a & ~(uintptr_t)7), v = *word;
        memcpy((unsigned char *)&v + (a & 7), bytes, 5);
        __atomic_store_n(word, v, __ATOMIC_SEQ_CST);
    } else if ((a & 15) <= 11) {
        unsigned __int128 *word = (unsigned __int128 *)(a & ~(uintptr_t)15), old = *word, v = old;
        memcpy((unsigned char *)&v + (a & 15), bytes, 5);
        uint64_t lo = (uint64_t)v, hi = (uint64_t)(v >> 64), old_lo = (uint64_t)old, old_hi = (uint64_t)(old >> 64);
        __asm__ volatile("lock cmpxchg16b %0" : "+m"(*word), "+a"(old_lo), "+d"(old_hi) : "b"(lo), "c"(hi) : "memory");
    } else {
        memcpy(at, bytes, 5);
    }
}

/* Writes 5 bytes of the function's text: its pages made writable (and still executable: this or another thread
 * may be running code on them) around the store, else through /proc/self/mem. 0 on failure. */
static int write_text(unsigned char *at, const unsigned char *bytes)
{
    uintptr_t first = (uintptr_t)at & ~(uintptr_t)4095, last = ((uintptr_t)at + 4) & ~(uintptr_t)4095;
    size_t len = last - first + 4096;
    if (mprotect((void *)first, len, PROT_READ | PROT_WRITE | PROT_EXEC) == 0) {
        store_5(at, bytes);
        mprotect((void *)first, len, PROT_READ | PROT_EXEC);
        return 1;
    }
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (fd < 0) return 0;
    int ok = pwrite(fd, bytes, 5, (off_t)(uintptr_t)at) == 5;
    close(fd);
    return ok;
}

/* ---- applying them ------------------------------------------------------------------------------------ */

static int slot_of(const patch *p)
{
    for (int i = 0; i < mrh_nslots; i++)
        if (same_name(mrh_slots[i].name, p->symbol, p->symbol_n)) return i;
    return -1;
}

/* Our own entry point of the slot: the preload library's definition of its symbol. */
static void *entry_point(int slot)
{
    static struct link_map *self;
    if (!self) {
        Dl_info info;
        void *extra = NULL;
        if (!dladdr1((void *)&entry_point, &info, &extra, RTLD_DL_LINKMAP) || !extra) return NULL;
        self = extra;
    }
    return mrh_find_in_object(self, mrh_slots[slot].name);
}

/* A patch made ready: its stub and trampoline in an arena (which becomes read-only), its state here. Moved by
 * the thread that runs mrh_patch_entries or mrh_patch_restore (preload_init; attach.c with patch_lock held). */
#define MAX_BLOCKS 4096
#define STUB_SIZE 48   /* make_stub's 36 bytes, rounded */

static struct block {
    void *entry;              /* the thunk's descriptor: the entry point to call ... */
    long results;             /* ... the registers the result comes back in (mrh_slot.results) ... */
    long stack_words;         /* ... and the eightbytes of its stack arguments (mrh_slot.stack_words) */
    unsigned char *at;        /* where the jmp goes (the function + patch_at) */
    unsigned char *stub;      /* the stub; the trampoline follows it */
    int slot;
    int state;                /* below */
    unsigned moved;           /* bytes of whole instructions the jmp covers */
    unsigned char saved[5];   /* the function's 5 bytes at `at`, as they were */
    unsigned char jmp[5];     /* the jmp to the stub */
} blocks[MAX_BLOCKS];
static int nblocks;
enum { BLOCK_READY, BLOCK_APPLIED, BLOCK_DONE };   /* DONE: restored, or never to be applied */

/* attach.py's list of the jmps to write (mrhooker_entry_writes): the count, then each (address, the bytes the
 * jmp covers whole instructions of, its 5 bytes). Filled by mrhooker_attach's thread, read by attach.py after. */
static struct {
    int64_t count;
    struct {
        uint64_t at, moved;
        unsigned char bytes[8];
    } item[MAX_BLOCKS];
} writes;

static int attaching;   /* the current mrh_patch_entries is an attach's: its reasons are counted, not said (the
                         * program's stderr is not ours); mrhooker compares the writes listed with its plan */

static void not_hooked(const patch *p, const char *why)
{
    if (attaching) return;
    mrh_warn("%.*s: not hooked at its entry (%s): only calls through the PLT are", (int)p->symbol_n, p->symbol, why);
}

/* Pass 1: the stub and the trampoline of one patch written into an arena (still writable), or a "not hooked"
 * line saying why. A program's own function is skipped silently where the program is another (an exec'd one:
 * the spec was made for the program mrhooker started). */
static void prepare(const patch *p)
{
    int found, slot = slot_of(p);
    uintptr_t base = object_base(p, &found);
    if (!found || slot < 0 || nblocks == MAX_BLOCKS || mrh_slots[slot].stack_words > 16) return;
    unsigned char *fn = (unsigned char *)(base + p->address);
    void *entry = entry_point(slot);
    if (!entry) {
        not_hooked(p, "mrhooker has no entry point for it");
        return;
    }
    uintptr_t at = (uintptr_t)fn + p->patch_at;
    for (int k = 0; k < nblocks; k++)
        if (blocks[k].at == (unsigned char *)at && blocks[k].state == BLOCK_APPLIED && blocks[k].slot == slot) {
            blocks[k].state = BLOCK_READY;   /* an earlier attach's jmp, left in place (see restore): again */
            return;
        }
    if (memcmp(fn, p->expect, p->nexpect) != 0) {
        if (base != (uintptr_t)_r_debug.r_map->l_addr)
            not_hooked(p, "its code is not the one mrhooker read from the file");
        return;
    }
    size_t size = (STUB_SIZE + p->ncode + STUB_SIZE + 15) & ~(size_t)15;
    unsigned char *stub = near_space((uintptr_t)fn, size);
    if (!stub) {
        not_hooked(p, "no free memory within reach of it");
        return;
    }
    unsigned char *tramp = stub + STUB_SIZE;
    struct block *b = &blocks[nblocks];
    b->entry = entry;
    b->results = mrh_slots[slot].results;
    b->stack_words = mrh_slots[slot].stack_words;
    make_stub(stub, b);
    memcpy(tramp, p->code, p->ncode);
    if (!relocate(p, tramp, base)) {
        not_hooked(p, "its moved instructions don't reach from the trampoline");
        return;
    }
    put_jump(tramp + p->ncode, at + p->moved);
    nblocks++;
    b->at = (unsigned char *)at;
    b->stub = stub;
    b->slot = slot;
    b->state = BLOCK_READY;
    b->moved = p->moved;
    memcpy(b->saved, b->at, 5);
    b->jmp[0] = 0xe9;
    int32_t rel = (int32_t)((intptr_t)stub - (intptr_t)(at + 5));
    memcpy(b->jmp + 1, &rel, 4);
}

/* Pass 2, once the arenas are executable: the trampoline becomes the slot's original, then the jmp is written
 * (now, or listed for attach.py). */
static void apply(struct block *b, int now)
{
    __atomic_store_n(&mrh_slots[b->slot].original, (void *)(b->stub + STUB_SIZE), __ATOMIC_RELEASE);
    b->state = BLOCK_APPLIED;
    if (!now) {
        int64_t i = writes.count++;
        writes.item[i].at = (uintptr_t)b->at;
        writes.item[i].moved = b->moved;
        memcpy(writes.item[i].bytes, b->jmp, 5);
    } else if (!write_text(b->at, b->jmp)) {
        b->state = BLOCK_DONE;
        mrh_warn("%s: not hooked at its entry (its code can't be written): only calls through the PLT are",
                 mrh_slots[b->slot].name);
    }
}

/* The functions the spec names, hooked at their entry. attaching (mrhooker_attach): the jmps are not written
 * here but listed for attach.py (mrhooker_entry_writes), which writes them with every thread stopped and none
 * inside the bytes they change; the detach puts them back (mrh_patch_restore). */
void mrh_patch_entries(const char *spec, int for_attach)   /* preload_init or mrhooker_attach, depth raised */
{
    int first = nblocks;
    attaching = for_attach;
    writes.count = 0;
    if (!spec) return;
    for (const char *p = spec; *p;) {
        patch one;
        if (!read_patch(&p, &one)) {
            mrh_warn("MRHOOKER_ENTRY can't be read: no function is hooked at its entry");
            break;
        }
        prepare(&one);
    }
    for (int i = 0; i < narenas; i++) {
        arenas[i].used = ARENA_SIZE;   /* read-only from now on: a later attach takes new space */
        if (mprotect(arenas[i].base, ARENA_SIZE, PROT_READ | PROT_EXEC) != 0) {
            for (int k = first; k < nblocks; k++)
                if (blocks[k].stub >= arenas[i].base && blocks[k].stub < arenas[i].base + ARENA_SIZE)
                    blocks[k].state = BLOCK_DONE;   /* can't run from there: not applied */
        }
    }
    for (int k = 0; k < nblocks; k++)   /* the new ones, and an earlier attach's made READY again */
        if (blocks[k].state == BLOCK_READY) apply(&blocks[k], !attaching);
}

/* An attached process's detach (attach.c): every function's first bytes back where one store can do it while the
 * program runs (store_5); the others keep their jmp, inert: the entry point sends every call to the trampoline
 * while hooks are off, as it does calls in flight. (A function not aligned to 16 bytes: code built with -O0.) */
void mrh_patch_restore(void)
{
    for (int k = 0; k < nblocks; k++) {
        uintptr_t a = (uintptr_t)blocks[k].at;
        if (blocks[k].state == BLOCK_APPLIED && ((a & 7) <= 3 || (a & 15) <= 11)) {
            write_text(blocks[k].at, blocks[k].saved);
            blocks[k].state = BLOCK_DONE;
        }
    }
}

/* attach.py: the jmps to write with the process stopped, after mrhooker_attach. */
MRH_EXPORT const void *mrhooker_entry_writes(void) { return &writes; }

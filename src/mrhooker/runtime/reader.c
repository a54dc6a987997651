/* reader.c (mrhooker's side): the trace file, draining its ring, and the outputs (see reader.h for the hazards).
 *
 * mrhooker calls these through ctypes, one thread at a time (the drain loop; the functions that set the file up
 * run before the program starts). Nothing here runs in a traced process.
 */
#define _GNU_SOURCE
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern const mrh_decoders mrh_trace_decoders;   /* decoders.c, generated for the trace */

#define EXPORT __attribute__((visibility("default")))

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the file: its layout and header (the launcher's part, before the program starts) -------------------- */

/* Maps the trace file (open on fd, `size` bytes, zeroed); NULL if it can't. */
EXPORT void *mrh_trace_map(int fd, uint64_t size)
{
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

EXPORT void mrh_trace_unmap(void *map, uint64_t size) { munmap(map, (size_t)size); }

static uint64_t pages(uint64_t n) { return (n + 4095) / 4096 * 4096; }

static uint64_t inject_offset_of(uint64_t nfn) { return MRH_COUNTERS_OFFSET + pages(nfn * 24); }

/* nrules: the rule table's rows (a slot for each function and one for each further rule), 0: no injection. */
static uint64_t ring_offset_of(uint64_t nfn, uint64_t nrules)
{
    return inject_offset_of(nfn) + pages(nrules * sizeof(mrh_inject_rule));
}

/* The file's size for nfn functions, nrules rule rows and a ring of ring_size bytes (a power of two). */
EXPORT uint64_t mrh_trace_file_size(uint64_t nfn, uint64_t ring_size, uint64_t nrules)
{
    return ring_offset_of(nfn, nrules) + ring_size;
}

/* Fills the header of a new, zeroed file mapped at map. */
EXPORT void mrh_trace_init(void *map, uint64_t nfn, uint64_t ring_size, uint64_t nrules, int records, int counts,
                           uint64_t strsize, uint64_t seed)
{
    mrh_trace_header *h = map;
    h->magic = MRH_TRACE_MAGIC;
    h->version = MRH_TRACE_VERSION;
    h->ring_offset = ring_offset_of(nfn, nrules);
    h->ring_size = ring_size;
    h->nfn = nfn;
    h->records_on = (uint64_t)records;
    h->counts_on = (uint64_t)counts;
    h->strsize = strsize;
    if (nrules) {
        h->inject_offset = inject_offset_of(nfn);
        h->inject_seed = seed;
        h->inject_nrules = nfn;   /* the functions' own slots; mrh_trace_add_rule adds the rest */
    }
    h->heartbeat_ns = monotonic_ns();
}

/* Adds a rule to function fn's, after those it has (they decide in the order added): in fn's own slot if it is
 * its first, else in the next free row, chained from its last. */
EXPORT void mrh_trace_add_rule(void *map, uint64_t fn, int32_t error, int64_t retval, int fail, uint32_t probability,
                               uint64_t first, uint64_t last, uint64_t step, uint64_t delay_enter_ns,
                               uint64_t delay_exit_ns)
{
    mrh_trace_header *h = map;
    mrh_inject_rule *rules = (mrh_inject_rule *)((char *)map + h->inject_offset), *rule = &rules[fn];
    if (rule->armed) {
        while (rule->next) rule = &rules[rule->next];
        rule->next = (uint32_t)h->inject_nrules;
        rule = &rules[h->inject_nrules++];
    }
    rule->error = error;
    rule->retval = retval;
    rule->fail = (uint32_t)fail;
    rule->probability = probability;
    rule->first = first;
    rule->last = last;
    rule->step = step;
    rule->delay_enter_ns = delay_enter_ns;
    rule->delay_exit_ns = delay_exit_ns;
    rule->armed = 1;
}

/* The fake clock: it shows (fake_sec, fake_nsec) at CLOCK_REALTIME real_ns, running at rate_ppm millionths;
 * elapsed: the elapsed clocks (monotonic, boot time) run at that rate too, from now. */
EXPORT void mrh_trace_set_fake_time(void *map, int64_t real_ns, int64_t fake_sec, int64_t fake_nsec,
                                    uint64_t rate_ppm, int elapsed)
{
    mrh_trace_header *h = map;
    h->fake_anchor_real_ns = real_ns;
    h->fake_anchor_sec = fake_sec;
    h->fake_anchor_nsec = fake_nsec;
    h->fake_rate_ppm = rate_ppm;
    h->fake_elapsed = elapsed != 0;
    static const clockid_t elapsed_clocks[3] = {CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME};
    for (int i = 0; i < 3; i++) {
        struct timespec ts = {0, 0};
        clock_gettime(elapsed_clocks[i], &ts);
        h->fake_anchor_elapsed_ns[i] = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    h->fake_time_on = 1;
}

/* The reader is alive (writers that find the ring full wait for it only while this is recent), or gone (0). */
EXPORT void mrh_trace_beat(void *map, int alive)
{
    mrh_trace_header *h = map;
    __atomic_store_n(&h->heartbeat_ns, alive ? monotonic_ns() : 0, __ATOMIC_RELEASE);
}

EXPORT uint64_t mrh_trace_dropped(void *map)
{
    return __atomic_load_n(&((mrh_trace_header *)map)->dropped, __ATOMIC_ACQUIRE);
}

EXPORT uint64_t mrh_trace_abandoned(void *map)
{
    return __atomic_load_n(&((mrh_trace_header *)map)->abandoned, __ATOMIC_ACQUIRE);
}

EXPORT uint64_t mrh_trace_unmapped(void *map)
{
    return __atomic_load_n(&((mrh_trace_header *)map)->unmapped, __ATOMIC_ACQUIRE);
}

/* The writers' counters of function fn (-c): calls, errors, time in their clock's units. */
EXPORT void mrh_trace_counters(void *map, uint64_t fn, uint64_t *out)
{
    const uint64_t *c = (const uint64_t *)((char *)map + MRH_COUNTERS_OFFSET) + 3 * fn;
    for (int i = 0; i < 3; i++) out[i] = __atomic_load_n(&c[i], __ATOMIC_RELAXED);
}

/* ---- outputs --------------------------------------------------------------------------------------------- */

enum { FLUSH_AT = 1 << 16 };

typedef struct output {
    int fd;            /* -1: not used */
    mrh_text buf;
    int err;           /* the first write error (then it takes no more) */
    uint64_t lost;     /* lines it did not take because of it */
    uint64_t written;  /* lines that reached it */
} output;

/* A write that failed part-way through a line (a full disk, a file size limit) left that line's start in the file:
 * it is cut off, so that the file ends with whole lines (JSON records that parse). Only from a regular file that
 * ends where our writes did. */
static void cut_partial_line(int fd, size_t partial)
{
    struct stat st;
    if (!partial || fstat(fd, &st) || !S_ISREG(st.st_mode)) return;
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at == st.st_size && at >= (off_t)partial && ftruncate(fd, at - (off_t)partial) == 0)
        lseek(fd, at - (off_t)partial, SEEK_SET);
}

static void flush_output(output *o)
{
    size_t done = 0, line_start = 0;   /* (the buffer holds whole lines) */
    while (!o->err && done < o->buf.len) {
        ssize_t n = write(o->fd, o->buf.p + done, o->buf.len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {   /* a descriptor someone made non-blocking (a terminal): wait for it */
            struct pollfd p = {o->fd, POLLOUT, 0};
            poll(&p, 1, -1);
            continue;
        }
        if (n <= 0) {
            o->err = n < 0 ? errno : EIO;
            for (size_t i = done; i < o->buf.len; i++) o->lost += o->buf.p[i] == '\n';   /* lines not written */
            cut_partial_line(o->fd, done - line_start);
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (o->buf.p[done + (size_t)i] == '\n') o->written++, line_start = done + (size_t)i + 1;
        done += (size_t)n;
    }
    o->buf.len = 0;
}

/* Takes the line at the end of o's buffer from `start` on (or drops it, counted, after an error). */
static void line_done(output *o, size_t start)
{
    if (o->err) {
        o->buf.len = start;
        o->lost++;
        return;
    }
    if (o->buf.len >= FLUSH_AT) flush_output(o);
}

/* ---- the reader ------------------------------------------------------------------------------------------ */

typedef struct pid_output {
    uint32_t pid;
    int ended;         /* its end is shown and its file closed (reopened, appending, should a line come after) */
    output out;
} pid_output;

typedef struct pending_exec {   /* a start held (an exec's, a kill's), until it is known how it ended */
    uint32_t tid;
    unsigned char *copy;
} pending_exec;

typedef struct mrh_reader {
    mrh_trace_header *h;
    unsigned char *ring;
    uint64_t pos;                  /* our read position */
    uint64_t stuck_pos, stuck_since;   /* an uncommitted record seen at stuck_pos since then (0: none) */
    uint64_t lost;                 /* records skipped because their writer died writing them */
    const mrh_decoders *d;
    /* the clock: ns = anchor_ns + (ticks - anchor_ticks) * mul / div */
    uint64_t anchor_ticks, anchor_ns, mul, div;
    int clock_known;
    /* lines */
    int lines_on, timestamps, relative, durations, callers, failed_only, per_process;
    int64_t wall_offset_ns;
    uint32_t command_pid;
    uint64_t previous_ts;
    int have_previous;
    output lines;
    pid_output *pid_outputs;       /* -ff: one file per process */
    int npid_outputs;
    int (*open_for_pid)(uint32_t pid);   /* mrhooker's: a descriptor on FILE.PID */
    /* JSON */
    output json;
    /* the timeline */
    output timeline;
    uint64_t timeline_limit, timeline_count, timeline_left_out, timeline_start;
    int timeline_started;
    uint64_t *named;               /* pids and tids whose names the timeline has (tid << 1 | is_thread): a
                                    * hash set of named_cap slots (named_before) */
    size_t nnamed, named_cap;
    /* what every output shares */
    pending_exec *pending;
    int npending, pending_cap;
    uint64_t (*counts)[3];         /* per function: calls, errors, ns (from the records) */
    int *seen;                     /* functions in the order of their first call */
    int nseen;
    mrh_text scratch;
} mrh_reader;

static output *pid_stream(mrh_reader *r, uint32_t pid);
static void end_pid_stream(mrh_reader *r, uint32_t pid);

static void init_output(output *o, int fd)
{
    memset(o, 0, sizeof *o);
    o->fd = fd;
}

EXPORT mrh_reader *mrh_reader_new(void *map)
{
    mrh_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->h = map;
    r->ring = (unsigned char *)map + r->h->ring_offset;
    r->pos = __atomic_load_n(&r->h->read_pos, __ATOMIC_ACQUIRE);
    r->d = &mrh_trace_decoders;
    init_output(&r->lines, -1);
    init_output(&r->json, -1);
    init_output(&r->timeline, -1);
    r->counts = calloc((size_t)r->d->nfns + 1, sizeof *r->counts);
    r->seen = calloc((size_t)r->d->nfns + 1, sizeof *r->seen);
    if (!r->counts || !r->seen) {
        free(r->counts);
        free(r->seen);
        free(r);
        return NULL;
    }
    return r;
}

/* Lines to fd (or, per_process, to the descriptors open_for_pid gives for each process). */
EXPORT void mrh_reader_lines(mrh_reader *r, int fd, int timestamps, int relative, int durations, int callers,
                             int failed_only, int per_process, int (*open_for_pid)(uint32_t), int64_t wall_offset_ns)
{
    r->lines_on = 1;
    init_output(&r->lines, fd);
    r->timestamps = timestamps;
    r->relative = relative;
    r->durations = durations;
    r->callers = callers;
    r->failed_only = failed_only;
    r->per_process = per_process;
    r->open_for_pid = open_for_pid;
    r->wall_offset_ns = wall_offset_ns;
}

EXPORT void mrh_reader_command_pid(mrh_reader *r, uint32_t pid) { r->command_pid = pid; }

EXPORT void mrh_reader_json(mrh_reader *r, int fd, int64_t wall_offset_ns)
{
    init_output(&r->json, fd);
    r->wall_offset_ns = wall_offset_ns;
}

EXPORT void mrh_reader_timeline(mrh_reader *r, int fd, uint64_t limit)
{
    init_output(&r->timeline, fd);
    r->timeline_limit = limit;
    mrh_puts(&r->timeline.buf, "{\"displayTimeUnit\": \"ns\", \"traceEvents\": [\n");
}

/* ---- time ------------------------------------------------------------------------------------------------ */

/* The writers' clock, fixed once the first of them chose it. */
static void know_clock(mrh_reader *r)
{
    if (r->clock_known) return;
    if (__atomic_load_n(&r->h->clock_state, __ATOMIC_ACQUIRE) != 2) {
        r->anchor_ticks = r->anchor_ns = 0;
        r->mul = r->div = 1;
        return;   /* no writer yet: nothing to convert */
    }
    if (r->h->clock == MRH_CLOCK_TSC) {
        r->anchor_ticks = r->h->anchor_tsc;
        r->anchor_ns = r->h->anchor_ns;
        r->mul = 1000000000u;
        r->div = r->h->tsc_hz ? r->h->tsc_hz : 1;
    } else {
        r->anchor_ticks = r->anchor_ns = 0;
        r->mul = r->div = 1;
    }
    r->clock_known = 1;
}

static uint64_t scale(uint64_t ticks, uint64_t mul, uint64_t div)
{
    return (uint64_t)((unsigned __int128)ticks * mul / div);
}

static uint64_t ts_ns(mrh_reader *r, uint64_t ticks)
{
    if (ticks >= r->anchor_ticks) return r->anchor_ns + scale(ticks - r->anchor_ticks, r->mul, r->div);
    return r->anchor_ns - scale(r->anchor_ticks - ticks, r->mul, r->div);
}

/* Durations in the writers' units (the -c counters) to ns. */
EXPORT uint64_t mrh_reader_duration_ns(mrh_reader *r, uint64_t ticks)
{
    know_clock(r);
    return scale(ticks, r->mul, r->div);
}

/* ---- showing one call ---------------------------------------------------------------------------------- */

/* A parameter's name in JSON: the prototype's, or a0, a1, ... */
static void put_param_name(mrh_text *t, const mrh_fn *fn, unsigned i)
{
    if (fn->params && fn->params[i]) mrh_puts(t, fn->params[i]);
    else {
        mrh_put(t, "a", 1);
        mrh_put_u64(t, i);
    }
}

/* The arguments; JSON: returns which of them were shown cut at -s (bit i: argument i), for put_cut. */
static uint64_t put_args(mrh_text *t, const mrh_decoders *d, const mrh_fn *fn, const mrh_view *v, int json)
{
    unsigned n = v->rec->nargs < fn->nargs ? v->rec->nargs : fn->nargs;
    int written = 0;
    uint64_t cut = 0;
    for (unsigned i = 0; i < n; i++) {
        const mrh_arg *a = &fn->args[i];
        if (!mrh_arg_shown(v, a)) continue;
        if (written++) mrh_puts(t, json ? "," : ", ");
        if (json) {
            mrh_put(t, "\"", 1);
            put_param_name(t, fn, i);
            mrh_put(t, "\":", 2);
        }
        unsigned cuts = t->cuts;
        mrh_show_value(t, d, v, a, i, v->args[i], json);
        if (t->cuts != cuts && i < 64) cut |= (uint64_t)1 << i;
    }
    return cut;
}

/* JSON: ,"cut":["buf","ret"], the values shown cut at -s (their strings hold the bytes kept, exactly), if any. */
static void put_cut(mrh_text *t, const mrh_fn *fn, uint64_t args_cut, int ret_cut)
{
    if (!args_cut && !ret_cut) return;
    mrh_puts(t, ",\"cut\":[");
    int written = 0;
    for (unsigned i = 0; i < 64 && i < fn->nargs; i++) {
        if (!(args_cut >> i & 1)) continue;
        mrh_puts(t, written++ ? ",\"" : "\"");
        put_param_name(t, fn, i);
        mrh_put(t, "\"", 1);
    }
    if (ret_cut) mrh_puts(t, written ? ",\"ret\"" : "\"ret\"");
    mrh_put(t, "]", 1);
}

/* The result: as the line shows it after " = ", or as its JSON value; returns whether it was shown cut at -s. */
static int put_result(mrh_text *t, const mrh_decoders *d, const mrh_fn *fn, const mrh_view *v, int json)
{
    const mrh_record *rec = v->rec;
    unsigned cuts = t->cuts;
    if (rec->flags & MRH_ENTRY_ONLY) {   /* exit, or an exec: 0 once it worked, else it never returned */
        mrh_puts(t, v->done_flags & MRH_VIEW_EXEC_DONE ? "0" : json ? "null" : "?");
        return 0;
    }
    if (fn->ret.kind == MRH_K_VOID) {
        mrh_puts(t, json ? "null" : "?");
        return 0;
    }
    int pointer_result = fn->ret.kind == MRH_K_HEX || fn->ret.kind == MRH_K_STRING;
    if ((rec->flags & MRH_FAILED) && pointer_result)   /* NULL, or -1 (MAP_FAILED) as strace shows it */
        mrh_puts(t, rec->ret == ~(uint64_t)0 ? "-1" : json ? "null" : "NULL");
    else mrh_show_value(t, d, v, &fn->ret, MRH_RET, rec->ret, json);
    if ((rec->flags & MRH_FAILED) && !json && fn->ret.kind != MRH_K_ERRNO_RESULT) {   /* (that one says it) */
        mrh_put(t, " ", 1);
        mrh_show_errno(t, d, rec->err, 0);
    }
    return t->cuts != cuts;
}

static void put_two(char *o, unsigned v) { o[0] = (char)('0' + v / 10); o[1] = (char)('0' + v % 10); }

static void put_stamp(mrh_reader *r, mrh_text *t, uint64_t ts)
{
    if (r->relative) {
        uint64_t delta = r->have_previous && ts > r->previous_ts ? ts - r->previous_ts : 0;
        r->previous_ts = ts;
        r->have_previous = 1;
        char buf[48];
        int n = snprintf(buf, sizeof buf, "%6llu.%06llu ", (unsigned long long)(delta / 1000000000u),
                         (unsigned long long)(delta % 1000000000u / 1000));
        mrh_put(t, buf, (size_t)n);
    }
    if (!r->timestamps) return;
    int64_t wall = (int64_t)ts + r->wall_offset_ns;
    int64_t sec = wall / 1000000000, usec = wall % 1000000000 / 1000;
    if (r->timestamps >= 3) {
        mrh_put_i64(t, sec);
        char frac[8] = ".000000";
        for (int i = 6; i > 0; i--, usec /= 10) frac[i] = (char)('0' + usec % 10);
        mrh_put(t, frac, 7);
        mrh_put(t, " ", 1);
        return;
    }
    time_t s = (time_t)sec;
    struct tm tm;
    localtime_r(&s, &tm);
    char buf[24];
    put_two(buf, (unsigned)tm.tm_hour);
    buf[2] = ':';
    put_two(buf + 3, (unsigned)tm.tm_min);
    buf[5] = ':';
    put_two(buf + 6, (unsigned)tm.tm_sec);
    size_t n = 8;
    if (r->timestamps == 2) {
        buf[n++] = '.';
        for (int i = 5; i >= 0; i--, usec /= 10) buf[n + (size_t)i] = (char)('0' + usec % 10);
        n += 6;
    }
    buf[n++] = ' ';
    mrh_put(t, buf, n);
}

/* A call's site, its return address: "[0x...] " as ltrace -i shows it, or a JSON string. */
static void put_caller(mrh_text *t, uint64_t caller, int json)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, json ? "\"0x%llx\"" : "[0x%llx] ", (unsigned long long)caller);
    mrh_put(t, buf, (size_t)n);
}

static void show_line(mrh_reader *r, const mrh_fn *fn, const mrh_view *v, uint64_t ts)
{
    const mrh_record *rec = v->rec;
    if (r->failed_only && !(rec->flags & MRH_FAILED)) return;
    output *o = r->per_process ? pid_stream(r, rec->pid) : &r->lines;
    if (!o) return;
    mrh_text *t = &o->buf;
    size_t start = t->len;
    if (rec->tid != (r->per_process ? rec->pid : r->command_pid)) {
        mrh_puts(t, "[pid ");
        mrh_put_u64(t, rec->tid);
        mrh_puts(t, "] ");
    }
    if (r->timestamps || r->relative) put_stamp(r, t, ts);
    if (r->callers) put_caller(t, rec->caller, 0);
    mrh_puts(t, fn->name);
    mrh_put(t, "(", 1);
    put_args(t, r->d, fn, v, 0);
    mrh_put(t, ") = ", 4);
    put_result(t, r->d, fn, v, 0);
    if (rec->flags & MRH_INJECTED) mrh_puts(t, " (INJECTED)");
    else if (rec->flags & MRH_DELAYED) mrh_puts(t, " (DELAYED)");
    if (r->durations && !(rec->flags & MRH_ENTRY_ONLY)) {
        uint64_t dur = scale(rec->dur, r->mul, r->div);
        char buf[40];
        int n = snprintf(buf, sizeof buf, " <%llu.%06llu>", (unsigned long long)(dur / 1000000000u),
                         (unsigned long long)(dur % 1000000000u / 1000));
        mrh_put(t, buf, (size_t)n);
    }
    mrh_put(t, "\n", 1);
    line_done(o, start);
}

static void show_json(mrh_reader *r, const mrh_fn *fn, const mrh_view *v, uint64_t ts)
{
    const mrh_record *rec = v->rec;
    mrh_text *t = &r->json.buf;
    size_t start = t->len;
    mrh_puts(t, "{\"pid\":");
    mrh_put_u64(t, rec->pid);
    mrh_puts(t, ",\"tid\":");
    mrh_put_u64(t, rec->tid);
    mrh_puts(t, ",\"caller\":");
    put_caller(t, rec->caller, 1);
    mrh_puts(t, ",\"ts_ns\":");
    mrh_put_i64(t, (int64_t)ts + r->wall_offset_ns);
    mrh_puts(t, ",\"dur_ns\":");
    if (rec->flags & MRH_ENTRY_ONLY) mrh_puts(t, "null");
    else mrh_put_u64(t, scale(rec->dur, r->mul, r->div));
    mrh_puts(t, ",\"name\":\"");
    mrh_puts(t, fn->name);
    mrh_puts(t, "\",\"args\":{");
    uint64_t args_cut = put_args(t, r->d, fn, v, 1);
    mrh_puts(t, "},\"ret\":");
    int ret_cut = put_result(t, r->d, fn, v, 1);
    mrh_puts(t, ",\"errno\":");
    if (rec->flags & MRH_FAILED) mrh_show_errno(t, r->d, rec->err, 1);
    else mrh_puts(t, "null");
    put_cut(t, fn, args_cut, ret_cut);
    if (rec->flags & MRH_INJECTED) mrh_puts(t, ",\"injected\":true");
    else if (rec->flags & MRH_DELAYED) mrh_puts(t, ",\"delayed\":true");
    mrh_puts(t, "}\n");
    line_done(&r->json, start);
}

/* ---- the timeline ---------------------------------------------------------------------------------------- */

/* Has the timeline named this process or thread already (and if not, it is now)? A hash set, open addressing (0:
 * a free slot; a key never is): every record asks, and a server that starts a thread per connection has had
 * tens of thousands (a list scanned per record slowed the reader, and so the program waiting on it, ~3x at 12,000
 * threads). */
static size_t named_slot(const uint64_t *set, size_t cap, uint64_t key)
{
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15u) >> 20) & (cap - 1);
    while (set[i] && set[i] != key) i = (i + 1) & (cap - 1);
    return i;
}

static int named_before(mrh_reader *r, uint64_t key)
{
    if (r->named_cap && r->named[named_slot(r->named, r->named_cap, key)] == key) return 1;
    if (2 * (r->nnamed + 1) > r->named_cap) {   /* at most half full */
        size_t cap = r->named_cap ? r->named_cap * 2 : 256;
        uint64_t *p = calloc(cap, sizeof *p);
        if (!p) return 1;
        for (size_t i = 0; i < r->named_cap; i++)
            if (r->named[i]) p[named_slot(p, cap, r->named[i])] = r->named[i];
        free(r->named);
        r->named = p;
        r->named_cap = cap;
    }
    r->named[named_slot(r->named, r->named_cap, key)] = key;
    r->nnamed++;
    return 0;
}

static void timeline_event_start(mrh_reader *r)
{
    if (r->timeline_started) mrh_puts(&r->timeline.buf, ",\n");
    r->timeline_started = 1;
}

static void timeline_name(mrh_reader *r, const mrh_record *rec, int thread)
{
    uint32_t ident = thread ? rec->tid : rec->pid;
    if (named_before(r, ((uint64_t)ident << 1) | (unsigned)thread)) return;
    mrh_text *t = &r->timeline.buf;
    timeline_event_start(r);
    mrh_puts(t, thread ? "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" : "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
    mrh_put_u64(t, rec->pid);
    mrh_puts(t, ",\"tid\":");
    mrh_put_u64(t, rec->tid);
    mrh_puts(t, ",\"args\":{\"name\":");
    char name[64] = "";
    if (!thread) {
        char path[40];
        snprintf(path, sizeof path, "/proc/%u/comm", ident);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, name, sizeof name - 1);
            close(fd);
            name[n > 0 ? n : 0] = 0;
            name[strcspn(name, "\n")] = 0;
        }
    }
    char text[128];
    if (thread) snprintf(text, sizeof text, "thread %u", ident);
    else if (*name) snprintf(text, sizeof text, "%s (%u)", name, ident);
    else snprintf(text, sizeof text, "pid %u", ident);
    mrh_quote(t, (const unsigned char *)text, strlen(text), 1);
    mrh_puts(t, "}}");
}

static void show_timeline(mrh_reader *r, const mrh_fn *fn, const mrh_view *v, uint64_t ts)
{
    if (r->timeline_count >= r->timeline_limit) {
        r->timeline_left_out++;
        return;
    }
    const mrh_record *rec = v->rec;
    if (!r->timeline_count) r->timeline_start = ts;
    mrh_text *t = &r->timeline.buf;
    size_t start = t->len;
    timeline_name(r, rec, 0);
    timeline_name(r, rec, 1);
    timeline_event_start(r);
    mrh_puts(t, "{\"name\":\"");
    mrh_puts(t, fn->name);
    mrh_puts(t, "\",\"cat\":\"call\",\"ph\":\"X\",\"pid\":");
    mrh_put_u64(t, rec->pid);
    mrh_puts(t, ",\"tid\":");
    mrh_put_u64(t, rec->tid);
    char buf[64];
    uint64_t since = ts >= r->timeline_start ? ts - r->timeline_start : 0;
    uint64_t dur = rec->flags & MRH_ENTRY_ONLY ? 0 : scale(rec->dur, r->mul, r->div);
    int n = snprintf(buf, sizeof buf, ",\"ts\":%llu.%03llu,\"dur\":%llu.%03llu,\"args\":{",
                     (unsigned long long)(since / 1000), (unsigned long long)(since % 1000),
                     (unsigned long long)(dur / 1000), (unsigned long long)(dur % 1000));
    mrh_put(t, buf, (size_t)n);
    size_t args_at = t->len;
    uint64_t args_cut = put_args(t, r->d, fn, v, 1);
    mrh_puts(t, t->len > args_at ? ",\"ret\":" : "\"ret\":");
    int ret_cut = put_result(t, r->d, fn, v, 1);
    if (rec->flags & MRH_FAILED) {
        mrh_puts(t, ",\"errno\":");
        mrh_show_errno(t, r->d, rec->err, 1);
    }
    put_cut(t, fn, args_cut, ret_cut);
    mrh_puts(t, "}}");
    r->timeline_count++;
    line_done(&r->timeline, start);
}

/* ---- delivering calls ------------------------------------------------------------------------------------ */

/* A committed record, checked: every length in it stays inside it. 0: not a record we can show. */
static int view_of(mrh_reader *r, const unsigned char *p, uint32_t size, mrh_view *v)
{
    const mrh_record *rec = (const mrh_record *)p;
    if (size < sizeof *rec || rec->fn >= r->d->nfns) return 0;
    uint64_t at = sizeof *rec + 8 * (uint64_t)rec->nargs;
    if (at > size) return 0;
    v->rec = rec;
    v->args = (const uint64_t *)(p + sizeof *rec);
    v->ncaps = 0;
    v->done_flags = 0;
    for (unsigned i = 0; i < rec->ncaps && v->ncaps < 8; i++) {
        if (at + sizeof(mrh_capture_header) > size) break;
        const mrh_capture_header *c = (const mrh_capture_header *)(p + at);
        at += sizeof *c;
        if (c->len > size - at) break;
        v->caps[v->ncaps++] = c;
        at += MRH_ALIGN8(c->len);
    }
    return 1;
}

static void deliver(mrh_reader *r, const mrh_view *v)
{
    const mrh_record *rec = v->rec;
    const mrh_fn *fn = &r->d->fns[rec->fn];
    uint64_t ts = ts_ns(r, rec->ts);
    uint64_t *count = r->counts[rec->fn];
    if (!count[0]) r->seen[r->nseen++] = rec->fn;
    count[0]++;
    count[1] += (rec->flags & MRH_FAILED) != 0;
    count[2] += scale(rec->dur, r->mul, r->div);
    if (r->lines_on) show_line(r, fn, v, ts);
    if (r->json.fd >= 0) show_json(r, fn, v, ts);
    if (r->timeline.fd >= 0) show_timeline(r, fn, v, ts);
}

static void deliver_copy(mrh_reader *r, unsigned char *copy, int done)
{
    mrh_view v;
    if (view_of(r, copy, ((mrh_record *)copy)->size, &v)) {
        if (done) v.done_flags |= MRH_VIEW_EXEC_DONE;
        deliver(r, &v);
    }
    free(copy);
}

/* A call that may not return is recorded when it starts, and again when it returns. An exec that works never
 * returns (its thread goes on in the new program); a kill that kills its own process neither. The start waits
 * here until: its return comes (shown instead: a failed exec, a kill that returned), its thread is seen doing
 * something else (an exec that worked: `= 0`), a wait reaps its process, or the end (an exec: `= 0`; a call that
 * ended its process: `= ?`, as strace shows it). A kill's or raise's thread seen doing something else is running
 * a signal handler inside it (raise returns after the handler, and the handler may raise again): the start waits
 * on (shown `= ?` and then its return, it was shown twice, once as a call that never returned). Starts are kept
 * in the order they came, so that a thread's newest (a handler's, inside an older one) is met first. */
static int pending_of(mrh_reader *r, uint32_t tid)
{
    for (int i = r->npending - 1; i >= 0; i--)
        if (r->pending[i].tid == tid) return i;
    return -1;
}

static void unhold(mrh_reader *r, int i)
{
    memmove(&r->pending[i], &r->pending[i + 1], (size_t)(r->npending - i - 1) * sizeof *r->pending);
    r->npending--;
}

/* Shows the start held for tid, as it ended: without its return (an exec that worked; a call that died). */
static void release_pending(mrh_reader *r, int i)
{
    pending_exec p = r->pending[i];
    unhold(r, i);
    const mrh_fn *fn = &r->d->fns[((mrh_record *)p.copy)->fn];
    deliver_copy(r, p.copy, (fn->flags & MRH_FN_EXEC) != 0);
}

/* Shows every start held for tid, the oldest first: its process ended (none of them returned). */
static void release_all_of(mrh_reader *r, uint32_t tid)
{
    for (int i = 0; i < r->npending;)
        if (r->pending[i].tid == tid) release_pending(r, i);
        else i++;
}

static void resolve_pending(mrh_reader *r, const mrh_view *v)
{
    int i = pending_of(r, v->rec->tid);
    if (i < 0) return;
    const mrh_record *started = (const mrh_record *)r->pending[i].copy;
    if (v->rec->fn == started->fn && !(v->rec->flags & MRH_ENTRY_ONLY)) {   /* its return: shown instead */
        free(r->pending[i].copy);
        unhold(r, i);
    } else if (r->d->fns[started->fn].flags & MRH_FN_EXEC) {
        release_pending(r, i);
    }
}

static void hold(mrh_reader *r, const unsigned char *p, uint32_t size, uint32_t tid)
{
    if (r->npending == r->pending_cap) {
        int cap = r->pending_cap ? r->pending_cap * 2 : 8;
        pending_exec *q = realloc(r->pending, (size_t)cap * sizeof *q);
        if (!q) return;
        r->pending = q;
        r->pending_cap = cap;
    }
    unsigned char *copy = malloc(size);
    if (!copy) return;
    memcpy(copy, p, size);
    r->pending[r->npending++] = (pending_exec){tid, copy};
}

/* How process pid ended, as strace's last line of it says (wait status as waitpid gives it). */
static void show_exit(mrh_reader *r, uint32_t pid, int status)
{
    if (!r->lines_on) return;
    output *o = r->per_process ? pid_stream(r, pid) : &r->lines;
    if (!o) return;
    mrh_text *t = &o->buf;
    size_t start = t->len;
    if (!r->per_process && pid != r->command_pid) {
        mrh_puts(t, "[pid ");
        mrh_put_u64(t, pid);
        mrh_puts(t, "] ");
    }
    if (WIFEXITED(status)) {
        mrh_puts(t, "+++ exited with ");
        mrh_put_i64(t, WEXITSTATUS(status));
    } else {
        const char *name = NULL;
        for (const mrh_name *n = r->d->signals; n && n->name && !name; n++)
            if (n->value == (uint64_t)WTERMSIG(status)) name = n->name;
        mrh_puts(t, "+++ killed by ");
        if (name) mrh_puts(t, name);
        else mrh_put_i64(t, WTERMSIG(status));
        if (WCOREDUMP(status)) mrh_puts(t, " (core dumped)");
    }
    mrh_puts(t, " +++\n");
    line_done(o, start);
    if (r->per_process) end_pid_stream(r, pid);
}

/* A wait that reaped child pid: the child's start still held is shown first (its exec worked, or it died in its
 * kill), then how it ended. */
static void reaped(mrh_reader *r, uint32_t pid, int status)
{
    release_all_of(r, pid);
    if (WIFEXITED(status) || WIFSIGNALED(status)) show_exit(r, pid, status);
}

/* Did this wait reap a child: which, and its wait status? (waitpid's result and status; waitid's siginfo) */
static int reaped_by(const mrh_fn *fn, const mrh_view *v, uint32_t *pid, int *status)
{
    if (v->rec->flags & (MRH_FAILED | MRH_ENTRY_ONLY) || (int64_t)v->rec->ret < 0) return 0;
    for (unsigned k = 0; k < fn->nargs; k++) {
        const mrh_capture_header *c = mrh_capture_of(v, k, 0);
        if (!c) continue;
        if (fn->args[k].kind == MRH_K_WAIT_STATUS && c->len >= 4 && (int64_t)v->rec->ret > 0) {
            *pid = (uint32_t)v->rec->ret;
            memcpy(status, mrh_capture_data(c), 4);
            return 1;
        }
        if (fn->args[k].kind == MRH_K_SIGINFO && c->len >= sizeof(siginfo_t)) {
            if (v->rec->nargs > 3 && (v->args[3] & WNOWAIT)) return 0;   /* waitid's: the child is still there */
            siginfo_t si;
            memcpy(&si, mrh_capture_data(c), sizeof si);
            if (si.si_signo != SIGCHLD || si.si_pid <= 0) return 0;
            *pid = (uint32_t)si.si_pid;
            if (si.si_code == CLD_EXITED) *status = (si.si_status & 0xff) << 8;
            else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
                *status = (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
            else return 0;
            return 1;
        }
    }
    return 0;
}

/* mrhooker reaped pid itself (it was orphaned, or it is the command): how it ended, after the start it may still
 * hold (`execve(...) = 0` comes before `+++ exited with 0 +++`, and the kill it died in before `+++ killed by
 * SIGTERM +++`, as a traced wait shows a child's). */
EXPORT void mrh_reader_exited(mrh_reader *r, uint32_t pid, int status)
{
    reaped(r, pid, status);
}

static void take_record(mrh_reader *r, const unsigned char *p, uint32_t size)
{
    mrh_view v;
    if (!view_of(r, p, size, &v)) return;
    const mrh_fn *fn = &r->d->fns[v.rec->fn];
    if (r->npending) resolve_pending(r, &v);
    uint32_t pid;
    int status;
    if ((fn->flags & MRH_FN_WAIT) && reaped_by(fn, &v, &pid, &status)) reaped(r, pid, status);
    if ((fn->flags & (MRH_FN_EXEC | MRH_FN_MAY_DIE)) && (v.rec->flags & MRH_ENTRY_ONLY)) hold(r, p, size, v.rec->tid);
    else if (!(fn->flags & MRH_FN_HIDDEN)) deliver(r, &v);
}

/* ---- draining the ring ----------------------------------------------------------------------------------- */

/* Is the uncommitted record at pos to be skipped (its writer died writing it)? After 2 s, or at the end. */
static int skip_stuck(mrh_reader *r, uint64_t pos, int final)
{
    if (final) return 1;
    uint64_t now = monotonic_ns();
    if (r->stuck_since == 0 || r->stuck_pos != pos) {
        r->stuck_pos = pos;
        r->stuck_since = now;
        return 0;
    }
    return now - r->stuck_since > 2000000000u;
}

/* Past a record whose writer died before committing it: to the next 8-byte boundary that starts a committed
 * record, or to the end. */
static uint64_t resynchronise(mrh_reader *r, uint64_t pos, uint64_t end)
{
    const uint64_t size = r->h->ring_size;
    r->lost++;
    r->stuck_since = 0;
    for (pos += 8; pos < end; pos += 8) {
        const mrh_record *rec = (const mrh_record *)(r->ring + (pos & (size - 1)));
        uint32_t length = __atomic_load_n(&rec->size, __ATOMIC_ACQUIRE);
        if (rec->magic == MRH_RECORD_MAGIC && length > 0 && length <= size && length % 8 == 0) return pos;
    }
    return end;
}

static void zero_ring(mrh_reader *r, uint64_t start, uint64_t stop)
{
    const uint64_t size = r->h->ring_size;
    while (start < stop) {
        uint64_t at = start & (size - 1);
        uint64_t n = stop - start < size - at ? stop - start : size - at;
        memset(r->ring + at, 0, n);
        start += n;
    }
}

static void flush_all(mrh_reader *r)
{
    flush_output(&r->lines);
    flush_output(&r->json);
    flush_output(&r->timeline);
    for (int i = 0; i < r->npid_outputs; i++) flush_output(&r->pid_outputs[i].out);
}

/* Shows the calls committed since the last drain, at most `budget` of them, in the order they were reserved;
 * final: the writers are gone, so a record left uncommitted will never be. Returns the calls taken. */
EXPORT long mrh_reader_drain(mrh_reader *r, int final, long budget)
{
    const uint64_t size = r->h->ring_size;
    uint64_t end = __atomic_load_n(&r->h->write_pos, __ATOMIC_ACQUIRE);
    uint64_t pos = r->pos;
    long taken = 0;
    know_clock(r);
    while (pos < end && taken < budget) {
        uint64_t at = pos & (size - 1);
        const mrh_record *rec = (const mrh_record *)(r->ring + at);
        uint32_t length = __atomic_load_n(&rec->size, __ATOMIC_ACQUIRE);
        if (length == 0 || rec->magic != MRH_RECORD_MAGIC || length % 8 || length > size - at) {
            if (skip_stuck(r, pos, final)) {
                pos = resynchronise(r, pos, end);
                continue;
            }
            break;
        }
        if (rec->fn != MRH_PAD) {
            take_record(r, (const unsigned char *)rec, length);
            taken++;
        }
        pos += length;
    }
    if (pos != r->pos) {
        zero_ring(r, r->pos, pos);   /* a record's size is its commit: the space is free once zeroed */
        r->pos = pos;
        __atomic_store_n(&r->h->read_pos, pos, __ATOMIC_RELEASE);
    }
    mrh_trace_beat(r->h, 1);
    flush_all(r);
    return taken;
}

/* Skips what is left in the ring, unread: its writers are gone, or the trace's reader (a closed pipe). Returns how
 * many calls that was. */
EXPORT long mrh_reader_discard(mrh_reader *r)
{
    const uint64_t size = r->h->ring_size;
    long skipped = 0;
    for (;;) {
        uint64_t end = __atomic_load_n(&r->h->write_pos, __ATOMIC_ACQUIRE), pos = r->pos;
        while (pos < end) {
            const mrh_record *rec = (const mrh_record *)(r->ring + (pos & (size - 1)));
            uint32_t length = __atomic_load_n(&rec->size, __ATOMIC_ACQUIRE);
            if (length == 0 || rec->magic != MRH_RECORD_MAGIC || length % 8 || length > size - (pos & (size - 1)))
                break;   /* left uncommitted by a writer that died */
            skipped += rec->fn != MRH_PAD;
            pos += length;
        }
        if (pos == r->pos) return skipped;
        zero_ring(r, r->pos, pos);
        r->pos = pos;
        __atomic_store_n(&r->h->read_pos, pos, __ATOMIC_RELEASE);
    }
}

/* The end: execs still pending worked; the timeline is closed; everything is written. */
EXPORT void mrh_reader_finish(mrh_reader *r)
{
    while (r->npending) release_pending(r, 0);
    if (r->timeline.fd >= 0) {
        mrh_puts(&r->timeline.buf, "\n]}\n");
        line_done(&r->timeline, 0);
    }
    flush_all(r);
}

/* -ff: the output of process pid's lines, its FILE.PID opened by mrhooker (ours to close) on its first line. */
static output *pid_stream(mrh_reader *r, uint32_t pid)
{
    for (int i = 0; i < r->npid_outputs; i++) {
        pid_output *o = &r->pid_outputs[i];
        if (o->pid != pid) continue;
        if (o->ended) {   /* lines after its end (a pid used again): mrhooker opens the file again, appending */
            o->ended = 0;
            o->out.fd = r->open_for_pid ? r->open_for_pid(pid) : -1;
            if (o->out.fd < 0 && !o->out.err) o->out.err = EBADF;
        }
        return &o->out;
    }
    pid_output *p = realloc(r->pid_outputs, (size_t)(r->npid_outputs + 1) * sizeof *p);
    if (!p) return NULL;
    r->pid_outputs = p;
    pid_output *o = &p[r->npid_outputs++];
    o->pid = pid;
    o->ended = 0;
    init_output(&o->out, r->open_for_pid ? r->open_for_pid(pid) : -1);
    if (o->out.fd < 0) o->out.err = EBADF;
    return &o->out;
}

/* Process pid's end is shown: its file is written and closed. Kept open, one descriptor per process that ever
 * ran, `-ff` of a build (make: thousands of processes) ran out of descriptors (ulimit -n, 1024 by default) and
 * lost the lines of every process after that. */
static void end_pid_stream(mrh_reader *r, uint32_t pid)
{
    for (int i = 0; i < r->npid_outputs; i++) {
        pid_output *o = &r->pid_outputs[i];
        if (o->pid != pid || o->ended) continue;
        flush_output(&o->out);
        if (o->out.fd >= 0) close(o->out.fd);
        o->out.fd = -1;
        o->ended = 1;
    }
}

/* ---- what mrhooker asks at the end ----------------------------------------------------------------------- */

EXPORT uint64_t mrh_reader_lost(mrh_reader *r) { return r->lost; }
EXPORT uint64_t mrh_reader_timeline_count(mrh_reader *r) { return r->timeline_count; }
EXPORT uint64_t mrh_reader_timeline_left_out(mrh_reader *r) { return r->timeline_left_out; }

/* Which output failed (0 lines, 1 JSON, 2 timeline, 3 + i: the i-th process's lines): its errno (0: none), the
 * lines it lost and those it had taken before; -1 past the last. */
EXPORT int mrh_reader_output_error(mrh_reader *r, int which, uint64_t *lost, uint64_t *written, uint32_t *pid)
{
    output *o;
    *pid = 0;
    if (which == 0) o = &r->lines;
    else if (which == 1) o = &r->json;
    else if (which == 2) o = &r->timeline;
    else if (which - 3 < r->npid_outputs) {
        o = &r->pid_outputs[which - 3].out;
        *pid = r->pid_outputs[which - 3].pid;
    } else {
        return -1;
    }
    *lost = o->lost;
    *written = o->written;
    return o->fd >= 0 ? o->err : 0;
}

/* Has an output's reader gone away (a closed pipe)? */
EXPORT int mrh_reader_broken_pipe(mrh_reader *r)
{
    if (r->lines.err == EPIPE || r->json.err == EPIPE || r->timeline.err == EPIPE) return 1;
    for (int i = 0; i < r->npid_outputs; i++)
        if (r->pid_outputs[i].out.err == EPIPE) return 1;
    return 0;
}

/* Per function, from the records: calls, errors, ns (-C). */
EXPORT void mrh_reader_counts(mrh_reader *r, int fn, uint64_t *out)
{
    memcpy(out, r->counts[fn], sizeof r->counts[fn]);
}

/* The functions called, in the order of their first call (--scaffold); returns how many. */
EXPORT int mrh_reader_seen(mrh_reader *r, int *out, int max)
{
    int n = r->nseen < max ? r->nseen : max;
    memcpy(out, r->seen, (size_t)n * sizeof *out);
    return n;
}

EXPORT void mrh_reader_free(mrh_reader *r)
{
    if (!r) return;
    for (int i = 0; i < r->npending; i++) free(r->pending[i].copy);
    free(r->pending);
    free(r->lines.buf.p);
    free(r->json.buf.p);
    free(r->timeline.buf.p);
    for (int i = 0; i < r->npid_outputs; i++) {
        if (r->pid_outputs[i].out.fd >= 0) close(r->pid_outputs[i].out.fd);   /* (-ff: ours) */
        free(r->pid_outputs[i].out.buf.p);
    }
    free(r->pid_outputs);
    free(r->named);
    free(r->counts);
    free(r->seen);
    free(r->scratch.p);
    free(r);
}

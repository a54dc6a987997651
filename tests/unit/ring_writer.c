/* A writer of trace records for the reader's unit tests: it puts records into a trace file's ring as the traced
 * processes' trace.c does (reserve, write, commit by size last; filler up to the ring's end), with the layout of
 * runtime/tracefile.h, so that the tests never spell the record format themselves. */
#include <stdint.h>
#include <string.h>

#include "tracefile.h"

/* Appends one record; commit 0 leaves it uncommitted (a writer that died writing it). Returns 0, or -1 if the
 * ring has no room. */
int ring_put(void *map, unsigned fn, unsigned pid, unsigned tid, uint64_t ts, uint64_t dur, uint64_t ret, int err,
             unsigned flags, unsigned nargs, const uint64_t *args, unsigned ncaps, const unsigned *which,
             const unsigned *kinds, const unsigned *fulls, const unsigned char *const *datas, const unsigned *lens,
             int commit)
{
    mrh_trace_header *h = map;
    unsigned char *ring = (unsigned char *)map + h->ring_offset;
    uint64_t need = sizeof(mrh_record) + 8 * (uint64_t)nargs;
    for (unsigned i = 0; i < ncaps; i++) need += sizeof(mrh_capture_header) + MRH_ALIGN8(lens[i]);
    uint64_t w = h->write_pos, at = w & (h->ring_size - 1);
    uint64_t pad = at + need > h->ring_size ? h->ring_size - at : 0;
    if (w + pad + need - h->read_pos > h->ring_size) return -1;
    if (pad) {
        mrh_record *p = (mrh_record *)(ring + at);
        p->magic = MRH_RECORD_MAGIC;
        p->fn = MRH_PAD;
        __atomic_store_n(&p->size, (uint32_t)pad, __ATOMIC_RELEASE);
        w += pad;
        at = 0;
    }
    mrh_record *r = (mrh_record *)(ring + at);
    r->magic = MRH_RECORD_MAGIC;
    r->fn = (uint16_t)fn;
    r->pid = pid;
    r->tid = tid;
    r->ts = ts;
    r->dur = dur;
    r->ret = ret;
    r->err = err;
    r->flags = (uint8_t)flags;
    r->nargs = (uint8_t)nargs;
    r->ncaps = (uint8_t)ncaps;
    r->pad = 0;
    r->caller = 0x401000 + fn;   /* a site per function: JSON shows it */
    unsigned char *q = (unsigned char *)(r + 1);
    memcpy(q, args, 8 * (size_t)nargs);
    q += 8 * (size_t)nargs;
    for (unsigned i = 0; i < ncaps; i++) {
        mrh_capture_header *c = (mrh_capture_header *)q;
        c->which = (uint16_t)which[i];
        c->kind = (uint16_t)kinds[i];
        c->full = fulls[i];
        c->len = lens[i];
        q += sizeof *c;
        memcpy(q, datas[i], lens[i]);
        q += MRH_ALIGN8(lens[i]);
    }
    h->write_pos = w + need;
    if (commit) __atomic_store_n(&r->size, (uint32_t)need, __ATOMIC_RELEASE);
    return 0;
}

/* Marks the clock chosen (CLOCK_MONOTONIC: ticks are ns), as the first traced process does. */
void ring_clock(void *map)
{
    mrh_trace_header *h = map;
    h->clock = MRH_CLOCK_MONOTONIC;
    __atomic_store_n(&h->clock_state, 2, __ATOMIC_RELEASE);
}

/* The errno values of function fn's --inject rules, in the order they decide (their chain); returns how many. */
int rule_chain(void *map, unsigned fn, int *errors, int max)
{
    mrh_trace_header *h = map;
    const mrh_inject_rule *rules = (const mrh_inject_rule *)((char *)map + h->inject_offset), *rule = &rules[fn];
    int n = 0;
    if (!h->inject_offset || !rule->armed) return 0;
    for (;;) {
        if (n < max) errors[n] = rule->error;
        n++;
        if (!rule->next || rule->next >= h->inject_nrules) return n;
        rule = &rules[rule->next];
    }
}

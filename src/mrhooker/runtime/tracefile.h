/* tracefile.h: the file a trace shares between the traced processes (trace.c writes records into it) and
 * mrhooker (reader.c makes it and reads them). Both sides include this header; nothing else describes the
 * layout (Python never reads the file's bytes: it calls reader.c).
 *
 *   offset 0      header (4096 bytes, mrh_trace_header)
 *   offset 4096   counters: for each traced function, {calls, errors, time units} (uint64), for `-c`
 *   inject_offset the --inject rules, if any: inject_nrules mrh_inject_rules, each function's first in its own
 *                 slot (fn), its others after the nfn slots, chained by `next` in the order they decide
 *   ring_offset   the ring: `ring_size` bytes (a power of two) of records, each 8-byte aligned, never split at
 *                 its end
 *
 * A record: mrh_record, then u64 args[nargs] (the arguments' bits, floats as double bits), then ncaps
 * captures, each an mrh_capture_header and its `len` bytes, padded to 8. `size` is written last (the commit):
 * 0 means not yet.
 */
#ifndef MRHOOKER_TRACEFILE_H
#define MRHOOKER_TRACEFILE_H

#include <stdint.h>

#define MRH_TRACE_MAGIC 0x4d52485452414345ull   /* "MRHTRACE" */
#define MRH_TRACE_VERSION 6
#define MRH_TRACE_HEADER_SIZE 4096
#define MRH_COUNTERS_OFFSET 4096
#define MRH_RECORD_MAGIC 0x524d
#define MRH_PAD 0xffff                          /* a record's fn: filler up to the ring's end */
#define MRH_RET 255                             /* a capture's which: the result */

/* A record's flags. MRH_INJECTED: not made, a rule's result given instead; MRH_DELAYED: made, a rule's delay
 * added; MRH_ENTRY_ONLY: recorded when the call started, as it may not return (exec, exit). */
enum { MRH_FAILED = 1, MRH_ENTRY_ONLY = 2, MRH_UNSAFE = 4, MRH_INJECTED = 16, MRH_DELAYED = 32 };
enum { MRH_CLOCK_MONOTONIC = 1, MRH_CLOCK_TSC = 2 };

/* Capture kinds: what a record keeps of the memory an argument (or the result) points to. Paths are kept whole
 * (up to 4096 bytes), other strings and buffers cut at -s. A string vector (argv, envp) keeps its first
 * strings (at most -s and the capture's `len` of them, within a share of the ring), each cut at -s (at most
 * 4096) and stored as a byte that says whether it was cut, its bytes and a NUL; its `full` is how many strings
 * the vector has (counted up to MRH_STRV_COUNTED). A struct (and any
 * other fixed-size object the reader shows by its contents) is kept whole, up to MRH_STRUCT_KEPT bytes. */
enum { MRH_CAP_STRING = 1, MRH_CAP_BYTES = 2, MRH_CAP_SOCKADDR = 3, MRH_CAP_PATH = 4, MRH_CAP_STRV = 5,
       MRH_CAP_STRUCT = 6, MRH_CAP_IOV = 7, MRH_CAP_IOV_READ = 8, MRH_CAP_MSG = 9, MRH_CAP_MSG_READ = 10 };
/* An iovec array (MRH_CAP_IOV: the data it passes, writev's; MRH_CAP_IOV_READ: the data the call filled, as many
 * bytes as it returned, readv's; none when it failed) keeps its first elements (at most -s of them, and
 * MRH_IOV_KEPT), each as an mrh_iov_kept and its bytes cut at -s, padded to 8; its `full` is how many elements the
 * array has. */
#define MRH_IOV_KEPT 1024
typedef struct mrh_iov_kept {
    uint64_t base, len;   /* the element (iov_base, iov_len) */
    uint32_t kept;        /* bytes stored after this (padded to 8), | MRH_IOV_UNREAD: none of them its (shown as
                           * its address) */
    uint32_t data;        /* bytes of it the call passed or filled (more than kept: cut) */
} mrh_iov_kept;
#define MRH_IOV_UNREAD 0x80000000u   /* (an element keeps at most 1 MB)*/
/* A struct msghdr (MRH_CAP_MSG: the message a call passes, sendmsg's; MRH_CAP_MSG_READ: the one it filled,
 * recvmsg's, kept as the call left it: none of its name, data or control when it failed) keeps an mrh_msg_kept,
 * then its name's bytes (at most MRH_MSG_NAME_KEPT) and its control's (at most MRH_MSG_CONTROL_KEPT), each
 * padded to 8, then its iovec array as an MRH_CAP_IOV keeps one (its elements: msg_iovlen). */
#define MRH_MSG_NAME_KEPT 128
#define MRH_MSG_CONTROL_KEPT 512
typedef struct mrh_msg_kept {
    uint64_t name, iov, iovlen, control, controllen;   /* the struct's members, as read */
    uint32_t namelen, flags;
    uint32_t name_kept, control_kept;   /* bytes stored of each; MRH_IOV_UNREAD: none could be read */
    uint32_t iov_kept, pad;             /* bytes the iovec array takes after them */
} mrh_msg_kept;
/* In a capture's kind: taken before the call, as the argument was passed (the call may change it: select's
 * fd_sets, a socklen_t it reads and writes). */
#define MRH_CAP_BEFORE 0x100
/* In a capture's kind: none of the memory could be read (a bad pointer a failed call was given): the reader shows
 * the argument as its address, as strace does, not as an empty string. */
#define MRH_CAP_UNREAD 0x200
#define MRH_STRUCT_KEPT 1024
#define MRH_STRV_COUNTED (1 << 18)   /* more than exec takes at the default stack limit (ARG_MAX 2 MB) */

enum { MRH_RECORDS_NONE = 0, MRH_RECORDS_ALL = 1, MRH_RECORDS_CHOSEN = 2 /* only calls an --inject rule chose */ };

typedef struct mrh_trace_header {
    uint64_t magic, version;
    uint64_t ring_offset, ring_size;
    uint64_t nfn;
    uint64_t records_on, counts_on;   /* what to write (set by the launcher); records_on: MRH_RECORDS_* */
    uint64_t strsize;                 /* bytes kept of strings and buffers (-s) */
    /* The clock, chosen by the first process that maps the file (clock_state 0 -> 1 -> 2). */
    uint64_t clock_state, clock, tsc_hz, anchor_tsc, anchor_ns;
    uint64_t inject_offset;           /* the rules (see above), or 0: none */
    uint64_t inject_seed;             /* --seed */
    uint64_t fake_time_on;            /* --fake-time: 1, with: */
    int64_t fake_anchor_real_ns;      /* CLOCK_REALTIME at the start (ns), */
    int64_t fake_anchor_sec, fake_anchor_nsec;   /* the time shown for it (any 64-bit seconds; ns 0..999999999) */
    uint64_t fake_rate_ppm;           /* how fast fake time runs, in millionths (1000000: as fast as real) */
    uint64_t fake_elapsed;            /* 1: the elapsed clocks run at the rate too (0 when attached: the
                                       * detach would turn them back), each from its reading at the start: */
    int64_t fake_anchor_elapsed_ns[3];   /* CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME (ns) */
    uint64_t inject_nrules;           /* rules in the table: nfn, and the functions' further rules */
    /* Each on a cache line of its own: the writers' compare-and-swap must not evict the fields above, which every
     * call reads, nor the reader's. */
    uint64_t write_pos __attribute__((aligned(64)));   /* producers (compare-and-swap) */
    uint64_t read_pos __attribute__((aligned(64)));    /* the reader: everything before it may be overwritten */
    uint64_t heartbeat_ns;            /* the reader's CLOCK_MONOTONIC at its last drain; 0: gone */
    uint64_t dropped;                 /* records that could not be written (atomic) */
    uint64_t abandoned;               /* records a longjmp out of a signal handler left unfinished (atomic) */
    uint64_t unmapped;                /* processes that could not map the whole file (ulimit -v): untraced, and
                                       * neither faked nor injected (atomic, through a map of this page alone) */
} mrh_trace_header;

/* A fault injection rule of one function (--inject; added by the reader's mrh_trace_add_rule). */
typedef struct mrh_inject_rule {
    uint32_t armed;                   /* 1: a rule (in a function's own slot: the function has rules) */
    int32_t error;                    /* errno a chosen call gets (0: none) */
    int64_t retval;                   /* the result a chosen call gets, if `fail` */
    uint32_t fail;                    /* 1: a chosen call isn't made */
    uint32_t probability;             /* of a call `when` allows, in 2^-32 (0xffffffff: every one) */
    uint64_t first, last, step;       /* when=FIRST..LAST+STEP (calls from 1; last 0: no end; step 0: FIRST only) */
    uint64_t delay_enter_ns, delay_exit_ns;
    uint32_t next;                    /* the function's next rule (an index past the nfn first), 0: none */
    uint32_t pad;
} mrh_inject_rule;

typedef struct mrh_record {
    uint32_t size;    /* bytes, including this header and what follows; written last */
    uint16_t magic;   /* MRH_RECORD_MAGIC */
    uint16_t fn;      /* the function's index (MRH_PAD: filler) */
    uint32_t pid, tid;
    uint64_t ts;      /* entry time (TSC ticks, or CLOCK_MONOTONIC ns: see header.clock) */
    uint64_t dur;     /* duration, same unit */
    uint64_t ret;     /* the result's bits */
    int32_t err;      /* errno after the call; 0 if it set none */
    uint8_t flags;    /* MRH_FAILED, ... */
    uint8_t nargs, ncaps, pad;
    uint64_t caller;  /* the return address of the call (its site: trace -i, sweep) */
} mrh_record;

typedef struct mrh_capture_header {
    uint16_t which;   /* argument index, or MRH_RET */
    uint16_t kind;    /* MRH_CAP_* */
    uint32_t full;    /* the length the data had (strings: up to their NUL; vectors: their strings) */
    uint32_t len;     /* bytes stored after this header */
    uint32_t pad;
} mrh_capture_header;

#define MRH_ALIGN8(n) (((n) + 7) & ~(uint64_t)7)

#endif

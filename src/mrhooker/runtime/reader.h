/* reader.h (mrhooker's side, in C): showing a trace's records as strace-like lines, JSON lines and a timeline.
 *
 * mrhooker (tracer.py) loads a trace build's reader.so with ctypes. reader.so is reader.c and decode.c,
 * compiled once with the runtime, linked with the trace's generated decoders.c: one mrh_fn per traced function,
 * saying how each argument and the result are shown. decoders.c is data only (tracing.py writes it from the
 * trace's plans); every way of showing a value is one case of decode.c, used for the lines and for JSON alike.
 *
 * Hazards, and the idea for each:
 * - Speed: a program makes millions of calls a second, and a trace whose lines can't keep up stalls it.
 *   Idea: records are read in place and formatted into per-output buffers by hand-written conversions (no
 *   stdio, no allocation per call), written with write() in large pieces; ctypes drops the GIL around a drain.
 * - The records are the traced processes' memory, written while we read: a record may be half written, or
 *   (a dead writer) never finished. Idea: a record counts once its size is committed (release/acquire); every
 *   length in it is checked against the record before use; an uncommitted record is waited for, then skipped.
 * - An output that fails (a full disk, a closed pipe) must not stop the trace or change the exit status.
 *   Idea: its error is kept, it takes no more lines, and the lines it lost are counted; mrhooker says so at the
 *   end (mrh_reader_output_error).
 */
#ifndef MRHOOKER_READER_H
#define MRHOOKER_READER_H

#include <stddef.h>
#include <stdint.h>

#include "tracefile.h"

/* ---- what decoders.c describes ------------------------------------------------------------------------- */

/* A name of a constant; tables end with {NULL, 0}. */
typedef struct mrh_name {
    const char *name;
    uint64_t value;
} mrh_name;

/* An enumeration: its names, and the name of an unknown value ("SEEK_???": a line shows 0x7 and that). */
typedef struct mrh_enum {
    const mrh_name *names;
    const char *unknown;
} mrh_enum;

/* An enumeration chosen by another argument's value (socket's protocol by its domain, a socket option's name
 * by its level); ends with {0, NULL}. No match: the number. */
typedef struct mrh_switch {
    uint64_t key;
    const mrh_enum *names;
} mrh_switch;

/* Flags: the value's low bits read as one number first (O_RDONLY.., SOCK_STREAM.., MAP_PRIVATE..), then named
 * bits, names of more bits first (O_SYNC before O_DSYNC, which it contains), what is left in hex. */
typedef struct mrh_flagset {
    const mrh_name *low;      /* NULL: no low field */
    uint64_t low_mask;
    const mrh_name *bits;
    const char *zero;         /* how 0 is shown when there is no low field: "0", "PROT_NONE", "F_OK" */
    const char *unknown;      /* a line's comment when no bit has a name, as strace writes it: "O_???"; or NULL */
} mrh_flagset;

/* The names a struct msghdr is shown with (MRH_K_MSGHDR's table): msg_flags', control messages' levels and their
 * types by level; decoded: {SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS}, the messages whose data is shown. */
typedef struct mrh_msghdr_names {
    const mrh_flagset *flags;
    const mrh_enum *levels;
    const mrh_switch *types;
    const mrh_name *decoded;
} mrh_msghdr_names;

/* The names prctl's arguments are shown with (MRH_K_PRCTL_ARG's table): its options (PR_*), capabilities. */
typedef struct mrh_prctl_names {
    const mrh_name *options;
    const mrh_enum *capabilities;
} mrh_prctl_names;

/* A struct, as the compiler laid it out (layouts.py measured it). */
typedef struct mrh_member mrh_member;
typedef struct mrh_layout {
    const char *name;
    uint32_t size;
    uint16_t nmembers;
    uint16_t nshown;          /* a line shows the first nshown members, then "..."; 0: all of them */
    const mrh_member *members;
} mrh_layout;

/* MRH_M_SIZE_OR_RDEV: a struct stat's st_size, or for a device, its st_rdev (as strace shows a stat).
 * MRH_M_RLIM: a struct rlimit's limit, as strace shows one (RLIM64_INFINITY, 8192*1024).
 * MRH_M_ENUM: a name of its mrh_enum, else the number in hex (a statfs' f_type). MRH_M_FSID: a statfs' f_fsid,
 * two ints, as strace shows it ({val=[0x1, 0x2]}). */
enum { MRH_M_INT, MRH_M_UINT, MRH_M_FLOAT, MRH_M_POINTER, MRH_M_STRUCT, MRH_M_CHARS, MRH_M_FILE_MODE, MRH_M_FLAGS,
       MRH_M_SIZE_OR_RDEV, MRH_M_RLIM, MRH_M_ENUM, MRH_M_FSID };

struct mrh_member {
    const char *name;
    uint32_t offset, size;
    uint8_t kind;             /* MRH_M_* */
    const void *table;        /* MRH_M_STRUCT: its mrh_layout; MRH_M_FLAGS: its mrh_flagset; MRH_M_ENUM: its
                               * mrh_enum; MRH_M_SIZE_OR_RDEV:
                               * the mrh_member of st_rdev; MRH_M_FILE_MODE, ..._RDEV: st_mode's is the first */
};

/* How a value is shown (the kinds' registry on the Python side is tracing's KINDS; each kind is one case in
 * decode.c). */
enum mrh_kind {
    MRH_K_INT = 1,      /* signed decimal */
    MRH_K_UINT,         /* unsigned decimal */
    MRH_K_HEX,          /* an address: 0x7f.., NULL */
    MRH_K_DOUBLE,
    MRH_K_FD,
    MRH_K_DIRFD,        /* AT_FDCWD or a descriptor */
    MRH_K_MODE,         /* 0644 */
    MRH_K_ID,           /* a uid or gid: -1 for "none" */
    MRH_K_ENUM,         /* table: mrh_enum */
    MRH_K_ENUM_BY,      /* table: mrh_switch[], keyed by argument ref */
    MRH_K_FLAGS,        /* table: mrh_flagset */
    MRH_K_SIGNAL,       /* table: mrh_name[] of the signals; real-time ones as strace names them */
    MRH_K_STRING,       /* a captured C string, cut at -s */
    MRH_K_BYTES,        /* a captured buffer, cut at -s */
    MRH_K_SOCKADDR,     /* a captured socket address */
    MRH_K_ARGV,         /* a captured string vector, shown */
    MRH_K_ENVP,         /* a captured string vector, counted */
    MRH_K_STRUCT,       /* a captured struct, by its members; table: mrh_layout */
    MRH_K_FCNTL_ARG,    /* by fcntl's command (ref); a captured struct flock */
    MRH_K_FCNTL_RESULT, /* by fcntl's command (ref): F_GETFL's flags, F_GETFD's */
    MRH_K_VOID,         /* a result that is none */
    MRH_K_EAI,          /* getaddrinfo's result: 0, or EAI_* and its text */
    MRH_K_ERRNO_RESULT, /* a result that is an error number (posix_fadvise's): 0, or 29 ESPIPE (Illegal seek) */
    MRH_K_INTS,         /* captured ints: [3, 4] */
    MRH_K_SOCKOPT,      /* a socket option's value (captured), by its level (ref) and name (ref + 1) */
    MRH_K_WAIT_STATUS,  /* a captured wait status: [{WIFEXITED(s) && WEXITSTATUS(s) == 0}] */
    MRH_K_SIGINFO,      /* a captured siginfo_t (waitid) */
    MRH_K_SIGSET,       /* a captured sigset_t: [HUP INT] */
    MRH_K_POLLFDS,      /* captured struct pollfd[]: [{fd=3, events=POLLIN}] */
    MRH_K_POLL_RESULT,  /* poll's result, with the fds (ref) that have events: 1 ([{fd=3, revents=POLLIN}]) */
    MRH_K_FD_SET,       /* a captured fd_set, as it was passed: [3 4] */
    MRH_K_SELECT_RESULT,/* select's result: 1 (in [3], left {tv_sec=0, tv_usec=998}) */
    MRH_K_LENGTH,       /* a socklen_t the call reads and writes: [128 => 16] */
    MRH_K_TIMESPECS,    /* a captured struct timespec[2] (utimensat): [{tv_sec=.., tv_nsec=..}, UTIME_NOW] */
    MRH_K_IOCTL_REQUEST,/* table: mrh_enum; an unknown one as _IOC(dir, type, nr, size) */
    MRH_K_IOCTL_ARG,    /* by ioctl's request (ref): a captured int [5], a number (the requests in table), or
                         * an address */
    MRH_K_IOVEC,        /* a captured iovec array (MRH_CAP_IOV): [{iov_base="hi", iov_len=2}] */
    MRH_K_EPOLL_EVENT,  /* a captured struct epoll_event: {events=EPOLLIN, data={u32=3, u64=3}}; table: flags */
    MRH_K_EPOLL_EVENTS, /* captured struct epoll_event[]: [{events=EPOLLIN, data={u32=3, u64=3}}]; table: flags */
    MRH_K_TIME,         /* a captured time_t: [946684800], its date in a comment after the number */
    MRH_K_TIME_RESULT,  /* seconds since the epoch: 946684800 (2000-01-01T00:00:00+0000) */
    MRH_K_OFFSET,       /* a captured off64_t, as passed and (if kept) after the call: [0] => [3] */
    MRH_K_OFFSET_UNSIGNED, /* the same, unsigned (sendfile's, as strace shows it) */
    MRH_K_PRCTL_ARG,    /* prctl's argument, by its option (ref): PR_SET_NAME's "foo", SIGTERM, [SIGTERM]...;
                         * table: mrh_prctl_names */
    MRH_K_PRCTL_RESULT, /* prctl's result, by its option (ref): 1 (SUID_DUMP_USER) for PR_GET_DUMPABLE */
    MRH_K_MSGHDR,       /* a captured struct msghdr (MRH_CAP_MSG, _READ): {msg_name=..., msg_iov=[...], ...};
                         * table: mrh_msghdr_names */
    MRH_K_SIG_HANDLER,  /* a signal handler: SIG_DFL, SIG_IGN, SIG_ERR or an address */
    MRH_K_SIGACTION,    /* a captured struct sigaction: {sa_handler=SIG_IGN, sa_mask=[], sa_flags=0}; table: flags */
    MRH_K_CPU_SET,      /* a captured cpu_set_t, by its CPUs: [0 1] (the first 1024, then ...) */
    MRH_K_CPU_SET_OUT,  /* the same, filled by the call: all its CPUs */
    MRH_K_BYTE_LIST,    /* captured bytes as numbers: [1, 0, 1] (mincore's vector), cut at -s */
};

/* When an argument is shown at all: variadic ones that were not passed are left out (open's mode without
 * O_CREAT or O_TMPFILE; fcntl's argument of F_GETFL). */
enum { MRH_SHOWN = 0, MRH_SHOWN_IF_BITS = 1, MRH_SHOWN_UNLESS_IN = 2 };

typedef struct mrh_arg {
    uint8_t kind;             /* MRH_K_* */
    uint8_t size;             /* the C type's size: the record keeps 64 bits, sign- or zero-extended from it */
    uint8_t shown;            /* MRH_SHOWN* */
    uint8_t ref;              /* the argument the showing depends on */
    const void *table;        /* by kind */
    uint64_t mask;            /* MRH_SHOWN_IF_BITS */
    const mrh_name *unless;   /* MRH_SHOWN_UNLESS_IN */
} mrh_arg;

/* MRH_FN_EXEC: returns only when it fails (recorded at entry too); MRH_FN_MAY_DIE: may end its own process (kill:
 * recorded at entry too, shown `= ?` if it never returned); MRH_FN_WAIT: returns a child's pid, its status in
 * argument `wait_status`; MRH_FN_HIDDEN: traced for the reader's sake only (its lines are not shown). */
enum { MRH_FN_EXEC = 1, MRH_FN_MAY_DIE = 2, MRH_FN_WAIT = 4, MRH_FN_HIDDEN = 8 };

typedef struct mrh_fn {
    const char *name;
    uint8_t nargs;
    uint8_t flags;             /* MRH_FN_* */
    const mrh_arg *args;
    mrh_arg ret;
    const char *const *params; /* the parameters' names, for JSON */
} mrh_fn;

/* The constants every trace needs (decoders.c). */
typedef struct mrh_decoders {
    const mrh_fn *fns;
    int nfns;
    const mrh_name *errnos;
    const mrh_name *signals;
    const mrh_name *families;      /* AF_* */
    const mrh_name *file_types;    /* S_IF* (st_mode) */
    int64_t at_fdcwd;
    uint64_t s_ifmt;
    const mrh_name *fcntl_cmds;    /* F_SETFL, F_SETFD...: what fcntl's argument means by command */
    const mrh_flagset *open_flags;
    const mrh_flagset *fd_flags;   /* FD_CLOEXEC */
    const mrh_flagset *seals;      /* F_SEAL_* */
    const mrh_name *eai;           /* EAI_* */
    const mrh_name *fcntl_lock_types;   /* F_RDLCK... */
    const mrh_name *whences;       /* SEEK_* */
    const mrh_name *cld_codes;     /* CLD_* (siginfo's si_code of SIGCHLD) */
    const mrh_flagset *poll_events;
    const mrh_name *sockopt_levels_socket;   /* SOL_SOCKET's value, and SO_LINGER's: {SOL_SOCKET, SO_LINGER} */
} mrh_decoders;

/* ---- decode.c: one value --------------------------------------------------------------------------------- */

/* Text under construction. */
typedef struct mrh_text {
    char *p;
    size_t len, cap;
    int failed;      /* an allocation failed: the text is cut */
    unsigned cuts;   /* JSON: strings, buffers and lists shown cut at -s (a line says "..." instead); the record's
                      * writer reads it around each value to name those in "cut" */
} mrh_text;

void mrh_put(mrh_text *t, const char *s, size_t n);
void mrh_puts(mrh_text *t, const char *s);
void mrh_put_i64(mrh_text *t, int64_t v);
void mrh_put_u64(mrh_text *t, uint64_t v);
void mrh_put_hex(mrh_text *t, uint64_t v);

/* A call being shown: its record and where its captures are. */
typedef struct mrh_view {
    const mrh_record *rec;
    const uint64_t *args;
    const mrh_capture_header *caps[8];
    int ncaps;
    uint64_t done_flags;   /* the reader's own: MRH_VIEW_EXEC_DONE */
} mrh_view;
#define MRH_VIEW_EXEC_DONE 1

/* The capture of argument `which` (MRH_RET: the result) taken after the call, or (before) as it was passed. */
const mrh_capture_header *mrh_capture_of(const mrh_view *v, unsigned which, int before);
static inline const unsigned char *mrh_capture_data(const mrh_capture_header *c) { return (const unsigned char *)(c + 1); }

/* Appends one value: argument `index` (or the result: MRH_RET) of call v, as text or as a JSON value. */
void mrh_show_value(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, unsigned index,
                    uint64_t bits, int json);
/* Is argument i of call v shown (variadic arguments not passed are not)? */
int mrh_arg_shown(const mrh_view *v, const mrh_arg *a);
void mrh_show_errno(mrh_text *t, const mrh_decoders *d, int err, int json);   /* ENOENT (No such ...) */
void mrh_quote(mrh_text *t, const unsigned char *s, size_t n, int json);

#endif

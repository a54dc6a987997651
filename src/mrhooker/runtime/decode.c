/* decode.c (mrhooker's side): one value of a recorded call, as a line shows it (strace's spelling) or as JSON.
 *
 * Every kind of value is one case here, written once for both forms; decoders.c (generated per trace) says
 * which kind each argument is and gives the tables of names, with the values the system headers define.
 * Values come from the traced processes' memory: every length is checked against what the record holds.
 */
#define _GNU_SOURCE
#include "reader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <net/if.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#define KERNEL_SA_RESTORER 0x04000000   /* sa_flags' bit for sa_restorer: the kernel's, not in glibc's headers */

/* ---- text ---------------------------------------------------------------------------------------------- */

static int reserve_text(mrh_text *t, size_t n)
{
    if (t->len + n <= t->cap) return 1;
    if (t->failed) return 0;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + n) cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
        t->failed = 1;
        return 0;
    }
    t->p = p;
    t->cap = cap;
    return 1;
}

void mrh_put(mrh_text *t, const char *s, size_t n)
{
    if (!reserve_text(t, n)) return;
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

void mrh_puts(mrh_text *t, const char *s) { mrh_put(t, s, strlen(s)); }

static void put_char(mrh_text *t, char c)
{
    if (!reserve_text(t, 1)) return;
    t->p[t->len++] = c;
}

void mrh_put_u64(mrh_text *t, uint64_t v)
{
    char digits[20];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10); while (v /= 10);
    if (!reserve_text(t, (size_t)n)) return;
    while (n) t->p[t->len++] = digits[--n];
}

void mrh_put_i64(mrh_text *t, int64_t v)
{
    if (v < 0) {
        put_char(t, '-');
        mrh_put_u64(t, (uint64_t)0 - (uint64_t)v);
    } else {
        mrh_put_u64(t, (uint64_t)v);
    }
}

void mrh_put_hex(mrh_text *t, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char digits[16];
    int n = 0;
    do digits[n++] = hex[v & 15]; while (v >>= 4);
    if (!reserve_text(t, (size_t)n + 2)) return;
    t->p[t->len++] = '0';
    t->p[t->len++] = 'x';
    while (n) t->p[t->len++] = digits[--n];
}

static void put_octal(mrh_text *t, uint64_t v)
{
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + (v & 7)); while (v >>= 3);
    if (!reserve_text(t, (size_t)n)) return;
    while (n) t->p[t->len++] = digits[--n];
}

/* A JSON string's body for text that is ours (names, numbers): nothing to escape. */
static void put_json_name(mrh_text *t, const char *s)
{
    put_char(t, '"');
    mrh_puts(t, s);
    put_char(t, '"');
}

/* ---- strings ---------------------------------------------------------------------------------------------
 * Lines: strace's quoting: printable ASCII as is, \" \\ \f \n \r \t \v, other bytes in octal, with three digits
 * when an octal digit follows (so "\0011" is byte 1 then '1').
 * JSON: the bytes as UTF-8 text; a byte that isn't part of valid UTF-8 is written \xff (four characters) and a
 * backslash is doubled, so the two can't be confused; a record is one line to any line splitter. */

static void quote_text(mrh_text *t, const unsigned char *s, size_t n)
{
    if (!reserve_text(t, n * 4 + 2)) return;
    char *o = t->p + t->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        switch (c) {
        case '"': case '\\': *o++ = '\\'; *o++ = (char)c; continue;
        case '\f': *o++ = '\\'; *o++ = 'f'; continue;
        case '\n': *o++ = '\\'; *o++ = 'n'; continue;
        case '\r': *o++ = '\\'; *o++ = 'r'; continue;
        case '\t': *o++ = '\\'; *o++ = 't'; continue;
        case '\v': *o++ = '\\'; *o++ = 'v'; continue;
        }
        if (c >= 0x20 && c < 0x7f) {
            *o++ = (char)c;
            continue;
        }
        int digit_follows = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7';
        *o++ = '\\';
        if (c >> 6 || digit_follows) {
            *o++ = (char)('0' + (c >> 6));
            *o++ = (char)('0' + ((c >> 3) & 7));
        } else if (c >> 3) {
            *o++ = (char)('0' + (c >> 3));
        }
        *o++ = (char)('0' + (c & 7));
    }
    *o++ = '"';
    t->len = (size_t)(o - t->p);
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static void quote_json(mrh_text *t, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!reserve_text(t, n * 6 + 2)) return;
    char *o = t->p + t->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = utf8_sequence(s + i, n - i);
        if (len == 0) {   /* not UTF-8: the text \xff (its backslash escaped for JSON) */
            *o++ = '\\'; *o++ = '\\'; *o++ = 'x';
            *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            i++;
            continue;
        }
        if (len > 1) {
            /* U+0085, U+2028, U+2029 break lines for other splitters than "\n" (Python's str.splitlines,
             * JavaScript): escaped, a record stays one line for every reader (random bytes hold them) */
            if ((len == 2 && c == 0xc2 && s[i + 1] == 0x85) ||
                (len == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))) {
                memcpy(o, len == 2 ? "\\u0085" : s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                o += 6;
                i += len;
                continue;
            }
            memcpy(o, s + i, len);
            o += len;
            i += len;
            continue;
        }
        i++;
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; continue;
        case '\\': *o++ = '\\'; *o++ = '\\'; *o++ = '\\'; *o++ = '\\'; continue;   /* doubled, then escaped */
        case '\n': *o++ = '\\'; *o++ = 'n'; continue;
        case '\r': *o++ = '\\'; *o++ = 'r'; continue;
        case '\t': *o++ = '\\'; *o++ = 't'; continue;
        case '\b': *o++ = '\\'; *o++ = 'b'; continue;
        case '\f': *o++ = '\\'; *o++ = 'f'; continue;
        }
        if (c < 0x20 || c == 0x7f) {
            memcpy(o, "\\u00", 4);
            o += 4;
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    t->len = (size_t)(o - t->p);
}

void mrh_quote(mrh_text *t, const unsigned char *s, size_t n, int json)
{
    if (json) quote_json(t, s, n);
    else quote_text(t, s, n);
}

/* ---- names ----------------------------------------------------------------------------------------------- */

static const char *name_of(const mrh_name *table, uint64_t value)
{
    for (; table && table->name; table++)
        if (table->value == value) return table->name;
    return NULL;
}

static void put_flags(mrh_text *t, const mrh_flagset *f, uint64_t v, int json)
{
    size_t start = t->len;
    int parts = 0;
    if (f->low) {
        const char *low = name_of(f->low, v & f->low_mask);
        if (low) mrh_puts(t, low);
        else mrh_put_hex(t, v & f->low_mask);
        parts++;
        v &= ~f->low_mask;
    }
    for (const mrh_name *b = f->bits; b && b->name && v; b++) {
        if (b->value && (v & b->value) == b->value) {
            if (parts++) put_char(t, '|');
            mrh_puts(t, b->name);
            v &= ~b->value;
        }
    }
    if (v) {
        int named = parts++;
        if (named) put_char(t, '|');
        mrh_put_hex(t, v);
        if (!named && !json && f->unknown) {   /* strace's comment when no bit has a name */
            mrh_puts(t, " /* ");
            mrh_puts(t, f->unknown);
            mrh_puts(t, " */");
        }
    }
    if (t->len == start) mrh_puts(t, f->zero ? f->zero : "0");
}

/* One name of an enumeration, or the number: in a line, in hex with the enumeration's unknown name in a comment
 * (strace's way); in JSON, the number. */
static void put_enum(mrh_text *t, const mrh_enum *e, uint64_t v, int size, int json)
{
    const char *name = e ? name_of(e->names, v) : NULL;
    if (name) {
        if (json) put_char(t, '"');
        mrh_puts(t, name);
        if (json) put_char(t, '"');
    } else if (json || !e || !e->unknown) {
        mrh_put_i64(t, (int64_t)v);
    } else {   /* in hex, the C type's own bits, as strace shows them: a clockid_t's -2 is 0xfffffffe */
        mrh_put_hex(t, size > 0 && size < 8 ? v & (((uint64_t)1 << (8 * size)) - 1) : v);
        mrh_puts(t, " /* ");
        mrh_puts(t, e->unknown);
        mrh_puts(t, " */");
    }
}

/* Flags as a JSON string, or in a line. */
static void put_flags_value(mrh_text *t, const mrh_flagset *f, uint64_t v, int json)
{
    if (json) put_char(t, '"');
    put_flags(t, f, v, json);
    if (json) put_char(t, '"');
}

/* Signals by name, real-time ones as strace names them (the kernel's SIGRTMIN, 32, by that name; SIGRT_n counts
 * from it). */
static void put_signal(mrh_text *t, const mrh_decoders *d, int64_t sig)
{
    const char *name = name_of(d->signals, (uint64_t)sig);
    if (name) mrh_puts(t, name);
    else if (sig == 32) mrh_puts(t, "SIGRTMIN");
    else if (sig > 32 && sig <= 64) {
        mrh_puts(t, "SIGRT_");
        mrh_put_i64(t, sig - 32);
    } else {
        mrh_put_i64(t, sig);
    }
}

/* A signal as a JSON string, or in a line. */
static void put_signal_value(mrh_text *t, const mrh_decoders *d, int64_t sig, int json)
{
    if (json) put_char(t, '"');
    put_signal(t, d, sig);
    if (json) put_char(t, '"');
}

void mrh_show_errno(mrh_text *t, const mrh_decoders *d, int err, int json)
{
    const char *name = name_of(d->errnos, (uint64_t)(int64_t)err);
    if (json) {
        if (name) put_json_name(t, name);
        else {
            put_char(t, '"');
            mrh_put_i64(t, err);
            put_char(t, '"');
        }
        return;
    }
    if (name) mrh_puts(t, name);
    else mrh_put_i64(t, err);
    mrh_puts(t, " (");
    mrh_puts(t, strerror(err));
    put_char(t, ')');
}

/* ---- captures -------------------------------------------------------------------------------------------- */

const mrh_capture_header *mrh_capture_of(const mrh_view *v, unsigned which, int before)
{
    for (int i = 0; i < v->ncaps; i++)
        if (v->caps[i]->which == which && !(v->caps[i]->kind & MRH_CAP_BEFORE) == !before)
            return v->caps[i]->kind & MRH_CAP_UNREAD ? NULL : v->caps[i];   /* unreadable: the address */
    return NULL;
}

static void put_pointer(mrh_text *t, uint64_t v, int json)
{
    if (!v) mrh_puts(t, json ? "null" : "NULL");
    else if (json) {
        put_char(t, '"');
        mrh_put_hex(t, v);
        put_char(t, '"');
    } else {
        mrh_put_hex(t, v);
    }
}

/* Bytes kept of a string or buffer, "..." after them when it had more (cut); JSON: the bytes kept, exactly, and
 * the cut counted (the record names the value in its "cut": dots would be data). */
static void put_kept(mrh_text *t, const unsigned char *data, uint32_t len, int cut, int json)
{
    if (json) {
        quote_json(t, data, len);
        t->cuts += cut != 0;
        return;
    }
    quote_text(t, data, len);
    if (cut) mrh_put(t, "...", 3);
}

/* The end of a list shown cut at -s: ", ..." in a line; JSON: counted, as put_kept does. */
static void put_list_cut(mrh_text *t, int shown, int json)
{
    if (json) t->cuts++;
    else mrh_puts(t, shown ? ", ..." : "...");
}

/* A captured string or buffer, "..." after it when the data had more than the record kept. */
static void put_captured(mrh_text *t, const mrh_capture_header *c, int json)
{
    put_kept(t, mrh_capture_data(c), c->len, c->full > c->len, json);
}

/* A string vector (MRH_CAP_STRV): ["ls", "-l", ...]. */
static void put_argv(mrh_text *t, const mrh_capture_header *c, int json)
{
    const unsigned char *data = mrh_capture_data(c), *end = data + c->len;
    uint32_t shown = 0;
    put_char(t, '[');
    while (data < end) {
        int cut = data[0] == 1;
        const unsigned char *s = data + 1;
        const unsigned char *nul = memchr(s, 0, (size_t)(end - s));
        size_t n = nul ? (size_t)(nul - s) : (size_t)(end - s);
        if (shown++) mrh_puts(t, json ? "," : ", ");
        put_kept(t, s, (uint32_t)n, cut, json);
        data = s + n + 1;
    }
    if (c->full > shown) put_list_cut(t, shown, json);
    put_char(t, ']');
}

static uint16_t load16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* A socket address, as strace shows it: {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("1.2.3.4")};
 * JSON: {"family": "AF_INET", "address": "1.2.3.4", "port": 80} (or "path" for AF_UNIX). */
static void put_sockaddr(mrh_text *t, const mrh_decoders *d, const unsigned char *a, size_t n, int json)
{
    if (n < 2) {
        mrh_puts(t, json ? "{\"family\":null}" : "{}");
        return;
    }
    unsigned family = load16(a);
    const char *name = name_of(d->families, family);
    if (json) {
        char number[24];
        snprintf(number, sizeof number, "%u", family);
        mrh_puts(t, "{\"family\":\"");
        mrh_puts(t, name ? name : number);
        put_char(t, '"');
    } else {
        mrh_puts(t, "{sa_family=");
        if (name) {
            mrh_puts(t, name);
        } else {
            mrh_put_hex(t, family);
            mrh_puts(t, " /* AF_??? */");
        }
    }
    /* As strace: a family it shows by its members only when the address is long enough for them (an AF_INET's
     * 16 bytes, AF_INET6's 24, AF_NETLINK's 12), else, as other families, its bytes as sa_data. */
    char address[INET6_ADDRSTRLEN];
    if (family == AF_INET && n >= 16) {
        unsigned port = ntohs(load16(a + 2));
        inet_ntop(AF_INET, a + 4, address, sizeof address);
        if (json) {
            mrh_puts(t, ",\"address\":\"");
            mrh_puts(t, address);
            mrh_puts(t, "\",\"port\":");
            mrh_put_u64(t, port);
        } else {
            mrh_puts(t, ", sin_port=htons(");
            mrh_put_u64(t, port);
            mrh_puts(t, "), sin_addr=inet_addr(\"");
            mrh_puts(t, address);
            mrh_puts(t, "\")");
        }
    } else if (family == AF_INET6 && n >= 24) {
        unsigned port = ntohs(load16(a + 2));
        uint32_t flow, scope = 0;
        memcpy(&flow, a + 4, 4);
        if (n >= 28) memcpy(&scope, a + 24, 4);
        inet_ntop(AF_INET6, a + 8, address, sizeof address);
        if (json) {
            mrh_puts(t, ",\"address\":\"");
            mrh_puts(t, address);
            mrh_puts(t, "\",\"port\":");
            mrh_put_u64(t, port);
        } else {
            mrh_puts(t, ", sin6_port=htons(");
            mrh_put_u64(t, port);
            mrh_puts(t, "), sin6_flowinfo=htonl(");
            mrh_put_u64(t, ntohl(flow));
            mrh_puts(t, "), inet_pton(AF_INET6, \"");
            mrh_puts(t, address);
            mrh_puts(t, "\", &sin6_addr)");
            if (n > 24) {   /* a link-local address's scope is an interface: by its name, when this host has it */
                struct in6_addr in6;
                char ifname[IF_NAMESIZE];
                memcpy(&in6, a + 8, sizeof in6);
                mrh_puts(t, ", sin6_scope_id=");
                if ((IN6_IS_ADDR_LINKLOCAL(&in6) || IN6_IS_ADDR_MC_LINKLOCAL(&in6)) && if_indextoname(scope, ifname)) {
                    mrh_puts(t, "if_nametoindex(");
                    quote_text(t, (const unsigned char *)ifname, strlen(ifname));
                    put_char(t, ')');
                } else {
                    mrh_put_u64(t, scope);
                }
            }
        }
    } else if (family == AF_UNIX) {
        const unsigned char *path = a + 2;
        size_t len = n - 2;
        int abstract = len > 0 && path[0] == 0;
        if (abstract) {
            path++, len--;
            while (len && path[len - 1] == 0) len--;
        } else {
            const unsigned char *nul = memchr(path, 0, len);
            if (nul) len = (size_t)(nul - path);
        }
        if (json) {
            mrh_puts(t, ",\"path\":");
            if (abstract) {   /* "@name" */
                mrh_text at = {0};
                mrh_put(&at, "@", 1);
                mrh_put(&at, (const char *)path, len);
                quote_json(t, (const unsigned char *)at.p, at.len);
                free(at.p);
            } else {
                quote_json(t, path, len);
            }
        } else if (n > 2) {   /* an unnamed socket's address is its family alone */
            mrh_puts(t, ", sun_path=");
            if (abstract) put_char(t, '@');
            quote_text(t, path, len);
        }
    } else if (family == AF_NETLINK && n >= 12 && !json) {
        uint16_t pad = load16(a + 2);
        uint32_t pid, groups;
        char hex[16];
        memcpy(&pid, a + 4, 4);
        memcpy(&groups, a + 8, 4);
        if (pad) {
            mrh_puts(t, ", nl_pad=");
            mrh_put_hex(t, pad);
        }
        mrh_puts(t, ", nl_pid=");
        mrh_put_u64(t, pid);
        snprintf(hex, sizeof hex, "%#08x", groups);   /* strace's spelling: 00000000, 0x000005 */
        mrh_puts(t, ", nl_groups=");
        mrh_puts(t, hex);
    } else if (n > 2 && !json) {
        mrh_puts(t, ", sa_data=");
        quote_text(t, a + 2, n - 2);
    }
    put_char(t, '}');
}

/* ---- structs --------------------------------------------------------------------------------------------- */

static uint64_t load_uint(const unsigned char *p, uint32_t size)
{
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64 = 0;
    switch (size) {
    case 1: memcpy(&u8, p, 1); return u8;
    case 2: memcpy(&u16, p, 2); return u16;
    case 4: memcpy(&u32, p, 4); return u32;
    default: memcpy(&u64, p, size < 8 ? size : 8); return u64;
    }
}

static int64_t load_int(const unsigned char *p, uint32_t size)
{
    uint64_t u = load_uint(p, size);
    if (size < 8 && (u >> (size * 8 - 1)) & 1) u |= ~(uint64_t)0 << (size * 8);
    return (int64_t)u;
}

static void put_double(mrh_text *t, double v, int json);

static void put_file_mode(mrh_text *t, const mrh_decoders *d, uint64_t mode)
{
    uint64_t type = mode & d->s_ifmt;
    const char *name = name_of(d->file_types, type);
    if (name) mrh_puts(t, name);
    else {
        put_char(t, '0');
        put_octal(t, type);
    }
    static const mrh_name special[] = {{"S_ISUID", S_ISUID}, {"S_ISGID", S_ISGID}, {"S_ISVTX", S_ISVTX}, {NULL, 0}};
    for (const mrh_name *n = special; n->name; n++)
        if (mode & n->value) {
            put_char(t, '|');
            mrh_puts(t, n->name);
        }
    mrh_puts(t, "|0");
    put_octal(t, mode & 0777);
}

static void put_layout(mrh_text *t, const mrh_decoders *d, const mrh_layout *l, const unsigned char *data,
                       size_t n, int json);

/* A resource limit: infinity by name, a whole number of KiB as N*1024 (strace's spelling); JSON: the number. */
static void put_rlim(mrh_text *t, uint64_t v, int json)
{
    if (json || (v != UINT64_MAX && (v <= 1024 || v % 1024))) {
        mrh_put_u64(t, v);
    } else if (v == UINT64_MAX) {
        mrh_puts(t, "RLIM64_INFINITY");
    } else {
        mrh_put_u64(t, v / 1024);
        mrh_puts(t, "*1024");
    }
}

static void put_member(mrh_text *t, const mrh_decoders *d, const mrh_member *m, const unsigned char *data,
                       size_t n, int json)
{
    const unsigned char *p = data + m->offset;
    switch (m->kind) {
    case MRH_M_INT: mrh_put_i64(t, load_int(p, m->size)); break;
    case MRH_M_UINT: mrh_put_u64(t, load_uint(p, m->size)); break;
    case MRH_M_FILE_MODE:
        if (json) mrh_put_u64(t, load_uint(p, m->size));
        else put_file_mode(t, d, load_uint(p, m->size));
        break;
    case MRH_M_FLOAT:
        if (m->size == 4) {
            float f;
            memcpy(&f, p, 4);
            put_double(t, f, json);
        } else if (m->size == 8) {
            double f;
            memcpy(&f, p, 8);
            put_double(t, f, json);
        } else {
            mrh_puts(t, json ? "null" : "?");
        }
        break;
    case MRH_M_POINTER: put_pointer(t, load_uint(p, m->size), json); break;
    case MRH_M_CHARS: {
        const unsigned char *nul = memchr(p, 0, m->size);
        mrh_quote(t, p, nul ? (size_t)(nul - p) : m->size, json);
        break;
    }
    case MRH_M_STRUCT: put_layout(t, d, m->table, p, n - m->offset, json); break;
    case MRH_M_FLAGS: put_flags_value(t, m->table, load_uint(p, m->size), json); break;
    case MRH_M_SIZE_OR_RDEV: mrh_put_i64(t, load_int(p, m->size)); break;
    case MRH_M_RLIM: put_rlim(t, load_uint(p, m->size), json); break;
    case MRH_M_ENUM: {   /* an unknown value in hex, no comment: strace names no unknown file system */
        const mrh_enum *e = m->table;
        uint64_t v = load_uint(p, m->size);
        if (!json && !(e && name_of(e->names, v))) mrh_put_hex(t, v);
        else put_enum(t, e, v, m->size, json);
        break;
    }
    case MRH_M_FSID:   /* the kernel's two ints, unsigned in hex as strace shows them (glibc names them __val) */
        mrh_puts(t, json ? "{\"val\":[" : "{val=[");
        for (uint32_t i = 0; i + 4 <= m->size; i += 4) {
            if (i) mrh_puts(t, json ? "," : ", ");
            uint64_t v = load_uint(p + i, 4);
            if (json || !v) mrh_put_u64(t, v);   /* (strace's 0, not 0x0) */
            else mrh_put_hex(t, v);
        }
        mrh_puts(t, "]}");
        break;
    default: mrh_puts(t, json ? "null" : "?");
    }
}

/* A stat's st_rdev, shown instead of its size for a device (the layout's first member is st_mode). */
static int put_device(mrh_text *t, const mrh_layout *l, const mrh_member *m, const unsigned char *data, size_t n)
{
    const mrh_member *mode = &l->members[0], *rdev = m->table;
    if (!rdev || (size_t)rdev->offset + rdev->size > n || (size_t)mode->offset + mode->size > n) return 0;
    uint64_t type = load_uint(data + mode->offset, mode->size) & S_IFMT;
    if (type != S_IFCHR && type != S_IFBLK) return 0;
    uint64_t dev = load_uint(data + rdev->offset, rdev->size);
    mrh_puts(t, "st_rdev=makedev(");
    mrh_put_hex(t, major(dev));
    mrh_puts(t, ", ");
    mrh_put_hex(t, minor(dev));
    put_char(t, ')');
    return 1;
}

/* {tv_sec=1, tv_nsec=2} (a line shows the first nshown members, then ...); JSON: an object of every member. */
static void put_layout(mrh_text *t, const mrh_decoders *d, const mrh_layout *l, const unsigned char *data,
                       size_t n, int json)
{
    unsigned shown = json || !l->nshown ? l->nmembers : l->nshown, written = 0;
    put_char(t, '{');
    for (unsigned i = 0; i < shown; i++) {
        const mrh_member *m = &l->members[i];
        if (!m->name[0] || (size_t)m->offset + m->size > n) continue;   /* not shown, or not all kept */
        if (written++) mrh_puts(t, json ? "," : ", ");
        if (!json && m->kind == MRH_M_SIZE_OR_RDEV && put_device(t, l, m, data, n)) continue;
        if (json) {
            put_json_name(t, m->name);
            put_char(t, ':');
        } else {
            mrh_puts(t, m->name);
            put_char(t, '=');
        }
        put_member(t, d, m, data, n, json);
    }
    if (!json && l->nshown && l->nshown < l->nmembers) mrh_puts(t, written ? ", ..." : "...");
    put_char(t, '}');
}

/* ---- numbers --------------------------------------------------------------------------------------------- */

/* As Python's repr (the shortest text that reads back as the same double). JSON has no NaN or infinities: those
 * are the strings "NaN", "Infinity", "-Infinity" (bare, as Python's json module writes them, a strict reader (jq,
 * JavaScript's JSON.parse, Go's) refused the record, or turned it into null or a finite number). */
static void put_double(mrh_text *t, double v, int json)
{
    char buf[40];
    if (isnan(v) || isinf(v)) {
        if (json)
            mrh_puts(t, isnan(v) ? "\"NaN\"" : v < 0 ? "\"-Infinity\"" : "\"Infinity\"");
        else
            mrh_puts(t, isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) break;
    }
    mrh_puts(t, buf);
    if (!strpbrk(buf, ".en")) mrh_puts(t, ".0");
}

/* ---- compound values strace decodes ------------------------------------------------------------------------ */

static int32_t load_i32(const unsigned char *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* Ints: [3, 4] (a JSON list). */
static void put_ints(mrh_text *t, const mrh_capture_header *c, int json)
{
    const unsigned char *p = mrh_capture_data(c);
    put_char(t, '[');
    for (uint32_t i = 0; i + 4 <= c->len; i += 4) {
        if (i) mrh_puts(t, json ? "," : ", ");
        mrh_put_i64(t, load_i32(p + i));
    }
    put_char(t, ']');
}

/* A wait status: [{WIFEXITED(s) && WEXITSTATUS(s) == 0}]; JSON {"exited": 0} or {"signal": "SIGTERM", ...}. */
static void put_wait_status(mrh_text *t, const mrh_decoders *d, const mrh_capture_header *c, int json)
{
    if (c->len < 4) {
        mrh_puts(t, json ? "null" : "?");
        return;
    }
    int s = load_i32(mrh_capture_data(c));
    if (json) {
        if (WIFEXITED(s)) {
            mrh_puts(t, "{\"exited\":");
            mrh_put_i64(t, WEXITSTATUS(s));
        } else if (WIFSIGNALED(s)) {
            mrh_puts(t, "{\"signal\":\"");
            put_signal(t, d, WTERMSIG(s));
            mrh_puts(t, WCOREDUMP(s) ? "\",\"core\":true" : "\"");
        } else if (WIFSTOPPED(s)) {
            mrh_puts(t, "{\"stopped\":\"");
            put_signal(t, d, WSTOPSIG(s));
            put_char(t, '"');
        } else {
            mrh_puts(t, "{\"continued\":true");
        }
        put_char(t, '}');
        return;
    }
    mrh_puts(t, "[{");
    if (WIFEXITED(s)) {
        mrh_puts(t, "WIFEXITED(s) && WEXITSTATUS(s) == ");
        mrh_put_i64(t, WEXITSTATUS(s));
    } else if (WIFSIGNALED(s)) {
        mrh_puts(t, "WIFSIGNALED(s) && WTERMSIG(s) == ");
        put_signal(t, d, WTERMSIG(s));
        if (WCOREDUMP(s)) mrh_puts(t, " && WCOREDUMP(s)");
    } else if (WIFSTOPPED(s)) {
        mrh_puts(t, "WIFSTOPPED(s) && WSTOPSIG(s) == ");
        put_signal(t, d, WSTOPSIG(s));
    } else {
        mrh_puts(t, "WIFCONTINUED(s)");
    }
    mrh_puts(t, "}]");
}

static void put_field(mrh_text *t, const char *name, int json, int first)
{
    if (!first) mrh_puts(t, json ? "," : ", ");
    if (json) {
        put_json_name(t, name);
        put_char(t, ':');
    } else {
        mrh_puts(t, name);
        put_char(t, '=');
    }
}

/* Clock ticks, with their seconds in a comment as strace adds them (100 ticks a second). */
static void put_clock_ticks(mrh_text *t, const char *name, int64_t ticks, int json)
{
    put_field(t, name, json, 0);
    mrh_put_i64(t, ticks);
    if (json || !ticks) return;
    char buf[64];
    snprintf(buf, sizeof buf, " /* %lld.%02lld s */", (long long)(ticks / 100), (long long)(ticks % 100));
    mrh_puts(t, buf);
}

/* A siginfo_t of SIGCHLD (waitid's): {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=42, si_uid=0, si_status=0,
 * si_utime=0, si_stime=0}. */
static void put_siginfo(mrh_text *t, const mrh_decoders *d, const mrh_capture_header *c, int json)
{
    siginfo_t si;
    if (c->len < sizeof si) {
        mrh_puts(t, json ? "null" : "?");
        return;
    }
    memcpy(&si, mrh_capture_data(c), sizeof si);
    put_char(t, '{');
    put_field(t, "si_signo", json, 1);
    put_signal_value(t, d, si.si_signo, json);
    put_field(t, "si_code", json, 0);
    mrh_enum codes = {d->cld_codes, NULL};
    put_enum(t, si.si_signo == SIGCHLD ? &codes : NULL, (uint64_t)(int64_t)si.si_code, sizeof si.si_code, json);
    if (si.si_signo == SIGCHLD) {
        put_field(t, "si_pid", json, 0);
        mrh_put_i64(t, si.si_pid);
        put_field(t, "si_uid", json, 0);
        mrh_put_u64(t, si.si_uid);
        put_field(t, "si_status", json, 0);
        if (si.si_code == CLD_EXITED) mrh_put_i64(t, si.si_status);
        else put_signal_value(t, d, si.si_status, json);
        put_clock_ticks(t, "si_utime", (int64_t)si.si_utime, json);
        put_clock_ticks(t, "si_stime", (int64_t)si.si_stime, json);
    }
    put_char(t, '}');
}

/* A signal set as strace shows it: [HUP INT], or ~[...] when more than half the signals are in it; JSON: the
 * names. Only the kernel's 64 signals count (glibc's sigset_t is larger: its first 8 bytes are the kernel's). */
static void put_sigset_bits(mrh_text *t, const mrh_decoders *d, uint64_t bits, int json)
{
    int count = __builtin_popcountll(bits), inverted = !json && count > 32;
    if (inverted) {
        bits = ~bits;
        put_char(t, '~');
    }
    put_char(t, '[');
    int first = 1;
    for (int sig = 1; sig <= 64; sig++) {
        if (!(bits >> (sig - 1) & 1)) continue;
        if (!first) put_char(t, json ? ',' : ' ');
        first = 0;
        size_t at = t->len;
        put_signal_value(t, d, sig, json);
        if (!json && t->len - at > 3 && !memcmp(t->p + at, "SIG", 3)) {   /* strace drops the SIG */
            memmove(t->p + at, t->p + at + 3, t->len - at - 3);
            t->len -= 3;
        }
    }
    put_char(t, ']');
}

static void put_sigset(mrh_text *t, const mrh_decoders *d, const mrh_capture_header *c, int json)
{
    uint64_t bits = 0;
    memcpy(&bits, mrh_capture_data(c), c->len < 8 ? c->len : 8);
    put_sigset_bits(t, d, bits, json);
}

/* A signal handler: SIG_DFL, SIG_IGN or SIG_ERR by name, else its address (strace's way). */
static void put_sig_handler(mrh_text *t, uint64_t h, int json)
{
    const char *name = h == (uintptr_t)SIG_DFL ? "SIG_DFL" : h == (uintptr_t)SIG_IGN ? "SIG_IGN"
                       : h == (uintptr_t)SIG_ERR ? "SIG_ERR" : NULL;
    if (!name) {
        put_pointer(t, h, json);
        return;
    }
    if (json) put_char(t, '"');
    mrh_puts(t, name);
    if (json) put_char(t, '"');
}

/* A struct sigaction (glibc's: handler, sigset_t, int flags, restorer), as strace shows the kernel's:
 * {sa_handler=SIG_IGN, sa_mask=[INT], sa_flags=SA_RESTART}, with sa_restorer only when SA_RESTORER (a kernel
 * flag glibc sets: an old action shows it) says it is there. */
static void put_sigaction(mrh_text *t, const mrh_decoders *d, const mrh_flagset *flags, const mrh_capture_header *c,
                          int json)
{
    struct sigaction sa;
    uint64_t mask = 0;
    memcpy(&sa, mrh_capture_data(c), sizeof sa);
    memcpy(&mask, &sa.sa_mask, sizeof mask);
    put_char(t, '{');
    put_field(t, "sa_handler", json, 1);
    put_sig_handler(t, (uintptr_t)sa.sa_handler, json);
    put_field(t, "sa_mask", json, 0);
    put_sigset_bits(t, d, mask, json);
    put_field(t, "sa_flags", json, 0);
    put_flags_value(t, flags, (uint32_t)sa.sa_flags, json);
    if ((uint32_t)sa.sa_flags & KERNEL_SA_RESTORER) {
        put_field(t, "sa_restorer", json, 0);
        put_pointer(t, (uintptr_t)sa.sa_restorer, json);
    }
    put_char(t, '}');
}

/* struct pollfd[]: [{fd=3, events=POLLIN|POLLPRI}] (revents: the ones that have events, for the result). */
static void put_pollfds(mrh_text *t, const mrh_decoders *d, const mrh_capture_header *c, int revents, int json)
{
    const unsigned char *p = mrh_capture_data(c);
    int shown = 0;
    put_char(t, '[');
    for (uint32_t i = 0; i + sizeof(struct pollfd) <= c->len; i += sizeof(struct pollfd)) {
        struct pollfd f;
        memcpy(&f, p + i, sizeof f);
        if (revents && !f.revents) continue;
        if (shown++) mrh_puts(t, json ? "," : ", ");
        put_char(t, '{');
        put_field(t, "fd", json, 1);
        mrh_put_i64(t, f.fd);
        put_field(t, revents ? "revents" : "events", json, 0);
        put_flags_value(t, d->poll_events, (uint16_t)(revents ? f.revents : f.events), json);
        put_char(t, '}');
    }
    put_char(t, ']');
}

/* An iovec array as MRH_CAP_IOV keeps one (len bytes of it, of an array of `full` elements): [{iov_base="hello",
 * iov_len=5}, ...] ("..." when it had more elements). */
static void put_iovec(mrh_text *t, const unsigned char *p, uint32_t len, uint32_t full, int json)
{
    const unsigned char *end = p + len;
    uint32_t shown = 0;
    put_char(t, '[');
    while ((size_t)(end - p) >= sizeof(mrh_iov_kept)) {
        mrh_iov_kept k;
        memcpy(&k, p, sizeof k);
        p += sizeof k;
        if (shown++) mrh_puts(t, json ? "," : ", ");
        put_char(t, '{');
        put_field(t, "iov_base", json, 1);
        uint32_t size = k.kept & ~MRH_IOV_UNREAD;
        if (size > (size_t)(end - p)) break;
        if (k.kept & MRH_IOV_UNREAD) put_pointer(t, k.base, json);
        else put_kept(t, p, size, k.data > size, json);
        p += MRH_ALIGN8(size);
        put_field(t, "iov_len", json, 0);
        mrh_put_u64(t, k.len);
        put_char(t, '}');
    }
    if (shown < full) put_list_cut(t, shown, json);   /* cut at -s */
    put_char(t, ']');
}

/* A part of a msghdr capture (name, control: kept bytes, or MRH_IOV_UNREAD): its bytes as shown, or its address
 * when none were kept (NULL, unreadable, or a recvmsg that failed). */
static int msg_part(const mrh_capture_header *c, uint32_t kept, uint64_t *used, const unsigned char **data)
{
    if (kept == 0 || kept == MRH_IOV_UNREAD || *used + kept > c->len) return 0;
    *data = mrh_capture_data(c) + *used;
    *used += MRH_ALIGN8(kept);
    return 1;
}

/* Control messages: [{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[3]}, ...]. As strace:
 * the data of SCM_RIGHTS (descriptors) and SCM_CREDENTIALS ({pid=, uid=, gid=}) only; a message whose length
 * runs past the control's end is the last. */
static void put_cmsgs(mrh_text *t, const mrh_msghdr_names *names, const unsigned char *p, size_t n, int json)
{
    const mrh_name *dec = names->decoded;   /* {SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS} */
    int decoding = dec && dec[0].name && dec[1].name && dec[2].name;
    size_t at = 0;
    put_char(t, '[');
    while (at + sizeof(struct cmsghdr) <= n) {
        struct cmsghdr h;
        memcpy(&h, p + at, sizeof h);
        if (at) mrh_puts(t, json ? "," : ", ");
        put_char(t, '{');
        put_field(t, "cmsg_len", json, 1);
        mrh_put_u64(t, h.cmsg_len);
        put_field(t, "cmsg_level", json, 0);
        put_enum(t, names->levels, (uint32_t)h.cmsg_level, 4, json);
        put_field(t, "cmsg_type", json, 0);
        const mrh_switch *sw = names->types;
        while (sw && sw->names && sw->key != (uint32_t)h.cmsg_level) sw++;
        if (sw && sw->names) put_enum(t, sw->names, (uint32_t)h.cmsg_type, 4, json);
        else if (json) mrh_put_i64(t, h.cmsg_type);
        else mrh_put_hex(t, (uint32_t)h.cmsg_type);   /* a level strace names no types of: the number alone */
        size_t len = h.cmsg_len < sizeof h ? sizeof h : h.cmsg_len, end = at + len < n ? at + len : n;
        const unsigned char *data = p + at + sizeof h;
        size_t ndata = end - at - sizeof h;
        if (decoding && (uint32_t)h.cmsg_level == dec[0].value && (uint32_t)h.cmsg_type == dec[1].value &&
            ndata >= sizeof(int)) {   /* (no whole descriptor: no data, as strace) */
            put_field(t, "cmsg_data", json, 0);
            put_char(t, '[');
            for (size_t i = 0; i + 4 <= ndata; i += 4) {
                if (i) mrh_puts(t, json ? "," : ", ");
                mrh_put_i64(t, load_i32(data + i));
            }
            put_char(t, ']');
        } else if (decoding && (uint32_t)h.cmsg_level == dec[0].value && (uint32_t)h.cmsg_type == dec[2].value &&
                   ndata >= sizeof(struct ucred)) {
            struct ucred cred;
            memcpy(&cred, data, sizeof cred);
            put_field(t, "cmsg_data", json, 0);
            put_char(t, '{');
            put_field(t, "pid", json, 1);
            mrh_put_i64(t, cred.pid);
            put_field(t, "uid", json, 0);
            mrh_put_u64(t, cred.uid);
            put_field(t, "gid", json, 0);
            mrh_put_u64(t, cred.gid);
            put_char(t, '}');
        }
        put_char(t, '}');
        if (h.cmsg_len < sizeof h) break;   /* a length that can't be stepped by */
        at += (len + sizeof(size_t) - 1) & ~(sizeof(size_t) - 1);   /* CMSG_NXTHDR's alignment */
    }
    put_char(t, ']');
}

/* A struct msghdr (MRH_CAP_MSG, _READ), as strace shows one: {msg_name=..., msg_namelen=110 => 5 (recvmsg: as passed,
 * then as left), msg_iov=[...], msg_iovlen=1, msg_control=[...] (when msg_controllen is), msg_controllen=..,
 * msg_flags=...}; a recvmsg that failed: {msg_namelen=N}, as passed. */
static void put_msghdr(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, unsigned index,
                       uint64_t bits, int json)
{
    const mrh_capture_header *c = mrh_capture_of(v, index, 0), *in = mrh_capture_of(v, index, 1);
    const mrh_msghdr_names *names = a->table;
    mrh_msg_kept k;
    if (!bits || !c || c->len < sizeof k) {
        put_pointer(t, bits, json);
        return;
    }
    memcpy(&k, mrh_capture_data(c), sizeof k);
    int reading = (c->kind & 0xff) == MRH_CAP_MSG_READ;
    uint32_t namelen_in = k.namelen;
    if (in && in->len >= sizeof(struct msghdr)) {
        struct msghdr m;
        memcpy(&m, mrh_capture_data(in), sizeof m);
        namelen_in = m.msg_namelen;
    }
    put_char(t, '{');
    if (reading && (v->rec->flags & (MRH_FAILED | MRH_INJECTED))) {
        put_field(t, "msg_namelen", json, 1);
        mrh_put_u64(t, namelen_in);
        put_char(t, '}');
        return;
    }
    uint64_t used = sizeof k;
    const unsigned char *name = NULL, *control = NULL;
    int has_name = msg_part(c, k.name_kept, &used, &name), has_control = msg_part(c, k.control_kept, &used, &control);
    put_field(t, "msg_name", json, 1);
    if (has_name) put_sockaddr(t, d, name, k.name_kept, json);
    else put_pointer(t, k.name, json);
    put_field(t, "msg_namelen", json, 0);
    if (!json && reading && namelen_in != k.namelen) {
        mrh_put_u64(t, namelen_in);
        mrh_puts(t, " => ");
    }
    mrh_put_u64(t, k.namelen);
    put_field(t, "msg_iov", json, 0);
    if (k.iov && k.iov_kept && used + k.iov_kept <= c->len)   /* (a size_t msg_iovlen past 2^32: still cut) */
        put_iovec(t, mrh_capture_data(c) + used, k.iov_kept, k.iovlen > UINT32_MAX ? UINT32_MAX : (uint32_t)k.iovlen,
                  json);
    else if (k.iov && !k.iovlen) mrh_puts(t, "[]");   /* none to read, as strace shows it */
    else put_pointer(t, k.iov, json);
    put_field(t, "msg_iovlen", json, 0);
    mrh_put_u64(t, k.iovlen);
    if (k.controllen) {
        put_field(t, "msg_control", json, 0);
        if (has_control && k.control_kept >= sizeof(struct cmsghdr)) put_cmsgs(t, names, control, k.control_kept, json);
        else put_pointer(t, k.control, json);
    }
    put_field(t, "msg_controllen", json, 0);
    mrh_put_u64(t, k.controllen);
    put_field(t, "msg_flags", json, 0);
    put_flags_value(t, names->flags, k.flags, json);
    put_char(t, '}');
}

/* struct epoll_event (packed: 12 bytes): {events=EPOLLIN, data={u32=3, u64=3}}. */
static void put_epoll_event(mrh_text *t, const mrh_flagset *events, const unsigned char *p, int json)
{
    uint32_t bits;
    uint64_t data;
    memcpy(&bits, p, 4);
    memcpy(&data, p + 4, 8);
    put_char(t, '{');
    put_field(t, "events", json, 1);
    put_flags_value(t, events, bits, json);
    put_field(t, "data", json, 0);
    put_char(t, '{');
    put_field(t, "u32", json, 1);
    mrh_put_u64(t, (uint32_t)data);
    put_field(t, "u64", json, 0);
    mrh_put_u64(t, data);
    mrh_puts(t, "}}");
}

/* An fd_set's descriptors, up to nfds: [3 4] (a JSON list). */
/* Bytes as numbers: [1, 0, 1], ", ..." when the record kept fewer than there were (-s). */
static void put_byte_list(mrh_text *t, const mrh_capture_header *c, int json)
{
    const unsigned char *p = mrh_capture_data(c);
    put_char(t, '[');
    for (uint32_t i = 0; i < c->len; i++) {
        if (i) mrh_puts(t, json ? "," : ", ");
        mrh_put_u64(t, p[i]);
    }
    if (c->full > c->len) put_list_cut(t, (int)c->len, json);
    put_char(t, ']');
}

/* The numbers of the bits set in n bytes: 3 4 (no brackets); returns how many. */
static int put_bit_numbers(mrh_text *t, const unsigned char *p, uint32_t n, int json)
{
    int shown = 0;
    for (uint32_t bit = 0; bit < n * 8; bit++) {
        if (!(p[bit / 8] >> (bit % 8) & 1)) continue;
        if (shown++) put_char(t, json ? ',' : ' ');
        mrh_put_u64(t, bit);
    }
    return shown;
}

static void put_fd_set(mrh_text *t, const mrh_capture_header *c, int json)
{
    put_char(t, '[');
    put_bit_numbers(t, mrh_capture_data(c), c->len, json);
    put_char(t, ']');
}

/* A CPU set: [0 1]. strace shows the first 1024 CPUs of a larger set passed, then "..." (space-separated, as the
 * list); of a set filled, the kernel's mask, which glibc extends with zeros: all of it (`whole`). */
static void put_cpu_set(mrh_text *t, const mrh_capture_header *c, int whole, int json)
{
    enum { SHOWN_BYTES = 1024 / 8 };
    uint32_t n = whole || c->len < SHOWN_BYTES ? c->len : SHOWN_BYTES;
    put_char(t, '[');
    int shown = put_bit_numbers(t, mrh_capture_data(c), n, json);
    if (!whole && c->full > SHOWN_BYTES) {
        if (json) t->cuts++;
        else mrh_puts(t, shown ? " ..." : "...");
    }
    put_char(t, ']');
}

/* A captured struct timeval: {tv_sec=0, tv_usec=998}. */
static void put_timeval(mrh_text *t, const mrh_capture_header *c, int json)
{
    struct timeval tv = {0, 0};
    memcpy(&tv, mrh_capture_data(c), c->len < sizeof tv ? c->len : sizeof tv);
    put_char(t, '{');
    put_field(t, "tv_sec", json, 1);
    mrh_put_i64(t, tv.tv_sec);
    put_field(t, "tv_usec", json, 0);
    mrh_put_i64(t, tv.tv_usec);
    put_char(t, '}');
}

/* A time as strace dates it: 2000-01-01T00:00:00+0000, in the local time zone with its offset (TZ of the
 * reader, which is the command's unless the user set them apart), with .000000005 when nsec isn't 0, between
 * open and close; none for the epoch itself or a tv_nsec no time has (strace's sprinttime_ns). */
static void put_date(mrh_text *t, int64_t sec, int64_t nsec, const char *open, const char *close)
{
    struct tm tm;
    time_t s = (time_t)sec;
    char buf[64], frac[16] = "", zone[16];
    if ((sec == 0 && nsec == 0) || nsec < 0 || nsec > 999999999) return;
    if (!localtime_r(&s, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) ||
        !strftime(zone, sizeof zone, "%z", &tm))
        return;
    if (nsec) snprintf(frac, sizeof frac, ".%09lld", (long long)nsec);
    mrh_puts(t, open);
    mrh_puts(t, buf);
    mrh_puts(t, frac);
    mrh_puts(t, zone);
    mrh_puts(t, close);
}

static void put_date_comment(mrh_text *t, int64_t sec, int64_t nsec)
{
    put_date(t, sec, nsec, " /* ", " */");
}

/* time()'s filled time_t: [946684800], its date in a comment after the number, as strace (JSON: the number). */
static void put_time(mrh_text *t, const mrh_capture_header *c, int json)
{
    int64_t sec = 0;
    memcpy(&sec, mrh_capture_data(c), c->len < sizeof sec ? c->len : sizeof sec);
    if (!json) put_char(t, '[');
    mrh_put_i64(t, sec);
    if (!json) {
        put_date_comment(t, sec, 0);
        put_char(t, ']');
    }
}

/* utimensat's times: [{tv_sec=946684800, tv_nsec=0}, UTIME_NOW], each date in a comment. */
static void put_timespecs(mrh_text *t, const mrh_capture_header *c, int json)
{
    const unsigned char *p = mrh_capture_data(c);
    put_char(t, '[');
    for (uint32_t i = 0; i + sizeof(struct timespec) <= c->len; i += sizeof(struct timespec)) {
        struct timespec ts;
        memcpy(&ts, p + i, sizeof ts);
        if (i) mrh_puts(t, json ? "," : ", ");
        if (ts.tv_nsec == UTIME_NOW || ts.tv_nsec == UTIME_OMIT) {
            const char *name = ts.tv_nsec == UTIME_NOW ? "UTIME_NOW" : "UTIME_OMIT";
            if (json) put_json_name(t, name);
            else mrh_puts(t, name);
            continue;
        }
        put_char(t, '{');
        put_field(t, "tv_sec", json, 1);
        mrh_put_i64(t, ts.tv_sec);
        put_field(t, "tv_nsec", json, 0);
        mrh_put_i64(t, ts.tv_nsec);
        put_char(t, '}');
        if (!json) put_date_comment(t, ts.tv_sec, ts.tv_nsec);
    }
    put_char(t, ']');
}

/* A struct flock: {l_type=F_WRLCK, l_whence=SEEK_SET, l_start=0, l_len=10} (l_pid too, as F_GETLK fills it). */
static void put_flock(mrh_text *t, const mrh_decoders *d, const mrh_capture_header *c, int with_pid, int json)
{
    struct flock f;
    if (c->len < sizeof f) {
        mrh_puts(t, json ? "null" : "?");
        return;
    }
    memcpy(&f, mrh_capture_data(c), sizeof f);
    mrh_enum types = {d->fcntl_lock_types, NULL}, whences = {d->whences, NULL};
    put_char(t, '{');
    put_field(t, "l_type", json, 1);
    put_enum(t, &types, (uint64_t)(int64_t)f.l_type, sizeof f.l_type, json);
    put_field(t, "l_whence", json, 0);
    put_enum(t, &whences, (uint64_t)(int64_t)f.l_whence, sizeof f.l_whence, json);
    put_field(t, "l_start", json, 0);
    mrh_put_i64(t, f.l_start);
    put_field(t, "l_len", json, 0);
    mrh_put_i64(t, f.l_len);
    if (with_pid) {
        put_field(t, "l_pid", json, 0);
        mrh_put_i64(t, f.l_pid);
    }
    put_char(t, '}');
}

/* A socket option's value: [1] for an int, {l_onoff=1, l_linger=5} for SO_LINGER, else its bytes. */
static void put_sockopt(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a,
                        const mrh_capture_header *c, int json)
{
    const unsigned char *p = mrh_capture_data(c);
    uint64_t level = a->ref < v->rec->nargs ? v->args[a->ref] : 0;
    uint64_t name = a->ref + 1u < v->rec->nargs ? v->args[a->ref + 1] : 0;
    const mrh_name *so = d->sockopt_levels_socket;   /* {SOL_SOCKET, SO_LINGER} */
    if (so && so[0].name && so[1].name && (uint32_t)level == so[0].value && (uint32_t)name == so[1].value &&
        c->len >= sizeof(struct linger)) {
        struct linger l;
        memcpy(&l, p, sizeof l);
        put_char(t, '{');
        put_field(t, "l_onoff", json, 1);
        mrh_put_i64(t, l.l_onoff);
        put_field(t, "l_linger", json, 0);
        mrh_put_i64(t, l.l_linger);
        put_char(t, '}');
    } else if (c->len == 4) {
        if (!json) put_char(t, '[');
        mrh_put_i64(t, load_i32(p));
        if (!json) put_char(t, ']');
    } else {
        put_captured(t, c, json);
    }
}

/* A length the call reads and writes: [128 => 16], or [16] when it kept it. */
static void put_length(mrh_text *t, const mrh_view *v, unsigned index, uint64_t bits, int json)
{
    const mrh_capture_header *in = mrh_capture_of(v, index, 1), *out = mrh_capture_of(v, index, 0);
    if ((!in || in->len < 4) && (!out || out->len < 4)) {
        put_pointer(t, bits, json);
        return;
    }
    int64_t before = in && in->len >= 4 ? load_i32(mrh_capture_data(in)) : 0;
    int64_t after = out && out->len >= 4 ? load_i32(mrh_capture_data(out)) : before;
    if (json) {
        mrh_put_i64(t, after);
        return;
    }
    put_char(t, '[');
    if (in && in->len >= 4 && before != after) {
        mrh_put_i64(t, before);
        mrh_puts(t, " => ");
    }
    mrh_put_i64(t, after);
    put_char(t, ']');
}

static void put_offset_number(mrh_text *t, int64_t n, int is_unsigned)
{
    if (is_unsigned) mrh_put_u64(t, (uint64_t)n);
    else mrh_put_i64(t, n);
}

/* A file offset a call reads (and may move): [0], or [0] => [3] when it was kept after the call too (JSON: the
 * last value); is_unsigned: as an unsigned number (strace's spelling of sendfile's). */
static void put_offset(mrh_text *t, const mrh_view *v, unsigned index, uint64_t bits, int is_unsigned, int json)
{
    const mrh_capture_header *in = mrh_capture_of(v, index, 1), *out = mrh_capture_of(v, index, 0);
    int64_t before, after = 0;
    if (!in || in->len < sizeof before) {
        put_pointer(t, bits, json);
        return;
    }
    memcpy(&before, mrh_capture_data(in), sizeof before);
    int moved = out && out->len >= sizeof after;
    if (moved) memcpy(&after, mrh_capture_data(out), sizeof after);
    if (json) {
        put_offset_number(t, moved ? after : before, is_unsigned);
        return;
    }
    put_char(t, '[');
    put_offset_number(t, before, is_unsigned);
    put_char(t, ']');
    if (moved) {
        mrh_puts(t, " => [");
        put_offset_number(t, after, is_unsigned);
        put_char(t, ']');
    }
}

/* ioctl's request: its name, or _IOC(dir, type, nr, size) as strace spells an unknown one. */
static void put_ioctl_request(mrh_text *t, const mrh_arg *a, uint64_t v, int json)
{
    const mrh_enum *e = a->table;
    const char *name = e ? name_of(e->names, v) : NULL;
    if (name || json) {
        put_enum(t, e, v, a->size, json);
        return;
    }
    static const char *const dirs[] = {"_IOC_NONE", "_IOC_WRITE", "_IOC_READ", "_IOC_READ|_IOC_WRITE"};
    char buf[96];
    snprintf(buf, sizeof buf, "_IOC(%s, %#x, %#x, %#x)", dirs[(v >> 30) & 3], (unsigned)(v >> 8) & 0xff,
             (unsigned)v & 0xff, (unsigned)(v >> 16) & 0x3fff);
    mrh_puts(t, buf);
}

/* prctl's option, by name (NULL: unknown). */
static const char *prctl_option(const mrh_view *v, const mrh_arg *a)
{
    const mrh_prctl_names *names = a->table;
    return names && a->ref < v->rec->nargs ? name_of(names->options, v->args[a->ref]) : NULL;
}

/* The dumpable modes (PR_SET_DUMPABLE, PR_GET_DUMPABLE's result) by strace's names: no userspace header has them. */
static const mrh_name suid_dump[] = {{"SUID_DUMP_DISABLE", 0}, {"SUID_DUMP_USER", 1}, {"SUID_DUMP_ROOT", 2},
                                     {NULL, 0}};
static const mrh_enum suid_dump_enum = {suid_dump, "SUID_DUMP_???"};

/* prctl's argument, by its option (see tracespec.PrctlArg). */
static void put_prctl_arg(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, unsigned index,
                          uint64_t bits, int json)
{
    const char *option = prctl_option(v, a);
    const mrh_capture_header *c = mrh_capture_of(v, index, 0);
    const mrh_prctl_names *names = a->table;
    if (!option) {   /* an unknown option's arguments: in hex, as strace shows them */
        if (bits && !json) mrh_put_hex(t, bits);
        else mrh_put_u64(t, bits);
    } else if (index != 1) {   /* the options that take more than one: numbers (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) */
        mrh_put_u64(t, bits);
    } else if (!strcmp(option, "PR_SET_NAME") || !strcmp(option, "PR_GET_NAME")) {
        if (c && bits) put_captured(t, c, json);
        else put_pointer(t, bits, json);
    } else if (!strcmp(option, "PR_SET_PDEATHSIG") && bits) {
        put_signal_value(t, d, (int64_t)bits, json);
    } else if (c && c->len >= 4) {   /* an int the call filled: [SIGTERM] for PR_GET_PDEATHSIG, else [0] */
        int32_t value = load_i32(mrh_capture_data(c));
        int signal = !strcmp(option, "PR_GET_PDEATHSIG") && value;
        const char *open = json ? (signal ? "\"" : "") : "[", *close = json ? open : "]";
        mrh_puts(t, open);
        if (signal) put_signal(t, d, value);
        else mrh_put_i64(t, value);
        mrh_puts(t, close);
    } else if (!strcmp(option, "PR_SET_DUMPABLE")) {
        put_enum(t, &suid_dump_enum, bits, 8, json);
    } else if (!strcmp(option, "PR_CAPBSET_READ") || !strcmp(option, "PR_CAPBSET_DROP")) {
        put_enum(t, names->capabilities, bits, 8, json);
    } else if (strstr(option, "_GET_") && strcmp(option, "PR_GET_NO_NEW_PRIVS") &&
               strcmp(option, "PR_GET_THP_DISABLE")) {
        put_pointer(t, bits, json);   /* a pointer the call fills, not kept (it failed) */
    } else {
        mrh_put_u64(t, bits);
    }
}

/* prctl's result: PR_GET_DUMPABLE's mode named, as strace: 1 (SUID_DUMP_USER). */
static void put_prctl_result(mrh_text *t, const mrh_view *v, const mrh_arg *a, uint64_t bits, int json)
{
    const char *option = prctl_option(v, a), *mode = name_of(suid_dump, bits);
    mrh_put_i64(t, (int64_t)bits);
    if (!json && mode && option && !strcmp(option, "PR_GET_DUMPABLE")) {
        mrh_puts(t, " (");
        mrh_puts(t, mode);
        put_char(t, ')');
    }
}

/* ---- one value ------------------------------------------------------------------------------------------- */

int mrh_arg_shown(const mrh_view *v, const mrh_arg *a)
{
    if (a->shown == MRH_SHOWN) return 1;
    if (a->ref >= v->rec->nargs) return 1;
    uint64_t other = v->args[a->ref];
    if (a->shown == MRH_SHOWN_IF_BITS) return (other & a->mask) != 0;
    return name_of(a->unless, other) == NULL;
}

static const char *fcntl_command(const mrh_decoders *d, const mrh_view *v, const mrh_arg *a)
{
    return a->ref < v->rec->nargs ? name_of(d->fcntl_cmds, v->args[a->ref]) : NULL;
}

/* fcntl's argument, by its command: open flags (F_SETFL), FD_CLOEXEC (F_SETFD), seals, a struct flock (a lock
 * command: captured), else a number. */
static void put_fcntl_arg(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, unsigned index,
                          uint64_t bits, int json)
{
    const char *cmd = fcntl_command(d, v, a);
    const mrh_capture_header *c = mrh_capture_of(v, index, 0);
    if (cmd && !strcmp(cmd, "F_SETFL") && d->open_flags) put_flags_value(t, d->open_flags, (uint32_t)bits, json);
    else if (cmd && !strcmp(cmd, "F_SETFD") && d->fd_flags) put_flags_value(t, d->fd_flags, (uint32_t)bits, json);
    else if (cmd && !strcmp(cmd, "F_ADD_SEALS") && d->seals) put_flags_value(t, d->seals, (uint32_t)bits, json);
    else if (c) put_flock(t, d, c, strstr(cmd ? cmd : "", "GETLK") != NULL, json);
    else if (cmd && (strstr(cmd, "LK") || !strcmp(cmd, "F_GETOWN_EX") || !strcmp(cmd, "F_SETOWN_EX")))
        put_pointer(t, bits, json);   /* a pointer that wasn't kept (the call failed) */
    else mrh_put_i64(t, (int64_t)bits);
}

/* fcntl's result, by its command: 0x8002 (flags O_RDWR|O_LARGEFILE) for F_GETFL, 0x1 (flags FD_CLOEXEC) for
 * F_GETFD, as strace shows them; a number otherwise. */
static void put_fcntl_result(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, uint64_t bits,
                             int json)
{
    const char *cmd = fcntl_command(d, v, a);
    const mrh_flagset *f = !cmd ? NULL : !strcmp(cmd, "F_GETFL") ? d->open_flags : !strcmp(cmd, "F_GETFD") ?
                           d->fd_flags : !strcmp(cmd, "F_GET_SEALS") ? d->seals : NULL;
    int64_t r = (int64_t)bits;
    if (!f || r < 0 || (r == 0 && f != d->open_flags) || json) {   /* (F_GETFL's 0 is O_RDONLY: named) */
        mrh_put_i64(t, r);
        return;
    }
    if (r) mrh_put_hex(t, bits);
    else put_char(t, '0');
    mrh_puts(t, f == d->seals ? " (seals " : " (flags ");
    put_flags(t, f, bits, json);
    put_char(t, ')');
}

/* getaddrinfo's result: 0, or -2 EAI_NONAME (Name or service not known) (JSON: the number). */
static void put_eai(mrh_text *t, const mrh_decoders *d, uint64_t bits, int json)
{
    int r = (int)(int64_t)bits;
    mrh_put_i64(t, r);
    if (json || r == 0) return;
    const char *name = name_of(d->eai, (uint64_t)(int64_t)r);
    put_char(t, ' ');
    if (name) mrh_puts(t, name);
    mrh_puts(t, name ? " (" : "(");
    mrh_puts(t, gai_strerror(r));
    put_char(t, ')');
}

/* poll's result: 1 ([{fd=3, revents=POLLIN}]), 0 (Timeout). */
static void put_poll_result(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, uint64_t bits,
                            int json)
{
    int64_t r = (int64_t)bits;
    mrh_put_i64(t, r);
    if (json || r < 0) return;
    const mrh_capture_header *fds = mrh_capture_of(v, a->ref, 0);
    if (r == 0) mrh_puts(t, " (Timeout)");
    else if (fds) {
        mrh_puts(t, " (");
        put_pollfds(t, d, fds, 1, 0);
        put_char(t, ')');
    }
}

/* select's result: 1 (in [3], out [4], left {tv_sec=0, tv_usec=998}), 0 (Timeout); the sets as the call left
 * them (arguments 1 to 3), the timeout's rest (argument 4). */
static void put_select_result(mrh_text *t, const mrh_view *v, uint64_t bits, int json)
{
    int64_t r = (int64_t)bits;
    mrh_put_i64(t, r);
    if (json || r < 0) return;
    if (r == 0) {
        mrh_puts(t, " (Timeout)");
        return;
    }
    static const char *const names[] = {"in", "out", "except"};
    int written = 0;
    for (unsigned i = 1; i <= 3; i++) {
        const mrh_capture_header *set = mrh_capture_of(v, i, 0);
        if (!set) continue;
        const unsigned char *p = mrh_capture_data(set);
        int any = 0;
        for (uint32_t k = 0; k < set->len && !any; k++) any = p[k] != 0;
        if (!any) continue;
        mrh_puts(t, written++ ? ", " : " (");
        mrh_puts(t, names[i - 1]);
        put_char(t, ' ');
        put_fd_set(t, set, 0);
    }
    const mrh_capture_header *left = mrh_capture_of(v, 4, 0);
    if (left) {
        mrh_puts(t, written++ ? ", left " : " (left ");
        put_timeval(t, left, 0);
    }
    if (written) put_char(t, ')');
}

void mrh_show_value(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, unsigned index,
                    uint64_t bits, int json)
{
    const mrh_capture_header *c;
    /* The record keeps a value sign- or zero-extended from its C type, as the type says; bits are the type's
     * own bits only (a flag in an int's top bit is not 32 more flags). */
    if (a->size && a->size < 8 && (a->kind == MRH_K_FLAGS || a->kind == MRH_K_MODE || a->kind == MRH_K_ID ||
                                   a->kind == MRH_K_UINT))
        bits &= ((uint64_t)1 << (8 * a->size)) - 1;
    switch (a->kind) {
    case MRH_K_INT:
    case MRH_K_FD:
        mrh_put_i64(t, (int64_t)bits);
        return;
    case MRH_K_UINT:
        mrh_put_u64(t, bits);
        return;
    case MRH_K_DOUBLE: {
        double f;
        memcpy(&f, &bits, 8);
        put_double(t, f, json);
        return;
    }
    case MRH_K_DIRFD:
        if ((int64_t)bits == d->at_fdcwd) mrh_puts(t, json ? "\"AT_FDCWD\"" : "AT_FDCWD");
        else mrh_put_i64(t, (int64_t)bits);
        return;
    case MRH_K_MODE:
        if (json) put_char(t, '"');
        if (bits) {
            put_char(t, '0');
            put_octal(t, bits);
        } else {
            mrh_puts(t, "000");
        }
        if (json) put_char(t, '"');
        return;
    case MRH_K_ID:   /* uid_t and gid_t: -1 (all ones) is "none" */
        if (a->size && a->size < 8 && bits == ((uint64_t)1 << (8 * a->size)) - 1) mrh_puts(t, "-1");
        else mrh_put_u64(t, bits);
        return;
    case MRH_K_ENUM:
        put_enum(t, a->table, bits, a->size, json);
        return;
    case MRH_K_ENUM_BY: {
        uint64_t key = a->ref < v->rec->nargs ? v->args[a->ref] : ~(uint64_t)0;
        const mrh_switch *sw = a->table;
        while (sw && sw->names && sw->key != key) sw++;
        put_enum(t, sw ? sw->names : NULL, bits, a->size, json);
        return;
    }
    case MRH_K_FLAGS:
        put_flags_value(t, a->table, bits, json);
        return;
    case MRH_K_IOCTL_REQUEST:
        put_ioctl_request(t, a, bits, json);
        return;
    case MRH_K_IOCTL_ARG:
        c = mrh_capture_of(v, index, 0);
        if (c && c->len == 8) {   /* a struct winsize (TIOCGWINSZ, TIOCSWINSZ): four unsigned shorts */
            static const char *const ws[] = {"ws_row", "ws_col", "ws_xpixel", "ws_ypixel"};
            put_char(t, '{');
            for (int k = 0; k < 4; k++) {
                put_field(t, ws[k], json, k == 0);
                mrh_put_u64(t, load16(mrh_capture_data(c) + 2 * k));
            }
            put_char(t, '}');
        } else if (c && c->len >= 4) {
            if (!json) put_char(t, '[');
            mrh_put_i64(t, load_i32(mrh_capture_data(c)));
            if (!json) put_char(t, ']');
        } else if ((a->ref < v->rec->nargs && name_of(a->table, v->args[a->ref])) || bits == 0) {
            mrh_put_i64(t, (int64_t)bits);   /* a number (0: no argument's address) */
        } else {
            put_pointer(t, bits, json);
        }
        return;
    case MRH_K_FCNTL_RESULT:
        put_fcntl_result(t, d, v, a, bits, json);
        return;
    case MRH_K_ERRNO_RESULT:   /* an error number as the result (posix_fadvise): 29 ESPIPE (Illegal seek) */
        mrh_put_i64(t, (int64_t)bits);
        if (!json && (int64_t)bits > 0 && (int64_t)bits < 4096) {
            put_char(t, ' ');
            mrh_show_errno(t, d, (int)(int64_t)bits, 0);
        }
        return;
    case MRH_K_TIME_RESULT:   /* 946684800 (2000-01-01T00:00:00+0000); a failure's -1 plain */
        mrh_put_i64(t, (int64_t)bits);
        if (!json && (int64_t)bits >= 0) put_date(t, (int64_t)bits, 0, " (", ")");
        return;
    case MRH_K_EAI:
        put_eai(t, d, bits, json);
        return;
    case MRH_K_POLL_RESULT:
        put_poll_result(t, d, v, a, bits, json);
        return;
    case MRH_K_SELECT_RESULT:
        put_select_result(t, v, bits, json);
        return;
    case MRH_K_LENGTH:
        put_length(t, v, index, bits, json);
        return;
    case MRH_K_PRCTL_ARG:
        put_prctl_arg(t, d, v, a, index, bits, json);
        return;
    case MRH_K_PRCTL_RESULT:
        put_prctl_result(t, v, a, bits, json);
        return;
    case MRH_K_MSGHDR:
        put_msghdr(t, d, v, a, index, bits, json);
        return;
    case MRH_K_OFFSET:
    case MRH_K_OFFSET_UNSIGNED:
        put_offset(t, v, index, bits, a->kind == MRH_K_OFFSET_UNSIGNED, json);
        return;
    case MRH_K_SIG_HANDLER:
        put_sig_handler(t, bits, json);
        return;
    case MRH_K_SIGNAL:
        put_signal_value(t, d, (int64_t)bits, json);
        return;
    case MRH_K_FCNTL_ARG:
        put_fcntl_arg(t, d, v, a, index, bits, json);
        return;
    case MRH_K_VOID:
        mrh_puts(t, json ? "null" : "?");
        return;
    }
    /* What was kept of the memory it points to: as it was passed, if it was kept so (select's sets), else
     * after the call; nothing (NULL, a failed call's output): the address. (A wait's NULL status has one: the
     * runtime's own, for the reader; the line says NULL.) */
    if (bits == 0 && index != MRH_RET) {
        put_pointer(t, 0, json);
        return;
    }
    c = mrh_capture_of(v, index, 1);
    if (!c) c = mrh_capture_of(v, index, 0);
    if (!c || (c->len == 0 && a->kind != MRH_K_STRING && a->kind != MRH_K_BYTES && a->kind != MRH_K_ENVP &&
               a->kind != MRH_K_IOVEC && a->kind != MRH_K_EPOLL_EVENTS && a->kind != MRH_K_BYTE_LIST &&
               a->kind != MRH_K_ARGV)) {
        put_pointer(t, bits, json);
        return;
    }
    switch (a->kind) {
    case MRH_K_STRING:
    case MRH_K_BYTES:
        put_captured(t, c, json);
        return;
    case MRH_K_SOCKADDR:
        put_sockaddr(t, d, mrh_capture_data(c), c->len, json);
        return;
    case MRH_K_ARGV:
        put_argv(t, c, json);
        return;
    case MRH_K_ENVP:
        if (json) {
            mrh_puts(t, "{\"pointer\":");
            put_pointer(t, bits, 1);
            mrh_puts(t, ",\"count\":");
            mrh_put_u64(t, c->full);
            put_char(t, '}');
        } else {
            put_pointer(t, bits, 0);
            mrh_puts(t, " /* ");
            mrh_put_u64(t, c->full);
            mrh_puts(t, c->full == 1 ? " var */" : " vars */");   /* strace's singular */
        }
        return;
    case MRH_K_STRUCT:
        put_layout(t, d, a->table, mrh_capture_data(c), c->len, json);
        return;
    case MRH_K_INTS:
        put_ints(t, c, json);
        return;
    case MRH_K_SOCKOPT:
        put_sockopt(t, d, v, a, c, json);
        return;
    case MRH_K_WAIT_STATUS:
        put_wait_status(t, d, c, json);
        return;
    case MRH_K_SIGINFO:
        put_siginfo(t, d, c, json);
        return;
    case MRH_K_SIGSET:
        put_sigset(t, d, c, json);
        return;
    case MRH_K_SIGACTION:
        if (c->len < sizeof(struct sigaction)) put_pointer(t, bits, json);
        else put_sigaction(t, d, a->table, c, json);
        return;
    case MRH_K_POLLFDS:
        put_pollfds(t, d, c, 0, json);
        return;
    case MRH_K_IOVEC:
        put_iovec(t, mrh_capture_data(c), c->len, c->full, json);
        return;
    case MRH_K_EPOLL_EVENT:
        if (c->len < 12) {
            put_pointer(t, bits, json);
            return;
        }
        put_epoll_event(t, a->table, mrh_capture_data(c), json);
        return;
    case MRH_K_EPOLL_EVENTS:
        put_char(t, '[');
        for (uint32_t i = 0; i + 12 <= c->len; i += 12) {
            if (i) mrh_puts(t, json ? "," : ", ");
            put_epoll_event(t, a->table, mrh_capture_data(c) + i, json);
        }
        if (c->full > c->len) put_list_cut(t, c->len >= 12, json);   /* more than the record kept */
        put_char(t, ']');
        return;
    case MRH_K_FD_SET:
        put_fd_set(t, c, json);
        return;
    case MRH_K_BYTE_LIST:
        put_byte_list(t, c, json);
        return;
    case MRH_K_CPU_SET:
    case MRH_K_CPU_SET_OUT:
        put_cpu_set(t, c, a->kind == MRH_K_CPU_SET_OUT, json);
        return;
    case MRH_K_TIMESPECS:
        put_timespecs(t, c, json);
        return;
    case MRH_K_TIME:
        put_time(t, c, json);
        return;
    default:
        put_pointer(t, bits, json);
    }
}

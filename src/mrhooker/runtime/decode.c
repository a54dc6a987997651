/* decode.c (mrhooker's side): one value of a recorded call, as a line shows it (strace's spelling) or as JSON.
 *
 * Every kind of value is one case here, written once for both forms; decoders.c (generated per trace) says
 * which kind each argument is and gives the tables of names, with the values the system headers define.
 * Values come from the traced processes' memory: every length is checked against what the record holds.
 */
#define _GNU_SOURCE
#include "reader.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
 * backslash is doubled, so the two can't be confused. */

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

static void put_flags(mrh_text *t, const mrh_flagset *f, uint64_t v)
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
        if (parts++) put_char(t, '|');
        mrh_put_hex(t, v);
    }
    if (t->len == start) mrh_puts(t, f->zero ? f->zero : "0");
}

/* Signals by name, real-time ones as strace names them (SIGRT_n counts from the kernel's SIGRTMIN, 32). */
static void put_signal(mrh_text *t, const mrh_decoders *d, int64_t sig)
{
    const char *name = name_of(d->signals, (uint64_t)sig);
    if (name) mrh_puts(t, name);
    else if (sig >= 32 && sig <= 64) {
        mrh_puts(t, "SIGRT_");
        mrh_put_i64(t, sig - 32);
    } else {
        mrh_put_i64(t, sig);
    }
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

const mrh_capture_header *mrh_capture_of(const mrh_view *v, unsigned which)
{
    for (int i = 0; i < v->ncaps; i++)
        if (v->caps[i]->which == which) return v->caps[i];
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

/* A captured string or buffer, "..." after it when the data had more than the record kept. */
static void put_captured(mrh_text *t, const mrh_capture_header *c, int json)
{
    const unsigned char *data = mrh_capture_data(c);
    int cut = c->full > c->len;
    if (json) {
        size_t start = t->len;
        quote_json(t, data, c->len);
        if (cut && t->len > start) {   /* the dots inside the JSON string */
            t->len--;
            mrh_put(t, "...\"", 4);
        }
        return;
    }
    quote_text(t, data, c->len);
    if (cut) mrh_put(t, "...", 3);
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
        if (json) {
            size_t start = t->len;
            quote_json(t, s, n);
            if (cut && t->len > start) {
                t->len--;
                mrh_put(t, "...\"", 4);
            }
        } else {
            quote_text(t, s, n);
            if (cut) mrh_put(t, "...", 3);
        }
        data = s + n + 1;
    }
    if (c->full > shown) {
        if (shown) mrh_puts(t, json ? "," : ", ");
        mrh_puts(t, json ? "\"...\"" : "...");
    }
    put_char(t, ']');
}

static uint16_t load16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* A socket address, as strace shows it: {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("1.2.3.4")};
 * JSON: {"family": "AF_INET", "address": "1.2.3.4", "port": 80} (or "path" for AF_UNIX). */
static void put_sockaddr(mrh_text *t, const mrh_decoders *d, const mrh_capture_header *c, int json)
{
    const unsigned char *a = mrh_capture_data(c);
    size_t n = c->len;
    if (n < 2) {
        mrh_puts(t, json ? "{\"family\":null}" : "{}");
        return;
    }
    unsigned family = load16(a);
    const char *name = name_of(d->families, family);
    char number[24];
    if (!name) {
        snprintf(number, sizeof number, "%u", family);
        name = number;
    }
    mrh_puts(t, json ? "{\"family\":\"" : "{sa_family=");
    mrh_puts(t, name);
    if (json) put_char(t, '"');
    char address[INET6_ADDRSTRLEN];
    if (family == AF_INET && n >= 8) {
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
            mrh_puts(t, "\", &sin6_addr), sin6_scope_id=");
            mrh_put_u64(t, scope);
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
        } else if (len || !abstract) {
            mrh_puts(t, ", sun_path=");
            if (abstract) put_char(t, '@');
            quote_text(t, path, len);
        }
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
    mrh_puts(t, "|0");
    put_octal(t, mode & 07777);
}

static void put_layout(mrh_text *t, const mrh_decoders *d, const mrh_layout *l, const unsigned char *data,
                       size_t n, int json);

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
    case MRH_M_STRUCT: put_layout(t, d, m->nested, p, n - m->offset, json); break;
    default: mrh_puts(t, json ? "null" : "?");
    }
}

/* {tv_sec=1, tv_nsec=2} (a line shows the first nshown members, then ...); JSON: an object of every member. */
static void put_layout(mrh_text *t, const mrh_decoders *d, const mrh_layout *l, const unsigned char *data,
                       size_t n, int json)
{
    unsigned shown = json || !l->nshown ? l->nmembers : l->nshown, written = 0;
    put_char(t, '{');
    for (unsigned i = 0; i < shown; i++) {
        const mrh_member *m = &l->members[i];
        if ((size_t)m->offset + m->size > n) continue;   /* not all kept */
        if (written++) mrh_puts(t, json ? "," : ", ");
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

/* As Python's repr (the shortest text that reads back as the same double); JSON as Python's json module. */
static void put_double(mrh_text *t, double v, int json)
{
    char buf[40];
    if (isnan(v)) {
        mrh_puts(t, "NaN");
        return;
    }
    if (isinf(v)) {
        mrh_puts(t, v < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"));
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) break;
    }
    mrh_puts(t, buf);
    if (!strpbrk(buf, ".en")) mrh_puts(t, ".0");
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

static void put_fcntl_arg(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, uint64_t bits,
                          int json)
{
    const char *cmd = a->ref < v->rec->nargs ? name_of(d->fcntl_cmds, v->args[a->ref]) : NULL;
    if (cmd && !strcmp(cmd, "F_SETFL") && d->open_flags) {
        if (json) put_char(t, '"');
        put_flags(t, d->open_flags, bits);
        if (json) put_char(t, '"');
    } else if (cmd && !strcmp(cmd, "F_SETFD")) {
        if (json) put_char(t, '"');
        if (bits == 1) mrh_puts(t, "FD_CLOEXEC");
        else mrh_put_u64(t, bits);
        if (json) put_char(t, '"');
    } else if (cmd && (!strncmp(cmd, "F_SETLK", 7) || !strncmp(cmd, "F_GETLK", 7) || !strncmp(cmd, "F_OFD_", 6))) {
        put_pointer(t, bits, json);
    } else {
        mrh_put_i64(t, (int64_t)bits);
    }
}

void mrh_show_value(mrh_text *t, const mrh_decoders *d, const mrh_view *v, const mrh_arg *a, unsigned index,
                    uint64_t bits, int json)
{
    const mrh_capture_header *c;
    if (a->size && a->size < 8) {   /* names and unsigned numbers: the type's own bits */
        uint64_t mask = ((uint64_t)1 << (8 * a->size)) - 1;
        if (a->kind != MRH_K_INT && a->kind != MRH_K_FD && a->kind != MRH_K_DIRFD) bits &= mask;
    }
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
    case MRH_K_ENUM: {
        const char *name = name_of(a->table, bits);
        if (json) put_char(t, '"');
        if (name) mrh_puts(t, name);
        else mrh_put_i64(t, (int64_t)bits);
        if (json) put_char(t, '"');
        return;
    }
    case MRH_K_FLAGS:
        if (json) put_char(t, '"');
        put_flags(t, a->table, bits);
        if (json) put_char(t, '"');
        return;
    case MRH_K_SIGNAL:
        if (json) put_char(t, '"');
        put_signal(t, d, (int64_t)bits);
        if (json) put_char(t, '"');
        return;
    case MRH_K_FCNTL_ARG:
        put_fcntl_arg(t, d, v, a, bits, json);
        return;
    case MRH_K_VOID:
        mrh_puts(t, json ? "null" : "?");
        return;
    }
    c = mrh_capture_of(v, index);
    if (!c) {   /* nothing kept (NULL, a failed call's output): the address */
        put_pointer(t, bits, json);
        return;
    }
    switch (a->kind) {
    case MRH_K_STRING:
    case MRH_K_BYTES:
        put_captured(t, c, json);
        return;
    case MRH_K_SOCKADDR:
        put_sockaddr(t, d, c, json);
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
            mrh_puts(t, " vars */");
        }
        return;
    case MRH_K_STRUCT:
        if (c->len == 0) put_pointer(t, bits, json);
        else put_layout(t, d, a->table, mrh_capture_data(c), c->len, json);
        return;
    default:
        put_pointer(t, bits, json);
    }
}

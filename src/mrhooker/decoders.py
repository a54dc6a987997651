"""decoders.c of a trace build: for reader.c, how each traced function's arguments and result are shown.

Data only, written from the trace's plans (tracespec) and the headers' constants (tracing.symbols): one mrh_fn
per function, its mrh_arg per argument, and the tables of names and struct layouts the kinds use, each written
once. The C compiler checks it against runtime/reader.h, which defines every type it fills in; the file stays in
the build directory, where it can be read.
"""
from mrhooker import tracespec
from mrhooker.codegen import c_string

_M_KINDS = {"int": "MRH_M_INT", "uint": "MRH_M_UINT", "float": "MRH_M_FLOAT", "pointer": "MRH_M_POINTER",
            "struct": "MRH_M_STRUCT"}
# A line shows these members of a struct, then "...", where strace abbreviates; others show every member.
_MEMBERS_SHOWN = {"struct stat": ("st_mode", "st_size"), "struct stat64": ("st_mode", "st_size"),
                  "struct statx": ("stx_mask", "stx_attributes", "stx_mode", "stx_size"),
                  "struct utsname": ("sysname", "nodename")}
# Members shown by a kind of their own: {member: (MRH_M_*, its table: a Flags kind, or the member it reads)}.
_MEMBER_KINDS = {"st_mode": ("MRH_M_FILE_MODE", None), "stx_mode": ("MRH_M_FILE_MODE", None),
                 "st_size": ("MRH_M_SIZE_OR_RDEV", "st_rdev"), "stx_mask": ("MRH_M_FLAGS", tracespec.STATX_MASK),
                 "stx_attributes": ("MRH_M_FLAGS", tracespec.STATX_ATTRS),
                 "stx_attributes_mask": ("MRH_M_FLAGS", tracespec.STATX_ATTRS),
                 "rlim_cur": ("MRH_M_RLIM", None), "rlim_max": ("MRH_M_RLIM", None),
                 "f_type": ("MRH_M_ENUM", tracespec.FS_MAGIC), "f_flags": ("MRH_M_FLAGS", tracespec.STATFS_FLAGS),
                 "f_fsid": ("MRH_M_FSID", None)}
_U64 = (1 << 64) - 1


def _ordered_bits(pairs):
    """(name, value) pairs in the order given, except that a name whose bits include another's comes before it
    (O_SYNC before O_DSYNC, O_TMPFILE before O_DIRECTORY): the bigger name takes its bits first."""
    ordered = []
    for name, value in pairs:
        at = len(ordered)
        for i, (_other, smaller) in enumerate(ordered):
            if smaller != value and smaller & value == smaller:   # ours contains theirs: go before it
                at = min(at, i)
        ordered.insert(at, (name, value))
    return ordered


class Tables:
    """The tables of a decoders.c, each written once, named by what they hold."""

    def __init__(self, symbols, layouts):
        self.symbols = symbols
        self.layouts = layouts
        self.lines = []
        self.made = set()

    def names(self, ident, pairs):
        if ident not in self.made:
            self.made.add(ident)
            rows = ["    {%s, 0x%xULL}," % (c_string(name), value & _U64) for name, value in pairs]
            self.lines += ["static const mrh_name %s[] = {" % ident] + rows + ["    {NULL, 0},", "};", ""]
        return ident

    def values(self, ident, names):
        """A uint64_t array of constants' values (a capture's only_if values); (C name, how many)."""
        found = [(n, self.symbols[n]) for n in names if n in self.symbols]
        if ident not in self.made:
            self.made.add(ident)
            self.lines += ["static const uint64_t %s[] = {%s};   /* %s */" % (
                ident, ", ".join("0x%xULL" % (v & _U64) for _n, v in found) or "0", " ".join(n for n, _v in found)),
                ""]
        return ident, len(found)

    def by_prefix(self, prefix, names=(), exclude=(), preferred=()):
        """[(name, value)] of the names given and those with the prefix, one name per value (the first given,
        else the preferred, else the first in order), by value."""
        chosen = {}
        listed = [n for n in names if n in self.symbols]
        candidates = listed + sorted(n for n in self.symbols if prefix and n.startswith(prefix) and n not in names)
        for name in candidates:
            value = self.symbols[name]
            if name in exclude:
                continue
            if value not in chosen or (name in preferred and chosen[value] not in preferred
                                       and chosen[value] not in listed):
                chosen[value] = name
        return sorted(((name, value) for value, name in chosen.items()), key=lambda item: item[1])

    def enum(self, kind):
        ident = "enum_" + kind.name
        if ident not in self.made:
            pairs = self.by_prefix(kind.prefix, kind.names, kind.exclude, kind.preferred)
            named = {value for _, value in pairs}
            pairs = sorted(pairs + [(n, v) for n, v in kind.kernel.items() if v not in named], key=lambda p: p[1])
            names = self.names("names_" + kind.name, pairs)
            self.made.add(ident)
            self.lines += ["static const mrh_enum %s = {%s, %s};" % (
                ident, names, c_string(kind.unknown) if kind.unknown else "NULL"), ""]
        return "&" + ident

    def switch(self, kind):
        ident = "switch_" + kind.name
        if ident not in self.made:
            rows = ["    {0x%xULL, %s}," % (self.symbols[key] & _U64, self.enum(names))
                    for key, names in kind.cases.items() if key in self.symbols]
            self.made.add(ident)
            self.lines += ["static const mrh_switch %s[] = {" % ident] + rows + ["    {0, NULL},", "};", ""]
        return ident

    def flagset(self, kind):
        ident = "flags_" + kind.name
        if ident in self.made:
            return "&" + ident

        def value(name):
            return self.symbols.get(name) or kind.kernel.get(name)
        if kind.bits is not None:
            pairs = [(n, value(n)) for n in kind.bits if value(n)]
        else:   # every name with the prefix that is bits, by its lowest bit, the names of more bits first
            pairs = sorted(self.by_prefix(kind.prefix, exclude=kind.exclude), key=lambda p: (p[1] & -p[1],
                                                                                             -bin(p[1]).count("1")))
        pairs = [(kind.spellings.get(n, n), v) for n, v in _ordered_bits(pairs)]
        bits = self.names("bits_" + kind.name, pairs)
        low = "NULL"
        if kind.low:
            low = self.names("low_" + kind.name, [(n, self.symbols[n]) for n in kind.low if n in self.symbols])
        self.made.add(ident)
        self.lines += ["static const mrh_flagset %s = {%s, 0x%xULL, %s, %s, %s};" % (
            ident, low, kind.low_mask, bits, c_string(kind.zero) if kind.zero else "NULL",
            c_string(kind.unknown) if kind.unknown else "NULL"), ""]
        return "&" + ident

    def layout(self, name, layout=None):
        layout = layout or self.layouts[name]
        ident = "layout_" + "".join(ch if ch.isalnum() else "_" for ch in name)
        if ident in self.made:
            return "&" + ident
        self.made.add(ident)
        fields = layout["fields"]
        shown = [m for m in _MEMBERS_SHOWN.get(name, ()) if m in fields]
        order = shown + [m for m in fields if m not in shown]   # a line shows the first nshown members
        members, rows = [], {}
        for member in order:
            field = fields[member]
            kind, table = _M_KINDS.get(field["kind"]), "NULL"
            special = _MEMBER_KINDS.get(member)
            if field["kind"] == "struct" and not special:
                table = self.layout(name + "." + member, field)
            elif (field["kind"] == "array" and field["element"]["kind"] in ("int", "uint")
                  and field["element"]["size"] == 1):
                kind = "MRH_M_CHARS"   # char[]: a string (utsname's)
            if special and kind:
                kind, extra = special
                if isinstance(extra, tracespec.Flags):
                    table = self.flagset(extra)
                elif isinstance(extra, tracespec.Enum):
                    table = self.enum(extra)
                elif extra:   # another member it reads: st_rdev
                    table = "&%s_members[%d]" % (ident, order.index(extra)) if extra in order else "NULL"
            if kind is None:
                continue   # not shown: bitfields, other arrays, opaque members
            rows[member] = "    {%s, %d, %d, %s, %s}," % (c_string(member), field["offset"], field["size"], kind, table)
            members.append(member)
        # references between members are by index in this array: keep it as `order` (unshown ones as empty rows)
        lines = [rows.get(m, '    {"", 0, 0, MRH_M_POINTER, NULL},') for m in order]
        self.lines += ["static const mrh_member %s_members[] = {" % ident] + (lines or ['    {"", 0, 0, 0, NULL},'])
        self.lines += ["};", "static const mrh_layout %s = {%s, %d, %d, %d, %s_members};" % (
            ident, c_string(name), layout["size"], len(order), len(shown), ident), ""]
        return "&" + ident


def _arg(kind, ctype, tables):
    shown, ref, mask, unless = kind.shown_if(tables.symbols)
    unless_table = "NULL"
    if unless:
        unless_table = tables.names("unless_" + kind.name, [(n, tables.symbols[n]) for n in unless
                                                            if n in tables.symbols])
    if shown == "MRH_SHOWN":
        ref = kind.ref
    return "{%s, %d, %s, %d, %s, 0x%xULL, %s}" % (kind.reader, ctype.size if ctype.kind == "int" else 8, shown, ref,
                                                  kind.table(tables), mask & _U64, unless_table)


def source(plans, symbols, layouts):
    """decoders.c for plans ([tracespec.Plan], in slot order)."""
    tables = Tables(symbols, layouts)
    fns = []
    body = []
    for slot, plan in enumerate(plans):
        params = plan.params
        args = [_arg(kind, params[i].type, tables) for i, kind in enumerate(plan.kinds)]
        body += ["/* %s */" % plan.proto.text.replace("*/", "* /")]
        if args:
            body += ["static const mrh_arg args_%d[] = {%s};" % (slot, ", ".join(args))]
        body += ["static const char *const params_%d[] = {%s};" % (
            slot, ", ".join(c_string(p.name) for p in params) or "NULL")]
        flags = " | ".join(f for f, on in (("MRH_FN_EXEC", plan.exec), ("MRH_FN_MAY_DIE", plan.may_die),
                                            ("MRH_FN_WAIT", plan.wait), ("MRH_FN_HIDDEN", plan.hidden)) if on) or "0"
        fns.append("    {%s, %d, %s, %s, %s, params_%d}," % (
            c_string(plan.symbol), len(args), flags, "args_%d" % slot if args else "NULL",
            _arg(plan.ret, plan.proto.ret, tables), slot))
        body.append("")
    t = tables
    errno_values = tracespec.errno_values(symbols)   # (the one rule of which E-names are errnos)
    errnos = t.names("errno_names", t.by_prefix("E", exclude=tuple(n for n in symbols if n not in errno_values),
                                                preferred=("EAGAIN", "EDEADLK", "EOPNOTSUPP")))
    signals = t.names("signal_names", t.by_prefix(
        "SIG", exclude=tuple(n for n in symbols if n.startswith(("SIG_", "SIGEV_", "SIGRTMIN", "SIGRTMAX",
                                                                 "SIGSTKSZ"))),
        preferred=("SIGCHLD", "SIGIO", "SIGABRT", "SIGSYS")))
    families = t.names("names_address_family", t.by_prefix("AF_", preferred=("AF_UNIX",)))
    file_types = t.names("file_types", [(n, v) for n, v in sorted(symbols.items())
                                        if n.startswith("S_IF") and n != "S_IFMT"])
    fcntl_cmds = t.names("names_fcntl_cmd", t.by_prefix(None, tracespec.FCNTL_CMD.names))
    sol_socket = t.names("sol_socket_linger", [(n, symbols[n]) for n in ("SOL_SOCKET", "SO_LINGER") if n in symbols])
    out = ["/* Generated by mrhooker: how reader.c shows the calls of one trace build (see runtime/reader.h). */",
           '#include "reader.h"', ""]
    globals_ = [
        "fns", "%d" % len(plans), errnos, signals, families, file_types, "%dLL" % symbols.get("AT_FDCWD", -100),
        "0x%xULL" % symbols.get("S_IFMT", 0o170000), fcntl_cmds, t.flagset(tracespec.OPEN_FLAGS),
        t.flagset(tracespec.CLOEXEC_FLAG), t.flagset(tracespec.SEALS),
        t.names("names_eai", t.by_prefix("EAI_")), t.names("names_lock_types", t.by_prefix(None, tracespec.LOCK_TYPES.names)),
        t.names("names_whence", t.by_prefix("SEEK_", preferred=("SEEK_SET",))),
        t.names("names_cld_codes", t.by_prefix(None, tracespec.CLD_CODES.names)), t.flagset(tracespec.POLL_EVENTS),
        sol_socket]
    out += tables.lines + body
    out += ["static const mrh_fn fns[] = {"] + (fns or ["    {NULL, 0, 0, NULL, {0}, NULL},"]) + ["};", ""]
    out += ["const mrh_decoders mrh_trace_decoders = {%s};" % ", ".join(globals_), ""]
    return "\n".join(out)

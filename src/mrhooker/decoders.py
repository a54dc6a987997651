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
                  "struct utsname": ("sysname", "nodename")}
_U64 = (1 << 64) - 1


def _ordered_bits(names, symbols):
    """Flag names with their values, in the order given, except that a name whose bits include another's comes
    before it (O_SYNC before O_DSYNC, O_TMPFILE before O_DIRECTORY): the bigger name takes its bits first."""
    items = [(n, symbols[n]) for n in names if symbols.get(n)]
    ordered = []
    for name, value in items:
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
        self.made = {}

    def _names(self, ident, pairs):
        if ident not in self.made:
            self.made[ident] = ident
            rows = ["    {%s, 0x%xULL}," % (c_string(name), value & _U64) for name, value in pairs]
            self.lines += ["static const mrh_name %s[] = {" % ident] + rows + ["    {NULL, 0},", "};", ""]
        return ident

    def by_prefix(self, prefix, names=(), exclude=(), preferred=()):
        """name -> value for the names given and those with the prefix, one name per value (the preferred)."""
        chosen = {}
        candidates = list(names) + sorted(n for n in self.symbols if prefix and n.startswith(prefix))
        for name in candidates:
            value = self.symbols.get(name)
            if value is None or name in exclude:
                continue
            if value not in chosen or name in preferred and chosen[value] not in preferred:
                chosen[value] = name
        return sorted(((name, value) for value, name in chosen.items()), key=lambda item: item[1])

    def enum(self, kind):
        return self._names("names_" + kind.name, self.by_prefix(kind.prefix, kind.names or (), kind.exclude,
                                                                kind.preferred))

    def flagset(self, kind):
        ident = "flags_" + kind.name
        if ident in self.made:
            return "&" + ident
        if kind.bits is not None:
            bits = _ordered_bits(kind.bits, self.symbols)
        else:   # every single- or multi-bit name with the prefix, by value
            pairs = self.by_prefix(kind.prefix, exclude=kind.exclude)
            bits = _ordered_bits([n for n, _v in sorted(pairs, key=lambda p: (p[1] & -p[1], -bin(p[1]).count("1")))],
                                 self.symbols)
        bits_ident = self._names("bits_" + kind.name, bits)
        low = "NULL"
        if kind.low:
            low = self._names("low_" + kind.name, [(n, self.symbols[n]) for n in kind.low if n in self.symbols])
        self.made[ident] = ident
        self.lines += ["static const mrh_flagset %s = {%s, 0x%xULL, %s, %s};" % (
            ident, low, kind.low_mask, bits_ident, c_string(kind.zero) if kind.zero else "NULL"), ""]
        return "&" + ident

    def layout(self, name, layout=None):
        layout = layout or self.layouts[name]
        ident = "layout_" + "".join(ch if ch.isalnum() else "_" for ch in name)
        if ident in self.made:
            return "&" + ident
        self.made[ident] = ident
        members = []
        for member, field in layout["fields"].items():
            kind = _M_KINDS.get(field["kind"])
            nested = "NULL"
            if field["kind"] == "struct":
                nested = self.layout(name + "." + member, field)
            elif (field["kind"] == "array" and field["element"]["kind"] in ("int", "uint")
                  and field["element"]["size"] == 1):
                kind = "MRH_M_CHARS"   # char[]: a string (utsname's)
            if member == "st_mode":
                kind = "MRH_M_FILE_MODE"
            if kind is None:
                continue   # not shown: bitfields, other arrays, opaque members
            members.append("    {%s, %d, %d, %s, %s}," % (c_string(member), field["offset"], field["size"], kind,
                                                         nested))
        shown = _MEMBERS_SHOWN.get(name)
        if shown:   # those first, so that a line shows the first nshown members
            members.sort(key=lambda row: next((i for i, m in enumerate(shown) if '"%s"' % m in row), len(shown)))
        self.lines += ["static const mrh_member %s_members[] = {" % ident] + (members or ["    {NULL, 0, 0, 0, NULL},"])
        self.lines += ["};", "static const mrh_layout %s = {%s, %d, %d, %d, %s_members};" % (
            ident, c_string(name), layout["size"], len(members), len(shown) if shown else 0, ident), ""]
        return "&" + ident


def _arg(kind, ctype, tables):
    shown, ref, mask, unless = kind.shown_if(tables.symbols)
    unless_table = "NULL"
    if unless:
        unless_table = tables._names("unless_" + kind.name, [(n, tables.symbols[n]) for n in unless
                                                             if n in tables.symbols])
    return "{%s, %d, %s, %d, %s, 0x%xULL, %s}" % (kind.reader, ctype.size if ctype.kind == "int" else 8, shown, ref,
                                                  kind.table(tables), mask, unless_table)


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
        flags = "MRH_FN_EXEC" if plan.exec else "0"
        fns.append("    {%s, %d, %s, %s, %s, params_%d}," % (
            c_string(plan.symbol), len(args), flags, "args_%d" % slot if args else "NULL",
            _arg(plan.ret, plan.proto.ret, tables), slot))
        body.append("")
    errnos = tables._names("errno_names", tables.by_prefix("E", preferred=("EAGAIN", "EDEADLK", "EOPNOTSUPP")))
    signals = tables._names("signal_names", tables.by_prefix(
        "SIG", exclude=tuple(n for n in symbols if n.startswith(("SIG_", "SIGEV_", "SIGRTMIN", "SIGRTMAX",
                                                                 "SIGSTKSZ"))),
        preferred=("SIGCHLD", "SIGIO", "SIGABRT", "SIGSYS")))
    families = tables.enum(tracespec.ADDRESS_FAMILY)
    file_types = tables._names("file_types", [(n, v) for n, v in sorted(symbols.items())
                                              if n.startswith("S_IF") and n != "S_IFMT"])
    fcntl_cmds = tables.enum(tracespec.FCNTL_CMD)
    open_flags = tables.flagset(tracespec.OPEN_FLAGS)
    out = ["/* Generated by mrhooker: how reader.c shows the calls of one trace build (see runtime/reader.h). */",
           '#include "reader.h"', ""]
    out += tables.lines + body
    out += ["static const mrh_fn fns[] = {"] + fns + ["};", ""]
    out += ["const mrh_decoders mrh_trace_decoders = {fns, %d, %s, %s, %s, %s, %dLL, 0x%xULL, %s, %s};" % (
        len(plans), errnos, signals, families, file_types, symbols.get("AT_FDCWD", -100),
        symbols.get("S_IFMT", 0o170000), fcntl_cmds, open_flags), ""]
    return "\n".join(out)

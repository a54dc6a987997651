"""C code generation: the preload library's entry points, and the trampolines of .py hooks.

Both kinds of script end in the same preload library (runtime/preload.c plus one exported entry point per
hooked symbol, generated here). An entry point calls the hook library's implementation of the symbol: the
user's Cython function itself (.pyx), or a generated trampoline that converts arguments and calls the
Python function (.py).
"""
import re
from dataclasses import dataclass
from typing import List, Optional

# Symbols that the runtime itself defines in every preload library (see runtime/preload.c).
RUNTIME_SYMBOLS = ("sigaction", "signal", "vfork")


@dataclass
class Param:
    decl: str    # the C declaration, with its name: "const char *a0", "int (*__pyx_v_cb)(int)"
    name: str    # the name: "a0"
    type: str    # the type alone: "const char *", "int (*)(int)"


@dataclass
class Entry:
    """One hooked symbol, as the preload library exports it."""
    name: str
    ret: str                     # C return type, "void" included
    params: List[Param]
    impl_symbol: str             # its implementation in the hook library
    variadic_extra: Optional[List[Param]] = None   # forwarded variadic arguments, when the symbol is variadic

    def cast(self, variadic=False):
        """The function pointer type: of the original (variadic=True keeps the '...') or of the impl."""
        types = [p.type for p in self.params]
        if self.variadic_extra is not None:
            types += ["..."] if variadic else [p.type for p in self.variadic_extra]
        return "%s (*)(%s)" % (self.ret, ", ".join(types) or "void")

    def args(self, with_extra=True):
        names = [p.name for p in self.params]
        if with_extra and self.variadic_extra:
            names += [p.name for p in self.variadic_extra]
        return ", ".join(names)


# ---- .pyx: the functions a Cython module exports ----------------------------------------------------

_DEFINITION = re.compile(r"^(?!static\b)([A-Za-z_][\w \t\*]*?[\s\*])([A-Za-z_]\w*)\((.*)\) \{$", re.M)
_EARLY_INCLUDES = re.compile(r"/\* Early includes \*/\n(.*?)#ifdef _OPENMP", re.S)
_CYTHON_NAME = re.compile(r"__pyx_v_\w+")


def _split_params(text):
    """Splits a C parameter list at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def pyx_exports(c_source):
    """The hook functions a Cython-generated C file defines (every function it exports that is not Cython's or
    Python's own), and the #include lines of the script's `cdef extern from` blocks, which their types need."""
    entries = []
    for match in _DEFINITION.finditer(c_source):
        ret, name, params_text = match.group(1).strip(), match.group(2), match.group(3)
        if name.startswith(("__pyx", "__Pyx", "PyInit_", "mrh_")) or ret.startswith(("CYTHON_", "PyObject")):
            continue
        params = []
        for i, decl in enumerate(_split_params(params_text)):
            if decl == "void":
                continue
            found = _CYTHON_NAME.search(decl)
            if found is None:   # an unnamed parameter: give it one
                pname = "mrh_a%d" % i
                params.append(Param(decl + " " + pname, pname, decl))
            else:
                params.append(Param(decl, found.group(0), (decl[:found.start()] + decl[found.end():]).strip()))
        entries.append(Entry(name, ret, params, impl_symbol=name))
    includes = _EARLY_INCLUDES.search(c_source)
    include_lines = [line for line in (includes.group(1).splitlines() if includes else [])
                     if line.startswith("#include")]
    return entries, include_lines


_UNRAISABLE_CALL = re.compile(r"^(\s+)__Pyx_WriteUnraisable\(", re.M)


_GILSTATE_MACROS = ("#define __Pyx_PyGILState_Ensure PyGILState_Ensure\n"
                    "#define __Pyx_PyGILState_Release PyGILState_Release\n")


def pyx_adapt(c_source):
    """Adapts Cython's output to the runtime:
    - Cython reports an exception that a hook can't raise with __Pyx_WriteUnraisable, without a traceback;
      the runtime's mrh_pyx_unraisable prints it with one, naming the hook, like a .py hook's failure.
    - `with gil` goes through the runtime's mrh_gil_ensure/release (see pyrt.h), a shorter path than
      PyGILState_Ensure/Release for threads that run hooks."""
    declaration = "void mrh_pyx_unraisable(const char *, int, int, const char *, int, int);\n"
    c_source = c_source.replace(_GILSTATE_MACROS, '#include "pyrt.h"\n'
                                "#define __Pyx_PyGILState_Ensure mrh_gil_ensure\n"
                                "#define __Pyx_PyGILState_Release mrh_gil_release\n")
    return declaration + _UNRAISABLE_CALL.sub(r"\1mrh_pyx_unraisable(", c_source)


# ---- the preload library's entry points ---------------------------------------------------------------

_PRELUDE = """\
/* Generated by mrhooker: the exported entry points of one hook build. */
#define _GNU_SOURCE
#include "mrhooker_rt.h"
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
typedef ssize_t Py_ssize_t;   /* Cython spells ssize_t so */
#define CYTHON_UNUSED __attribute__((unused))   /* Cython marks parameters a hook does not read */
"""


def _failure_value(entry):
    """What an entry point returns when there is no original to call (with errno ENOSYS)."""
    ret = entry.ret.strip()
    if ret == "void":
        return ""
    if ret.endswith("*"):
        return " NULL"
    return " (%s)0" % ret


def _entry_source(index, entry):
    ret = entry.ret.strip()
    returns = ret != "void"
    params = ", ".join(p.decl for p in entry.params) or "void"
    lines = []
    if entry.variadic_extra is not None:
        params += ", ..."
    lines.append("%s %s(%s)\n{" % (ret, entry.name, params))
    if entry.variadic_extra:
        lines.append("    va_list mrh_ap;\n    va_start(mrh_ap, %s);" % entry.params[-1].name)
        for p in entry.variadic_extra:
            lines.append("    %s = va_arg(mrh_ap, %s);" % (p.decl, p.type))
        lines.append("    va_end(mrh_ap);")
    if entry.name == "free":
        lines.append("    if (mrh_boot_owns(%s)) return;   /* from the bootstrap arena */" % entry.params[0].name)
    if entry.name == "realloc":
        p, n = entry.params[0].name, entry.params[1].name
        lines.append("    if (mrh_boot_owns(%s)) {   /* from the bootstrap arena: move it to the real heap */\n"
                     "        void *mrh_new = malloc(%s);\n"
                     "        size_t mrh_old = mrh_boot_size(%s);\n"
                     "        if (mrh_new) memcpy(mrh_new, %s, mrh_old < %s ? mrh_old : %s);\n"
                     "        return mrh_new;\n    }" % (p, n, p, p, n, n))
    call_impl = "((%s)mrh_impl)(%s)" % (entry.cast(), entry.args())
    lines.append(
        "    mrh_thread *t = &mrh_tls;\n"
        "    if (MRH_LIKELY(t->depth == 0 && mrh_state == MRH_READY) || mrh_begin_slow(t)) {\n"
        "        void *mrh_impl = mrh_slots[%d].impl;\n"
        "        if (MRH_LIKELY(mrh_impl != NULL)) {\n"
        "            if (MRH_UNLIKELY(!t->attached)) mrh_attach_thread(t);\n"
        "            t->depth++;\n"
        "            %s%s;\n"
        "            t->depth--;\n"
        "            return%s;\n"
        "        }\n"
        "    }" % (index, "%s mrh_r = " % ret if returns else "", call_impl, " mrh_r" if returns else ""))
    lines.append("    void *mrh_orig = mrh_resolve(%d);" % index)
    lines.append("    if (MRH_UNLIKELY(mrh_orig == NULL)) {")
    if entry.name in ("malloc", "calloc"):
        size = " * ".join(p.name for p in entry.params)
        lines.append("        return mrh_boot_alloc(%s);   /* asked for while the original is looked up */" % size)
    elif entry.name == "free":
        lines.append("        return;   /* freed while the original is looked up: leaked */")
    else:
        lines.append("        errno = ENOSYS;\n        return%s;" % _failure_value(entry))
    lines.append("    }")
    lines.append("    %s((%s)mrh_orig)(%s);\n}\n" % ("return " if returns else "", entry.cast(variadic=True),
                                                    entry.args()))
    return "\n".join(lines)


def preload_source(entries, include_lines=()):
    """The C source of a preload library's generated part: the slot table and one entry point per symbol."""
    out = [_PRELUDE]
    out.extend(include_lines)
    out.append("")
    out.append("mrh_slot mrh_slots[] = {")
    for e in entries:
        out.append('    {"%s", "%s", NULL, NULL},' % (e.name, e.impl_symbol))
    if not entries:
        out.append("    {NULL, NULL, NULL, NULL},")
    out.append("};")
    out.append("const int mrh_nslots = %d;\n" % len(entries))
    for i, e in enumerate(entries):
        out.append(_entry_source(i, e))
    return "\n".join(out)


# ---- .py: trampolines from C prototypes -----------------------------------------------------------------

def _c_ident(name):
    return re.sub(r"\W", "_", name)


def entry_for_prototype(proto):
    """The preload entry point of a cdecl.Prototype (a .py hook)."""
    params = [Param("%s %s" % (p.type.c, p.name), p.name, p.type.c) for p in proto.params]
    extra = None
    if proto.variadic:
        extra = [Param("%s %s" % (p.type.c, p.name), p.name, p.type.c) for p in proto.extra]
    return Entry(proto.symbol, proto.ret.c, params, impl_symbol="mrh_impl_" + _c_ident(proto.symbol),
                 variadic_extra=extra)


def _all_params(proto):
    return list(proto.params) + (list(proto.extra) if proto.variadic else [])


def _to_python(ctype, expr):
    """C value -> new Python object."""
    if ctype.kind == "int":
        if ctype.signed:
            return "PyLong_FromLongLong((long long)(%s))" % expr
        return "PyLong_FromUnsignedLongLong((unsigned long long)(%s))" % expr
    if ctype.kind == "float":
        return "PyFloat_FromDouble((double)(%s))" % expr
    if ctype.kind == "bytes":
        return "mrh_py_bytes_or_none(%s)" % expr
    if ctype.kind == "pointer":
        return "mrh_py_pointer((void *)(%s))" % expr
    raise ValueError(ctype.kind)


def _value_field(ctype):
    """The mrh_value member that holds a result of this type."""
    if ctype.kind == "float":
        return "ld" if ctype.c == "long double" else "d"
    if ctype.kind in ("bytes", "pointer"):
        return "p"
    return "i"


def _from_python(ctype, obj, target, func, fail, arg_index=None):
    """Python object -> C value in `target`; jumps to `fail` on error. arg_index None: a hook's result."""
    lines = []
    if arg_index is None:
        convert = {"int": "mrh_py_ret_int(%s, &mrh_u, %s)", "bytes": "mrh_py_ret_bytes(%s, &mrh_s, %s)",
                   "pointer": "mrh_py_ret_pointer(%s, &mrh_p, %s)"}
        if ctype.kind == "float":
            fn = "mrh_py_ret_ldouble(%s, &mrh_ld, %s)" if ctype.c == "long double" else "mrh_py_ret_float(%s, &mrh_d, %s)"
        else:
            fn = convert[ctype.kind]
        lines.append("if (%s < 0) goto %s;" % (fn % (obj, func), fail))
    else:
        if ctype.kind == "int":
            lines.append("if (mrh_py_arg_int(%s, &mrh_u, %s, %d) < 0) goto %s;" % (obj, func, arg_index, fail))
        elif ctype.kind == "float":
            if ctype.c == "long double":
                lines.append("if (mrh_py_arg_ldouble(%s, &mrh_ld, %s, %d) < 0) goto %s;" % (obj, func, arg_index, fail))
            else:
                lines.append("if (mrh_py_arg_float(%s, &mrh_d, %s, %d) < 0) goto %s;" % (obj, func, arg_index, fail))
        elif ctype.kind == "bytes":
            lines.append("if (mrh_py_arg_bytes(%s, &mrh_s, &mrh_keep[%d], %s, %d) < 0) goto %s;"
                         % (obj, arg_index, func, arg_index, fail))
        else:
            lines.append("if (mrh_py_arg_pointer(%s, &mrh_p, &mrh_keep[%d], %s, %d) < 0) goto %s;"
                         % (obj, arg_index, func, arg_index, fail))
    if ctype.kind == "int":
        value = "(mrh_u != 0)" if ctype.c == "_Bool" else "(%s)mrh_u" % ctype.c
    elif ctype.kind == "float":
        value = "mrh_ld" if ctype.c == "long double" else "(%s)mrh_d" % ctype.c
    elif ctype.kind == "bytes":
        value = "mrh_s"
    else:
        value = "mrh_p"
    lines.append("%s = %s;" % (target, value))
    return lines


_SCRATCH = ("    unsigned long long mrh_u = 0; double mrh_d = 0; long double mrh_ld = 0;\n"
            "    const char *mrh_s = NULL; void *mrh_p = NULL;\n"
            "    (void)mrh_u; (void)mrh_d; (void)mrh_ld; (void)mrh_s; (void)mrh_p;")


def _trampoline_source(index, proto):
    entry = entry_for_prototype(proto)
    params = _all_params(proto)
    ret = proto.ret
    returns = ret.kind != "void"
    name_lit = '"%s"' % proto.symbol
    n = len(params)
    out = []

    # func.original(...): converts its arguments, calls the real function with the GIL dropped.
    out.append("static PyObject *mrh_original_%d(PyObject *mrh_self, PyObject *const *mrh_args, Py_ssize_t mrh_n)\n{"
               % index)
    out.append("    if (mrh_n != %d) return mrh_py_argcount(%s, %d, mrh_n);" % (n, name_lit, n))
    out.append(_SCRATCH)
    out.append("    PyObject *mrh_keep[%d] = {NULL};\n    PyObject *mrh_result = NULL;" % max(n, 1))
    for i, p in enumerate(params):
        out.append("    %s %s;" % (p.type.c, p.name))
        out.extend("    " + line for line in _from_python(p.type, "mrh_args[%d]" % i, p.name, name_lit, "done", i))
    out.append("    mrh_thread *t = &mrh_tls;")
    call = "((%s)mrh_original_of(%d))(%s)" % (entry.cast(variadic=True), index, entry.args())
    if returns:
        out.append("    %s mrh_r;" % ret.c)
        out.append("    MRH_CALL_ORIGINAL(t, %d, mrh_r = %s);" % (index, call))
        out.append("    t->orig_ret.%s = mrh_r;" % _value_field(ret))
        out.append("    mrh_result = %s;" % _to_python(ret, "mrh_r"))
    else:
        out.append("    MRH_CALL_ORIGINAL(t, %d, %s);" % (index, call))
        out.append("    mrh_result = Py_None; Py_INCREF(Py_None);")
    out.append("done:")
    out.append("    for (int i = 0; i < %d; i++) Py_XDECREF(mrh_keep[i]);" % max(n, 1))
    out.append("    return mrh_result;\n}\n")

    # The implementation the preload entry point calls.
    cparams = ", ".join("%s %s" % (p.type.c, p.name) for p in params) or "void"
    out.append("MRH_EXPORT %s %s(%s)\n{" % (ret.c, entry.impl_symbol, cparams))
    out.append("    mrh_thread *t = &mrh_tls;\n    int mrh_entry_errno = errno;")
    out.append("    PyObject *mrh_func = mrh_py_hooks[%d].func;" % index)
    out.append("    int mrh_took = mrh_func ? mrh_py_enter(t) : -1;\n    if (mrh_took < 0) goto unhooked;")
    out.append(_SCRATCH)
    if returns:
        out.append("    %s mrh_r;" % ret.c)
    out.append("    int mrh_saved_taken = t->gil_taken, mrh_saved_entry = t->entry_errno, mrh_e;")
    out.append("    t->gil_taken = mrh_took; t->entry_errno = mrh_entry_errno;\n"
               "    t->errno_set = 0; t->orig_slot = -1;")
    out.append("    PyObject *mrh_argv[%d];" % max(n, 1))
    for i, p in enumerate(params):
        out.append("    mrh_argv[%d] = %s;" % (i, _to_python(p.type, p.name)))
        out.append("    if (!mrh_argv[%d]) { for (int i = 0; i < %d; i++) Py_DECREF(mrh_argv[i]); goto failed; }" % (i, i))
    out.append("    PyObject *mrh_res = PyObject_Vectorcall(mrh_func, mrh_argv, %d, NULL);" % n)
    out.append("    for (int i = 0; i < %d; i++) Py_DECREF(mrh_argv[i]);" % n)
    out.append("    if (!mrh_res) goto failed;")
    if returns:
        conv = _from_python(ret, "mrh_res", "mrh_r", name_lit, "bad_result")
        out.extend("    " + line for line in conv)
    out.append("    Py_DECREF(mrh_res);")
    out.append("    mrh_e = t->errno_set ? t->errno_value : t->orig_slot == %d ? t->orig_errno : mrh_entry_errno;" % index)
    out.append("    t->gil_taken = mrh_saved_taken; t->entry_errno = mrh_saved_entry;")
    out.append("    mrh_py_leave(mrh_took);\n    errno = mrh_e;\n    return%s;" % (" mrh_r" if returns else ""))
    if returns:
        out.append("bad_result:\n    Py_DECREF(mrh_res);")
    out.append("failed:")
    out.append("    mrh_py_report(%d);" % index)
    out.append("    t->gil_taken = mrh_saved_taken; t->entry_errno = mrh_saved_entry;")
    out.append("    if (t->orig_slot == %d) {   /* the original ran already: its result, not a second call */" % index)
    out.append("        mrh_e = t->orig_errno;")
    if returns:
        out.append("        mrh_r = (%s)t->orig_ret.%s;" % (ret.c, _value_field(ret)))
    out.append("        mrh_py_leave(mrh_took);\n        errno = mrh_e;\n        return%s;\n    }" % (" mrh_r" if returns else ""))
    out.append("    mrh_py_leave(mrh_took);")
    out.append("unhooked:\n    errno = mrh_entry_errno;")
    out.append("    %s((%s)mrh_original_of(%d))(%s);\n}\n" % ("return " if returns else "", entry.cast(variadic=True),
                                                         index, entry.args()))
    return "\n".join(out)


def _c_string(text):
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def trampolines_source(hooks):
    """The C source of the hook library's generated part for a .py script. hooks: [(spec, Prototype)], in
    slot order."""
    out = ['/* Generated by mrhooker: trampolines for the @hook functions of one .py script. */',
           '#include "pyrt.h"', ""]
    for i, (_spec, proto) in enumerate(hooks):
        out.append(_trampoline_source(i, proto))
    out.append("mrh_py_hook mrh_py_hooks[] = {")
    for i, (spec, proto) in enumerate(hooks):
        out.append("    {%s, %s, %s, NULL, 0, {%s, (PyCFunction)(void (*)(void))mrh_original_%d, METH_FASTCALL, %s}},"
                   % (_c_string(spec), _c_string(proto.symbol), _c_string(proto.text), _c_string(proto.symbol),
                      i, _c_string("The real " + proto.text)))
    if not hooks:
        out.append("    {NULL, NULL, NULL, NULL, 0, {NULL}},")
    out.append("};")
    out.append("const int mrh_py_nhooks = %d;" % len(hooks))
    return "\n".join(out) + "\n"

"""What Python and C agree on, checked against the C: the functions reader.c exports (tracefile._SIGNATURES is
how ctypes calls them) and the layout of the trace file's records (runtime/tracefile.h: only C reads and writes
them; this pins the sizes the writers and the reader share)."""
import ctypes
import os
import re
import subprocess

from mrhooker import tracefile

RUNTIME = os.path.join(os.path.dirname(tracefile.__file__), "runtime")

_CTYPES = {"uint64_t": ctypes.c_uint64, "int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32,
           "uint32_t": ctypes.c_uint32, "int": ctypes.c_int, "long": ctypes.c_long, "void *": ctypes.c_void_p,
           "mrh_reader *": ctypes.c_void_p, "const char *": ctypes.c_char_p, "uint64_t *": ctypes.POINTER(ctypes.c_uint64),
           "uint32_t *": ctypes.POINTER(ctypes.c_uint32), "int *": ctypes.POINTER(ctypes.c_int),
           "int (*)(uint32_t)": tracefile.OPEN_FOR_PID, "void": None}


def _exported():
    """{name: (result type, [parameter types])} of reader.c's EXPORT functions, as written."""
    with open(os.path.join(RUNTIME, "reader.c")) as f:
        source = f.read()
    found = {}
    for m in re.finditer(r"^EXPORT ([\w *]+?)\s*\b(mrh_\w+)\(([^)]*(?:\)\([^)]*\))?[^)]*)\)", source, re.M):
        result, name, params = m.group(1).strip(), m.group(2), m.group(3)
        types = []
        for p in re.split(r",\s*(?![^()]*\))", " ".join(params.split())):
            p = p.strip()
            if p == "void" or not p:
                continue
            pointer_fn = re.fullmatch(r"(\w+) \(\*\w+\)\((.*)\)", p)
            if pointer_fn:
                types.append("%s (*)(%s)" % pointer_fn.groups())
                continue
            t = re.sub(r"\s*\b\w+$", "", p).strip()
            types.append(t.replace("*", " *").replace("  ", " ").strip())
        found[name] = (result.replace("*", " *").replace("  ", " ").strip(), types)
    return found


def test_ctypes_calls_reader_c_s_functions_as_they_are_declared():
    exported = _exported()
    assert set(exported) == set(tracefile._SIGNATURES)
    for name, (result, params) in exported.items():
        restype, argtypes = tracefile._SIGNATURES[name]
        assert restype == _CTYPES[result], (name, result)
        assert [_CTYPES[p] for p in params] == list(argtypes), (name, params)


def test_the_record_layout_is_what_the_compiler_says(tmp_path):
    """The trace file's structs as the compiler lays them out: no hidden padding (the sizes are the sums of the
    fields), and the writers' and the reader's positions on cache lines of their own (the header fits its page)."""
    probe = tmp_path / "probe.c"
    probe.write_text('#include <stddef.h>\n#include <stdio.h>\n#include "tracefile.h"\nint main(void) {\n'
                     '    printf("%zu %zu %zu %zu %zu %zu\\n", sizeof(mrh_trace_header), sizeof(mrh_record),\n'
                     "           sizeof(mrh_capture_header), sizeof(mrh_inject_rule),\n"
                     "           offsetof(mrh_trace_header, write_pos), offsetof(mrh_trace_header, read_pos));\n"
                     "    return 0;\n}\n")
    subprocess.run(["cc", "-I", RUNTIME, "-o", str(tmp_path / "probe"), str(probe)], check=True)
    out = subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True).stdout.split()
    header, record, capture, rule, write_pos, read_pos = map(int, out)
    assert (record, capture, rule) == (4 + 2 + 2 + 4 + 4 + 8 * 3 + 4 + 4 + 8, 16, 4 + 4 + 8 + 4 + 4 + 8 * 5 + 4 + 4)
    assert header <= 4096 and write_pos % 64 == 0 and read_pos % 64 == 0 and read_pos - write_pos >= 64


def test_the_sizes_the_trace_descriptions_assume_are_the_compilers(tmp_path):
    """tracespec.SIZEOF: the C types the reader's compound kinds read (x86-64), as the compiler lays them out; and an
    iovec's kept element (tracefile.h: mrh_iov_kept) and a msghdr's (mrh_msg_kept) have no hidden padding."""
    from mrhooker import tracespec
    spelled = {"kernel sigset": "unsigned long"}   # the kernel's sigset_t: 64 signals
    names = sorted(tracespec.SIZEOF)
    probe = tmp_path / "sizes.c"
    probe.write_text("#define _GNU_SOURCE\n#include <poll.h>\n#include <signal.h>\n#include <stdio.h>\n"
                     "#include <sys/epoll.h>\n#include <sys/select.h>\n#include <fcntl.h>\n#include <time.h>\n"
                     '#include <sys/ioctl.h>\n#include <sys/socket.h>\n#include <sys/time.h>\n#include "tracefile.h"\n'
                     'int main(void) {\n' +
                     "".join('    printf("%%zu\\n", sizeof(%s));\n' % spelled.get(n, n) for n in names) +
                     '    printf("%zu\\n", sizeof(mrh_iov_kept));\n    printf("%zu\\n", sizeof(mrh_msg_kept));\n'
                     '    return 0;\n}\n')
    subprocess.run(["cc", "-I", RUNTIME, "-o", str(tmp_path / "sizes"), str(probe)], check=True)
    out = [int(x) for x in subprocess.run([str(tmp_path / "sizes")], capture_output=True, text=True,
                                          check=True).stdout.split()]
    assert dict(zip(names, out)) == tracespec.SIZEOF
    assert out[-2:] == [8 + 8 + 4 + 4, 8 * 5 + 4 * 6]

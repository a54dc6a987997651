"""Tests of mrhooker.cdecl against the real system headers and C compiler (no mocks)."""

import ctypes
import json
import os
import stat
import subprocess
import sys

import pytest

from helpers import scaled

from mrhooker import cdecl, toolchain
from mrhooker.cdecl import CType, Param, Prototype, known_names, parse_prototype, prototype_for
from mrhooker.cdecl import headers, tokens
from mrhooker.errors import MrhookerError

SIZE_T = ctypes.sizeof(ctypes.c_size_t)
POINTER = ctypes.sizeof(ctypes.c_void_p)


def error_of(function, text):
    with pytest.raises(MrhookerError) as caught:
        function(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def kinds(prototype):
    return [p.type.kind for p in prototype.params]


def cs(prototype):
    return [p.type.c for p in prototype.params]


@pytest.fixture
def fresh_state():
    """Run with no in-memory header database; restore it afterwards."""
    saved = dict(headers._databases)
    headers._forget_databases()
    yield
    with headers._lock:
        headers._databases.clear()
        headers._databases.update(saved)


@pytest.fixture
def private_dir(tmp_path):
    path = tmp_path / "cache"
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return path


# --- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling, c, size, signed",
    [
        ("size_t", "unsigned long", SIZE_T, False),
        ("ssize_t", "long", SIZE_T, True),
        ("off_t", "long", 8, True),
        ("pid_t", "int", 4, True),
        ("socklen_t", "unsigned int", 4, False),
        ("mode_t", "unsigned int", 4, False),
        ("time_t", "long", 8, True),
        ("uid_t", "unsigned int", 4, False),
        ("gid_t", "unsigned int", 4, False),
        ("clockid_t", "int", 4, True),
        ("uint8_t", "unsigned char", 1, False),
        ("int64_t", "long", 8, True),
        ("_Bool", "_Bool", 1, False),
        ("char", "char", 1, True),
        ("signed char", "signed char", 1, True),
        ("unsigned short int", "unsigned short", 2, False),
        ("long unsigned", "unsigned long", ctypes.sizeof(ctypes.c_ulong), False),
        ("long long", "long long", 8, True),
        ("unsigned long long int", "unsigned long long", 8, False),
        ("enum color", "int", 4, True),
    ],
)
def test_integer_types_resolve_to_builtin_spellings(spelling, c, size, signed):
    prototype = parse_prototype("%s f(%s x)" % (spelling, spelling))
    expected = CType("int", c, spelling, size, signed)
    assert prototype.params == (Param("x", expected),)
    assert prototype.ret == expected


@pytest.mark.parametrize(
    "spelling, size",
    [
        ("float", ctypes.sizeof(ctypes.c_float)),
        ("double", ctypes.sizeof(ctypes.c_double)),
        ("long double", ctypes.sizeof(ctypes.c_longdouble)),
    ],
)
def test_floating_types(spelling, size):
    (param,) = parse_prototype("void f(%s x)" % spelling).params
    assert param.type == CType("float", spelling, spelling, size, False)


@pytest.mark.parametrize(
    "declaration",
    [
        "const char *s",
        "char const *s",
        "const char *const s",
        "const char *restrict s",
        "const char *__restrict s",
        "const char s[]",
    ],
)
def test_const_char_pointers_are_bytes(declaration):
    (param,) = parse_prototype("int f(%s)" % declaration).params
    assert param.name == "s"
    assert (param.type.kind, param.type.c, param.type.size) == ("bytes", "const char *", POINTER)


@pytest.mark.parametrize(
    "declaration",
    ["char *s", "char **s", "const char **s", "const unsigned char *s", "void *s", "const void *s", "int *s"],
)
def test_other_pointers_are_plain_pointers(declaration):
    (param,) = parse_prototype("int f(%s)" % declaration).params
    assert (param.type.kind, param.type.c, param.type.size, param.type.signed) == (
        "pointer",
        "void *",
        POINTER,
        False,
    )


def test_spelling_is_kept_as_written():
    prototype = parse_prototype("ssize_t  f( const   char*path , struct stat *st, size_t n )")
    assert [p.type.spelling for p in prototype.params] == ["const char *", "struct stat *", "size_t"]
    assert prototype.ret.spelling == "ssize_t"
    assert prototype.text == "ssize_t f(const char *path, struct stat *st, size_t n)"


def test_pointers_to_structs_unions_and_header_typedefs():
    prototype = parse_prototype(
        "int f(struct stat *a, struct sockaddr *b, union sigval *c, FILE *d, DIR *e, "
        "struct my_own_opaque_thing *g, const struct timespec *h)"
    )
    assert cs(prototype) == ["void *"] * 7
    assert prototype.params[5].type.spelling == "struct my_own_opaque_thing *"


def test_function_pointer_parameters():
    prototype = parse_prototype(
        "int f(void (*handler)(int), int (*cmp)(const void *, const void *), sighandler_t h)"
    )
    assert kinds(prototype) == ["pointer"] * 3
    assert prototype.params[0].type.spelling == "void (*)(int)"
    assert prototype.text == (
        "int f(void (*handler)(int), int (*cmp)(const void *, const void *), sighandler_t h)"
    )


def test_function_returning_a_function_pointer():
    prototype = parse_prototype("void (*signal(int sig, void (*func)(int)))(int)")
    assert prototype.name == "signal"
    assert prototype.ret.kind == "pointer"
    assert cs(prototype) == ["int", "void *"]


def test_arrays_and_va_list_decay_to_pointers():
    prototype = parse_prototype("int f(int a[3], char *const argv[], int m[2][2], va_list ap)")
    assert cs(prototype) == ["void *"] * 4
    assert prototype.params[1].type.spelling == "char *const []"


def test_void_and_empty_parameter_lists():
    for text in ("int f(void)", "int f()", "int f(void);"):
        prototype = parse_prototype(text)
        assert prototype.params == () and not prototype.variadic
        assert prototype.text == "int f(void)"
    prototype = parse_prototype("void f(void)")
    assert prototype.ret == CType("void", "void", "void", 0, False)


def test_unnamed_parameters_are_numbered():
    prototype = parse_prototype("int f(int, const char *, size_t n, void *)")
    assert [p.name for p in prototype.params] == ["a0", "a1", "n", "a3"]
    assert prototype.text == "int f(int a0, const char *a1, size_t n, void *a3)"


def test_unnamed_names_do_not_clash_with_declared_ones():
    prototype = parse_prototype("int f(int, int a0)")
    assert [p.name for p in prototype.params] == ["a0_", "a0"]


def test_python_keywords_are_renamed():
    prototype = parse_prototype("int f(int lambda, char *class, int def, int None, int len, int linux)")
    names = [p.name for p in prototype.params]
    assert names == ["lambda_", "class_", "def_", "None_", "len", "linux_"]
    assert all(name.isidentifier() for name in names)


def test_parameter_named_like_a_typedef():
    (param,) = parse_prototype("int f(int size_t)").params
    assert param == Param("size_t", CType("int", "int", "int", 4, True))


def test_gnu_extensions_in_user_prototypes():
    prototype = parse_prototype(
        'extern int close (int __fd) __attribute__ ((__nothrow__ , __leaf__)) __attribute__((deprecated("x")));'
    )
    assert prototype.text == "int close(int __fd)"
    assert prototype.symbol == "close"


def test_user_prototype_symbol_is_its_name():
    prototype = parse_prototype("int unlink(const char *pathname)")
    assert prototype == Prototype(
        name="unlink",
        symbol="unlink",
        ret=CType("int", "int", "int", 4, True),
        params=(Param("pathname", CType("bytes", "const char *", "const char *", POINTER, False)),),
        variadic=False,
        extra=(),
        text="int unlink(const char *pathname)",
    )


def test_multiline_prototype():
    prototype = parse_prototype(
        "ssize_t\nsend(int fd,\n     const void *buf,\n     size_t n,\n     int flags);"
    )
    assert prototype.text == "ssize_t send(int fd, const void *buf, size_t n, int flags)"


# --- refusals --------------------------------------------------------------------------------


def test_struct_by_value_is_refused():
    message = error_of(parse_prototype, "struct tm f(void)")
    assert (
        message == "prototype 'struct tm f(void)': returns struct tm by value, which mrhooker cannot forward"
    )
    message = error_of(parse_prototype, "int f(struct timeval tv)")
    assert "struct timeval" in message and "'tv'" in message and "by value" in message
    message = error_of(parse_prototype, "div_t f(int a)")
    assert "returns div_t" in message and "struct" in message
    assert "union sigval" in error_of(parse_prototype, "int f(union sigval v)")


@pytest.mark.parametrize(
    "text, what",
    [
        ("_Complex double f(void)", "_Complex double"),
        ("int f(__int128 x)", "__int128"),
        ("int f(unsigned __int128 x)", "unsigned __int128"),
        ("_Float128 f(void)", "_Float128"),
        ("int f(_Float64x x)", "_Float64x"),
        ("int f(__int128_t x)", "__int128"),
    ],
)
def test_unforwardable_scalars_are_refused(text, what):
    message = error_of(parse_prototype, text)
    assert message.startswith("prototype '%s': " % text)
    assert what in message and "cannot forward" in message


def test_an_unknown_name_behind_a_pointer_is_an_opaque_pointer():
    """A library's own type (`SSL *`) needs no header: behind a pointer it is just an address."""
    for text in ("int f(const foo *p)", "int f(my_ctx_t *ctx, int n)", "foo_handle *f(foo_handle **out)",
                 "int f(struct undeclared *u, bar_t *const *b)", "int f(foo_t (*cb)(int))"):
        prototype = parse_prototype(text)
        assert [p.type.kind for p in prototype.params if p.type.kind != "int"] == ["pointer"] * len(
            [p for p in prototype.params if p.type.kind != "int"])
        assert prototype.text == text
    assert parse_prototype("foo_handle *f(void)").ret.kind == "pointer"
    assert "unknown type name 'foo'" in error_of(parse_prototype, "int f(foo *p, foo q)")


def test_library_functions_by_name_when_their_headers_are_installed():
    """OpenSSL's, zlib's and SQLite's functions by name (their headers are read only when the system headers
    lack a name); a written-out one is checked against them too."""
    for name, text in [("SSL_write", "int SSL_write(SSL *ssl, const void *buf, int num)"),
                       ("zlibVersion", "const char *zlibVersion(void)"),
                       ("sqlite3_open", "int sqlite3_open(const char *filename, sqlite3 **ppDb)")]:
        assert prototype_for(name).text == text
    assert [p.type.kind for p in prototype_for("SSL_write").params] == ["pointer", "pointer", "int"]
    assert "does not match" in error_of(prototype_for, "int SSL_write(SSL *s, int n)")
    assert "hook BIO_vprintf instead" in error_of(prototype_for, "BIO_printf")
    assert "SSL_write_ex" in known_names(libraries=True) and "SSL_write" not in known_names()


def test_unknown_type_is_refused_with_suggestions():
    assert error_of(parse_prototype, "foo_t f(void)").startswith(
        "prototype 'foo_t f(void)': unknown type name 'foo_t'"
    )
    message = error_of(parse_prototype, "int f(sizet n)")
    assert message.startswith("prototype 'int f(sizet n)': unknown type name 'sizet'")
    assert "'size_t'" in message
    for text, name in [
        ("int f(int a, bar_t b)", "bar_t"),
        ("int f(foo)", "foo"),
        ("int f(int, foo, int)", "foo"),
        ("unsinged int f(void)", "unsinged"),
    ]:
        assert "unknown type name '%s'" % name in error_of(parse_prototype, text)


@pytest.mark.parametrize("text, unknown, meant", [
    ("int open(const chr *path, int flags)", "chr", "char"),
    ("int f(sizet *n)", "sizet", "size_t"),
    ("int f(uint23_t *n)", "uint23_t", "uint32_t"),
    ("int f(FILe *stream)", "FILe", "FILE"),
    ("int f(pid *p)", "pid", "pid_t"),
    ("dobule *f(void)", "dobule", "double"),
])
def test_a_typo_of_a_known_type_behind_a_pointer_is_refused_not_made_opaque(text, unknown, meant):
    """(issue 15, item 11) It used to become an opaque pointer and fail at run time; a library's own type
    name is not that close to one the headers declare."""
    message = error_of(parse_prototype, text)
    assert message.startswith("prototype '%s': unknown type name '%s' (did you mean '%s'" % (text, unknown, meant))
    assert "'void *'" in message   # what to write for a type of one's own
    for text in ("int f(lua_State *L)", "int f(ctx_t *c)", "int f(node_t *n)", "int f(state_t *s)",
                 "int f(handle_t *h)", "int f(struct stst *s)"):
        assert parse_prototype(text).params[0].type.kind == "pointer", text


def test_a_misspelt_keyword_is_named():
    for text in ("int stat(const char *path, stuct stat *buf)", "int f(const stuct stat *buf)",
                 "int f(unsinged long *n)"):
        message = error_of(parse_prototype, text)
        assert ("'stuct' (did you mean 'struct'?)" in message or "'unsinged' (did you mean 'unsigned'?)" in message), \
            message


def test_syntax_errors_name_the_string():
    message = error_of(parse_prototype, "int unlink(const char *path")
    assert message == "bad prototype 'int unlink(const char *path': expected ')' at end of input"
    for text in ("int f(int x,)", "int f(int x))", "int f(int x) @", "int 3f(void)", "int f(int x y)", ""):
        assert error_of(parse_prototype, text).startswith("bad prototype '%s': " % text)


def test_not_a_function():
    assert error_of(parse_prototype, "int x") == "'int x' is not a function prototype"
    for text in ("int (*fp)(int)", "typedef int f(int)", "struct stat"):
        assert error_of(parse_prototype, text) == "'%s' is not a function prototype" % text
    assert "definition" in error_of(parse_prototype, "int f(void) { return 0; }")
    assert "one declaration" in error_of(parse_prototype, "int f(void); int g(void)")
    assert "one declaration" in error_of(parse_prototype, "int f(void), g(int)")


def test_void_parameter_must_stand_alone():
    assert "void" in error_of(parse_prototype, "int f(int x, void)")
    assert "void" in error_of(parse_prototype, "int f(void x)")


# --- variadic functions ------------------------------------------------------------------------


def test_variadic_open_forwards_mode():
    prototype = parse_prototype("int open(const char *path, int flags, ...)")
    assert prototype.variadic
    assert prototype.extra == (Param("mode", CType("int", "unsigned int", "mode_t", 4, False)),)
    assert prototype.text == "int open(const char *path, int flags, ...)"


@pytest.mark.parametrize(
    "name, extra",
    [
        ("open", [("mode", "unsigned int")]),
        ("open64", [("mode", "unsigned int")]),
        ("openat", [("mode", "unsigned int")]),
        ("fcntl", [("arg", "unsigned long")]),
        ("ioctl", [("arg", "unsigned long")]),
        ("prctl", [("arg%d" % i, "unsigned long") for i in range(2, 6)]),
        ("syscall", [("arg%d" % i, "long") for i in range(1, 7)]),
        ("sem_open", [("mode", "unsigned int"), ("value", "unsigned int")]),
        ("mq_open", [("mode", "unsigned int"), ("attr", "void *")]),
    ],
)
def test_variadic_table_by_name(name, extra):
    prototype = prototype_for(name)
    assert prototype.variadic
    assert [(p.name, p.type.c) for p in prototype.extra] == extra
    assert name in known_names()


def test_ioctl_and_fcntl_fixed_parameters():
    assert cs(prototype_for("ioctl")) == ["int", "unsigned long"]
    assert cs(prototype_for("fcntl")) == ["int", "int"]
    assert prototype_for("ioctl").extra[0].type.size == ctypes.sizeof(ctypes.c_ulong)


def test_variadic_with_wrong_fixed_parameters():
    message = error_of(parse_prototype, "int open(const char *path, ...)")
    assert "open" in message and "2 fixed parameters" in message


def test_printf_is_refused_clearly():
    message = error_of(parse_prototype, "int printf(const char *fmt, ...)")
    assert message == (
        "prototype 'int printf(const char *fmt, ...)': variadic function printf cannot be forwarded; "
        "hook vprintf instead"
    )
    message = error_of(prototype_for, "printf")
    assert message.startswith("prototype 'int printf(")
    assert message.endswith("variadic function printf cannot be forwarded; hook vprintf instead")
    assert "printf" not in known_names()
    assert "vprintf" in known_names()


@pytest.mark.parametrize(
    "name, instead",
    [
        ("execl", "execv"),
        ("execlp", "execvp"),
        ("execle", "execve"),
        ("fprintf", "vfprintf"),
        ("snprintf", "vsnprintf"),
        ("syslog", "vsyslog"),
    ],
)
def test_variadic_alternatives(name, instead):
    message = error_of(prototype_for, name)
    assert message.endswith("hook %s instead" % instead)
    assert name not in known_names()


def test_a_cython_hook_with_dots_is_told_how_to_declare_the_known_variable_arguments():
    # open's '...' in a .pyx: its mode is forwarded, so the message must say how to take it, not that mrhooker
    # "knows the variable arguments of open" while refusing open
    from mrhooker.cdecl import pyx_variadic_refusal
    message = pyx_variadic_refusal("open")
    assert message == ("variadic function open: a Cython hook can't read its '...'; declare what mrhooker forwards "
                       "of it as a parameter after the fixed ones instead: (..., mode_t mode)")
    assert pyx_variadic_refusal("sem_open").endswith("as parameters after the fixed ones instead: "
                                                     "(..., mode_t mode, unsigned int value)")
    assert pyx_variadic_refusal("printf").endswith("variadic function printf cannot be forwarded; hook vprintf instead")


def test_other_variadics_are_refused():
    message = error_of(parse_prototype, "int frob(int x, ...)")
    assert "variadic function frob cannot be forwarded" in message
    assert "open" in message  # says which ones are forwarded


# --- the header database -------------------------------------------------------------------------

MAN_PAGE_TYPES = {
    # name: (return c, parameter c's); 'const char *' is kind bytes, 'void *' kind pointer
    "unlink": ("int", ["const char *"]),
    "open": ("int", ["const char *", "int"]),
    "close": ("int", ["int"]),
    "read": ("long", ["int", "void *", "unsigned long"]),
    "write": ("long", ["int", "void *", "unsigned long"]),
    "lseek": ("long", ["int", "long", "int"]),
    "stat": ("int", ["const char *", "void *"]),
    "send": ("long", ["int", "void *", "unsigned long", "int"]),
    "recv": ("long", ["int", "void *", "unsigned long", "int"]),
    "sendto": ("long", ["int", "void *", "unsigned long", "int", "void *", "unsigned int"]),
    "connect": ("int", ["int", "void *", "unsigned int"]),
    "accept": ("int", ["int", "void *", "void *"]),
    "socket": ("int", ["int", "int", "int"]),
    "getaddrinfo": ("int", ["const char *", "const char *", "void *", "void *"]),
    "poll": ("int", ["void *", "unsigned long", "int"]),
    "malloc": ("void *", ["unsigned long"]),
    "free": ("void", ["void *"]),
    "calloc": ("void *", ["unsigned long", "unsigned long"]),
    "realloc": ("void *", ["void *", "unsigned long"]),
    "mmap": ("void *", ["void *", "unsigned long", "int", "int", "int", "long"]),
    "getenv": ("void *", ["const char *"]),
    "setenv": ("int", ["const char *", "const char *", "int"]),
    "time": ("long", ["void *"]),
    "clock_gettime": ("int", ["int", "void *"]),
    "gettimeofday": ("int", ["void *", "void *"]),
    "nanosleep": ("int", ["void *", "void *"]),
    "sleep": ("unsigned int", ["unsigned int"]),
    "fopen": ("void *", ["const char *", "const char *"]),
    "fread": ("unsigned long", ["void *", "unsigned long", "unsigned long", "void *"]),
    "opendir": ("void *", ["const char *"]),
    "readdir": ("void *", ["void *"]),
    "fork": ("int", []),
    "execve": ("int", ["const char *", "void *", "void *"]),
    "waitpid": ("int", ["int", "void *", "int"]),
    "kill": ("int", ["int", "int"]),
    "getuid": ("unsigned int", []),
    "umask": ("unsigned int", ["unsigned int"]),
    "sysv_signal": ("void *", ["int", "void *"]),   # signal itself is the runtime's own
    "pthread_create": ("int", ["void *", "void *", "void *", "void *"]),
    "dlopen": ("void *", ["const char *", "int"]),
    "strlen": ("unsigned long", ["const char *"]),
    "strcmp": ("int", ["const char *", "const char *"]),
    "strdup": ("void *", ["const char *"]),
    "memcpy": ("void *", ["void *", "void *", "unsigned long"]),
    "strtod": ("double", ["const char *", "void *"]),
    "htons": ("unsigned short", ["unsigned short"]),
    "sqrt": ("double", ["double"]),
}


@pytest.mark.parametrize("name", sorted(MAN_PAGE_TYPES))
def test_lookup_by_name_matches_man_pages(name):
    ret, params = MAN_PAGE_TYPES[name]
    prototype = prototype_for(name)
    assert prototype.name == name
    assert prototype.ret.c == ret
    assert cs(prototype) == params
    assert prototype_for(" %s " % name) is prototype  # memoized, whitespace ignored
    assert prototype.text.startswith(prototype.ret.spelling)
    assert "__" not in "".join(p.name for p in prototype.params)


def test_lookup_by_name_details():
    send = prototype_for("send")
    assert [p.name for p in send.params] == ["fd", "buf", "n", "flags"]  # header '__fd' etc. cleaned
    assert send.ret == CType("int", "long", "ssize_t", SIZE_T, True)
    assert send.text == "ssize_t send(int fd, const void *buf, size_t n, int flags)"
    assert prototype_for("unlink").symbol == "unlink"
    # glibc's transparent union parameter shows as what it forwards
    connect = prototype_for("connect")
    assert connect.params[1].type.spelling == "const struct sockaddr *"
    assert prototype_for("getenv").ret.kind == "pointer"  # char *, written into by nobody but still not bytes
    assert prototype_for("strtold").ret.c == "long double"
    assert prototype_for("strcmp").params[0].type.kind == "bytes"


def test_header_symbol_redirections():
    # glibc redirects some functions with __asm__ labels; the symbol is what programs link to.
    symbol = prototype_for("vscanf").symbol
    assert symbol in ("vscanf", "__isoc99_vscanf", "__isoc23_vscanf")
    chunk = tokens._split_declarations(
        tokens._tokenize('extern int foo (int __x) __asm__ ("" "bar") __attribute__ ((x));')
    )
    assert [(c.kind, c.symbol) for c in chunk] == [("declaration", "bar")]


def test_header_functions_refused_with_reason():
    assert "by value" in error_of(prototype_for, "div")
    assert "by value" in error_of(prototype_for, "inet_ntoa")


def test_full_prototype_through_prototype_for():
    assert prototype_for("int unlink(const char *p)").params[0].name == "p"
    assert error_of(prototype_for, "int x") == "'int x' is not a function prototype"


def test_known_names_cover_each_area():
    names = known_names()
    assert len(names) >= 200
    assert names == sorted(names)
    areas = {
        "files": "open openat read write close stat fstat lstat unlink rename mkdir rmdir opendir readdir "
        "fopen fclose access chmod readlink truncate",
        "sockets": "socket connect bind listen accept accept4 send recv sendto recvfrom sendmsg recvmsg "
        "getaddrinfo setsockopt shutdown poll select epoll_wait",
        "processes": "fork execve execvp waitpid kill getpid getppid exit _exit posix_spawn "
        "pthread_create system setuid",
        "time": "time clock_gettime gettimeofday nanosleep sleep usleep localtime_r strftime clock",
        "environment": "getenv setenv unsetenv putenv clearenv secure_getenv uname getcwd",
        "memory": "malloc free calloc realloc mmap munmap mprotect posix_memalign memfd_create",
        "strings": "strlen strcmp strncmp strcpy strdup strstr strchr memcpy memset memcmp strtol",
    }
    for area, wanted in areas.items():
        missing = [name for name in wanted.split() if name not in names]
        assert not missing, (area, missing)


def test_the_runtimes_own_functions_are_not_known_names():
    names = set(known_names())
    for name in cdecl.RUNTIME_SYMBOLS:
        assert name not in names
        assert error_of(prototype_for, name).startswith("%s cannot be hooked or traced: " % name)
        assert cdecl.refusal(name).startswith("%s cannot be hooked or traced: " % name)
    assert not [n for n in names if prototype_for(n).symbol in cdecl.RUNTIME_SYMBOLS]


def test_large_file_twins_are_the_headers_asm_labels_under_file_offset_bits_64():
    twins = cdecl.large_file_twins()
    names = set(known_names())
    assert twins["open"] == "open64" and twins["fcntl"] == "fcntl64" and twins["pwritev2"] == "pwritev64v2"
    assert all(name in names and twin in names for name, twin in twins.items())
    assert "pthread_yield" not in twins   # an asm label in every build is an alias, not a twin
    assert len(twins) >= 40


def test_unknown_name_suggests_close_matches():
    message = error_of(prototype_for, "qqqxyzzy")
    assert message == "no prototype known for 'qqqxyzzy'; write it out: @hook(\"int qqqxyzzy(int x)\")"
    message = error_of(prototype_for, "unlnk")
    assert message.startswith("no prototype known for 'unlnk' (did you mean 'unlink'")
    assert message.endswith('write it out: @hook("int unlnk(int x)")')


def test_every_message_is_one_line():
    texts = [
        "int f(\n int x,\n foo_t y)",
        "struct tm\nf(void)",
        "int\nprintf(const char *f, ...)",
        "int f(int x\n",
        "int\nx",
        "\n",
    ]
    for text in texts:
        message = error_of(parse_prototype, text)
        assert " ".join(text.split()) in message
    error_of(prototype_for, "no_such_function_here")


# --- cache -------------------------------------------------------------------------------------


def test_cache_file_is_written_and_reused(fresh_state, private_dir):
    before = dict(headers._stats)
    first = known_names(private_dir)
    assert headers._stats["header_parses"] == before["header_parses"] + 1
    files = os.listdir(private_dir)
    assert files == ["cdecl-headers.json"]  # no temporary file left behind
    cache_file = private_dir / "cdecl-headers.json"
    assert stat.S_IMODE(cache_file.stat().st_mode) & 0o077 == 0
    data = json.loads(cache_file.read_text())
    assert "unlink" in data["functions"] and "size_t" in data["typedefs"]

    headers._forget_databases()  # a new process, as far as the database is concerned
    assert known_names(private_dir) == first
    assert headers._stats["header_parses"] == before["header_parses"] + 1  # not parsed again
    assert headers._stats["cache_file_loads"] == before["cache_file_loads"] + 1
    assert prototype_for("send", private_dir).params[2].type.c == "unsigned long"
    assert parse_prototype("ssize_t f(size_t n)", private_dir).ret.c == "long"


def test_stale_or_broken_cache_is_rebuilt(fresh_state, private_dir):
    cache_file = private_dir / "cdecl-headers.json"
    cache_file.write_text("{not json")
    parses = headers._stats["header_parses"]
    known_names(private_dir)
    assert headers._stats["header_parses"] == parses + 1
    data = json.loads(cache_file.read_text())

    # A header that looks changed (its size or mtime) is preprocessed again; the same text is not parsed again,
    # and the header's new stamp is saved
    some_header = sorted(h for h in data["headers"] if h.endswith("/stdio.h"))[0]
    data["headers"][some_header] = [0, 0]
    cache_file.write_text(json.dumps(data))
    headers._forget_databases()
    known_names(private_dir)
    assert headers._stats["header_parses"] == parses + 1
    assert json.loads(cache_file.read_text())["headers"][some_header] != [0, 0]

    data["key"] = "0" * 64  # ... and a changed text is parsed again
    cache_file.write_text(json.dumps(data))
    headers._forget_databases()
    known_names(private_dir)
    assert headers._stats["header_parses"] == parses + 2
    assert json.loads(cache_file.read_text())["key"] != "0" * 64
    assert os.listdir(private_dir) == ["cdecl-headers.json"]


def test_unchanged_headers_are_not_preprocessed_again(fresh_state, private_dir, monkeypatch):
    known_names(private_dir)
    data = json.loads((private_dir / "cdecl-headers.json").read_text())
    assert "/usr/include/stdio.h" in data["headers"] and "/usr/include" in data["headers"], sorted(data["headers"])
    headers._forget_databases()
    monkeypatch.setattr(headers, "_preprocess", lambda *a: pytest.fail("preprocessed"))
    assert "unlink" in known_names(private_dir)


def test_another_pycparser_has_the_headers_preprocessed_again(fresh_state, private_dir, monkeypatch):
    # pycparser is known by its file's stamp (its version would mean importing it): another one has the cached
    # database checked by its key, which holds the version
    known_names(private_dir)
    headers._forget_databases()
    monkeypatch.setattr(headers, "_pycparser_identity", lambda: "/elsewhere/pycparser/__init__.py 1 1")
    preprocessed = []
    real = headers._preprocess
    monkeypatch.setattr(headers, "_preprocess", lambda *a: preprocessed.append(a) or real(*a))
    parses = headers._stats["header_parses"]
    assert "unlink" in known_names(private_dir)
    assert preprocessed and headers._stats["header_parses"] == parses


def test_the_cached_database_is_used_without_pycparser(private_dir, base_env):
    """A warm start (names, prototypes by name, refusals and twins from the cache file) does not import pycparser,
    whose import costs more than the rest; a written-out prototype does."""
    known_names(private_dir)
    code = ("import sys; from mrhooker import cdecl; d = sys.argv[1]; cdecl.known_names(d); "
            "cdecl.prototype_for('open', d); cdecl.refusal('div', d); cdecl.large_file_twins(d); "
            "print('pycparser' in sys.modules); cdecl.prototype_for('int f(size_t n)', d); "
            "print('pycparser' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(private_dir)], env=base_env, capture_output=True,
                       text=True, timeout=scaled(120))
    assert r.returncode == 0 and r.stdout.split() == ["False", "True"], r


def test_a_loaded_database_is_saved_in_a_cache_dir_named_later(fresh_state, private_dir):
    known_names()
    assert not os.listdir(private_dir)
    parses = headers._stats["header_parses"]
    known_names(private_dir)
    assert os.listdir(private_dir) == ["cdecl-headers.json"]
    assert headers._stats["header_parses"] == parses   # saved, not parsed again


def test_without_cache_dir_nothing_is_written(fresh_state, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    known_names()
    assert os.listdir(tmp_path) == []


def test_a_cache_dir_others_can_write_is_not_used(fresh_state, tmp_path):
    # The database only saves time: a directory that is not private (or not one) is passed over, silently.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o775)
    a_file = tmp_path / "file"
    a_file.write_text("")
    for place in (shared, tmp_path / "missing", a_file):
        assert "unlink" in known_names(place)
    assert os.listdir(shared) == [] and not (tmp_path / "missing").exists() and a_file.read_text() == ""


def test_no_compiler(fresh_state, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(MrhookerError) as caught:
        known_names()
    message = str(caught.value)
    assert message == "no C compiler found (/nonexistent/cc); install gcc, e.g. apt-get install gcc"


def test_unparsable_header_typedef_degrades_gracefully():
    # A typedef pycparser rejects must not take every later declaration down with it: the
    # functions using it are refused with a reason instead of vanishing.
    text = headers._preprocess(toolchain.c_compiler())
    broken = text.replace("typedef long unsigned int size_t;", "typedef __typeof__(sizeof 0) size_t;", 1)
    if broken == text:
        pytest.skip("size_t is declared differently in these headers")
    data = headers._build_database(broken)
    assert data["typedefs"]["size_t"][0] == "unsupported"
    assert "strlen" in data["refused"] and "size_t" in data["refused"]["strlen"]
    assert "unlink" in data["functions"]

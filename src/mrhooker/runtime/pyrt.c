/* pyrt.c (hook side): the hooks' own interpreter, mrhooker._native, conversions, and what the target side
 * calls at threads' first hooks, their exit, forks and the target's exit.
 *
 * Loaded into a link-map namespace of its own (see mrhooker_rt.h) by the target side at the first hooked
 * call, which then calls mrh_hook_start() once, on its start thread (an attached process: mrh_hook_restart()
 * for each later build with hooks). From then on:
 * - Thread states: every thread that runs a Python hook gets one Python thread state for the rest of its life
 *   (made through PyGILState, so that PyGILState_Ensure() in Cython's `with gil` and in libraries finds it),
 *   deleted at thread exit by the target side's key destructor (thread_exit). Making one per call would cost
 *   microseconds.
 * - The interpreter is never finalised: threads still calling hooks while the target exits can't crash it.
 */
#include "pyrt.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "output.h"

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
#endif
#if PY_VERSION_HEX >= 0x030D0000
void _PyTraceback_Add(const char *, const char *, int);   /* exported by libpython, no longer declared */
#endif

MRH_EXPORT const mrh_runtime *mrh_rt;
MRH_EXPORT long mrh_tls_offset, mrh_errno_offset;

static mrh_py_hook *py_hooks;      /* the .py build's table (load_trampolines), else NULL */
static int py_nhooks;
static void *hooks_handle;         /* the hook library, in this namespace */
static void (*ctype_init)(void);   /* this namespace's libc's per-thread set-up (__ctype_init) */
static PyObject *inside_report;    /* mrhooker._inside.report_hook_error */
static PyObject *inside_at_exit;   /* mrhooker._inside.at_exit */
/* bytes returned by hooks as char *: kept alive for the caller, one copy per distinct value (a hook
 * returning ever new values grows it: documented) */
static PyObject *returned_strings;


/* ---- hook output ----------------------------------------------------------------------------------------
 * See output.h. Written with the GIL held (by _inside's line writer and by report paths), so the
 * descriptor's state needs no lock of its own; the write itself runs without the GIL. */

static int output_fd = -1;
static dev_t output_dev;
static ino_t output_ino;
static int output_piped = 1;   /* a pipe or socket (mrh_output_write_all), as the last check found it */
/* An attached process's detach points output_fd at a placeholder of its own (park_output): an inode nothing else
 * has, so that the next attach can tell the number is still ours and reuse it (else each attach with hooks would
 * leave a descriptor behind), and opened O_PATH, so that a hook still writing after the detach gets EBADF (and
 * one writing later opens nothing: mrh_runtime.detached). */
static dev_t parked_dev;
static ino_t parked_ino;

static int output_descriptor(void)
{
    if (mrh_output_still(output_fd, output_dev, output_ino, &output_piped)) return output_fd;
    /* Parked by a detach, with a hook still running (its call was in flight): its lines are dropped. Opening
     * the output again would give the program mrhooker's stderr to hold after mrhooker's end, and a reader of
     * that pipe would wait for its end for ever. (detached is set before the park: seen here once the
     * descriptor is not ours.) */
    if (__atomic_load_n(&mrh_rt->detached, __ATOMIC_ACQUIRE)) return -1;
    /* Closed or reused by the target: never close what may be the target's now; open the output again (into
     * the number a detach parked, if it is still parked). */
    int fd = mrh_output_open(mrh_rt->output, mrh_rt->output_id);
    if (fd >= 0 && output_fd >= 0 && parked_ino && mrh_output_still(output_fd, parked_dev, parked_ino, NULL) &&
        dup3(fd, output_fd, O_CLOEXEC) == output_fd) {
        close(fd);
        fd = output_fd;
    }
    output_fd = fd;
    struct stat st;
    if (output_fd >= 0 && fstat(output_fd, &st) == 0) {
        output_dev = st.st_dev;
        output_ino = st.st_ino;
        output_piped = mrh_output_piped(&st);
    }
    return output_fd;
}

static void park_output(void)
{
    int fd = __atomic_load_n(&output_fd, __ATOMIC_RELAXED);
    if (!mrh_output_still(fd, output_dev, output_ino, NULL)) return;   /* not ours any more: the program's now */
    int placeholder = -1, mem = memfd_create("mrhooker-detached", MFD_CLOEXEC);
    if (mem >= 0) {
        char path[40];
        snprintf(path, sizeof path, "/proc/self/fd/%d", mem);
        placeholder = open(path, O_PATH | O_CLOEXEC);
        close(mem);
    }
    if (placeholder < 0) placeholder = open("/dev/null", O_WRONLY | O_CLOEXEC);   /* no memfd: as before */
    struct stat st;
    if (placeholder < 0 || fstat(placeholder, &st) != 0) {
        if (placeholder >= 0) close(placeholder);
        return;
    }
    if (dup3(placeholder, fd, O_CLOEXEC) == fd && S_ISREG(st.st_mode)) {
        parked_dev = st.st_dev;
        parked_ino = st.st_ino;
    }
    close(placeholder);
}

/* ---- Pointer ------------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    char *addr;
    const char *pointee;   /* the struct the prototype says it points to ("struct timespec"), or NULL; a string
                              of the trampolines library, which stays loaded */
} mrh_pointer;

static PyTypeObject mrh_pointer_type;

PyObject *mrh_py_typed_pointer(void *p, const char *pointee)
{
    mrh_pointer *o = PyObject_New(mrh_pointer, &mrh_pointer_type);
    if (o) {
        o->addr = p;
        o->pointee = pointee;
    }
    return (PyObject *)o;
}

PyObject *mrh_py_pointer(void *p) { return mrh_py_typed_pointer(p, NULL); }

/* p.cast(name=None): a struct view (mrhooker/_views.py) of the memory at p, of the type named or else of the
 * one the prototype gives. */
static PyObject *pointer_cast(mrh_pointer *self, PyObject *args)
{
    PyObject *name = Py_None;
    if (!PyArg_ParseTuple(args, "|O:cast", &name)) return NULL;
    PyObject *views = PyImport_ImportModule("mrhooker._views");
    if (!views) return NULL;
    PyObject *pointee = self->pointee ? PyUnicode_FromString(self->pointee) : Py_NewRef(Py_None);
    PyObject *view = pointee ? PyObject_CallMethod(views, "cast", "OOO", (PyObject *)self, name, pointee) : NULL;
    Py_XDECREF(pointee);
    Py_DECREF(views);
    return view;
}

static int pointer_check(mrh_pointer *self)
{
    if (self->addr) return 0;
    PyErr_SetString(PyExc_ValueError, "NULL pointer");
    return -1;
}

/* Memory behind a Pointer may be anything the program passed: freed, unmapped, read-only, a length too long.
 * Every access goes through the kernel (process_vm_readv/writev on this very process), which fails with EFAULT
 * where a plain access would crash the target: a bad address is a Python ValueError instead. Cost: one
 * system call an access (~0.2-0.5 µs; a hook's Python costs about as much). Where a sandbox forbids those
 * calls (seccomp: EPERM, ENOSYS), the access is made directly, as C would. */
static int memory_access(void *local, char *target, size_t n, int write)
{
    if (n == 0) return 0;
    struct iovec here = {local, n}, there = {target, n};
    ssize_t done = syscall(write ? SYS_process_vm_writev : SYS_process_vm_readv, (long)getpid(), &here, 1L,
                           &there, 1L, 0L);
    if (done == (ssize_t)n) return 0;
    if (done < 0 && (errno == EPERM || errno == ENOSYS)) {
        if (write) memcpy(target, local, n);
        else memcpy(local, target, n);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "cannot %s %zd bytes at %p: the address is not mapped%s", write ? "write" : "read",
                 (Py_ssize_t)n, target, write ? " or not writable" : "");
    return -1;
}

/* The address offset bytes on, if the pointer isn't NULL and n isn't negative. */
static char *pointer_at(mrh_pointer *self, Py_ssize_t offset, Py_ssize_t n)
{
    if (pointer_check(self) < 0) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative length");
        return NULL;
    }
    return self->addr + offset;
}

static PyObject *pointer_read(mrh_pointer *self, PyObject *args)
{
    Py_ssize_t n, offset = 0;
    if (!PyArg_ParseTuple(args, "n|n:read", &n, &offset)) return NULL;
    char *at = pointer_at(self, offset, n);
    if (!at) return NULL;
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, n);
    if (bytes && memory_access(PyBytes_AS_STRING(bytes), at, n, 0) < 0) Py_CLEAR(bytes);
    return bytes;
}

static PyObject *pointer_string(mrh_pointer *self, PyObject *args)
{
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "|n:string", &offset)) return NULL;
    char *at = pointer_at(self, offset, 0);
    if (!at) return NULL;
    /* page by page, up to the NUL: the string may end just before an unmapped page */
    char page[4096];
    PyObject *parts = PyBytes_FromStringAndSize(NULL, 0);
    while (parts) {
        size_t chunk = 4096 - ((uintptr_t)at & 4095);
        if (memory_access(page, at, chunk, 0) < 0) {
            Py_CLEAR(parts);
            break;
        }
        char *nul = memchr(page, 0, chunk);
        PyBytes_ConcatAndDel(&parts, PyBytes_FromStringAndSize(page, nul ? nul - page : (Py_ssize_t)chunk));
        if (nul) break;
        at += chunk;
    }
    return parts;
}

static PyObject *pointer_write(mrh_pointer *self, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "y*|n:write", &data, &offset)) return NULL;
    char *at = pointer_at(self, offset, 0);
    int rc = at ? memory_access(data.buf, at, data.len, 1) : -1;
    Py_ssize_t n = data.len;
    PyBuffer_Release(&data);
    return rc < 0 ? NULL : PyLong_FromSsize_t(n);
}

/* Typed reads and writes: read_u32(offset=0), write_i64(value, offset=0), ... in the target's byte order. */
enum { T_INT, T_UINT, T_FLOAT, T_PTR };

static PyObject *typed_read(mrh_pointer *self, PyObject *args, int kind, int size, const char *name)
{
    Py_ssize_t offset = 0;
    union { int8_t i8; int16_t i16; int32_t i32; int64_t i64; uint8_t u8; uint16_t u16; uint32_t u32;
            uint64_t u64; float f; double d; void *p; } v;
    if (!PyArg_ParseTuple(args, "|n", &offset)) return NULL;
    char *at = pointer_at(self, offset, size);
    if (!at || memory_access(&v, at, size, 0) < 0) return NULL;
    (void)name;
    switch (kind) {
    case T_INT:
        return PyLong_FromLongLong(size == 1 ? v.i8 : size == 2 ? v.i16 : size == 4 ? v.i32 : v.i64);
    case T_UINT:
        return PyLong_FromUnsignedLongLong(size == 1 ? v.u8 : size == 2 ? v.u16 : size == 4 ? v.u32 : v.u64);
    case T_FLOAT:
        return PyFloat_FromDouble(size == 4 ? v.f : v.d);
    default:
        return mrh_py_pointer(v.p);
    }
}

static PyObject *typed_write(mrh_pointer *self, PyObject *args, int kind, int size, const char *name)
{
    PyObject *value;
    Py_ssize_t offset = 0;
    union { int8_t i8; int16_t i16; int32_t i32; uint64_t u64; float f; double d; } v;
    if (!PyArg_ParseTuple(args, "O|n", &value, &offset)) return NULL;
    if (kind == T_FLOAT) {
        double d = PyFloat_AsDouble(value);
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        if (size == 4) v.f = (float)d;
        else v.d = d;
    } else {
        unsigned long long bits;
        if (kind == T_PTR && (value == Py_None || PyObject_TypeCheck(value, &mrh_pointer_type))) {
            bits = value == Py_None ? 0 : (uintptr_t)((mrh_pointer *)value)->addr;
        } else {
            if (!PyLong_Check(value)) {
                PyErr_Format(PyExc_TypeError, "Pointer.%s: the value must be an int%s, not %.80s", name,
                             kind == T_PTR ? ", a Pointer or None" : "", Py_TYPE(value)->tp_name);
                return NULL;
            }
            int overflow = 0;
            long long s = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (s == -1 && PyErr_Occurred()) return NULL;
            int is_signed = kind == T_INT, bits_n = size * 8, fits;
            if (overflow > 0) {
                bits = PyLong_AsUnsignedLongLong(value);
                fits = !is_signed && bits_n == 64 && !PyErr_Occurred();
                PyErr_Clear();
            } else {
                bits = (unsigned long long)s;
                fits = overflow == 0 && (is_signed ? bits_n == 64 || (s >= -(1LL << (bits_n - 1)) &&
                                                                      s < (1LL << (bits_n - 1)))
                                                   : s >= 0 && (bits_n == 64 || s < (1LL << bits_n)));
            }
            if (!fits) {
                PyErr_Format(PyExc_OverflowError, "Pointer.%s: %S does not fit a%s %s %d-bit integer", name, value,
                             is_signed ? "" : "n", is_signed ? "signed" : "unsigned", bits_n);
                return NULL;
            }
        }
        if (size == 1) v.i8 = (int8_t)bits;
        else if (size == 2) v.i16 = (int16_t)bits;
        else if (size == 4) v.i32 = (int32_t)bits;
        else v.u64 = bits;
    }
    char *at = pointer_at(self, offset, size);
    if (!at || memory_access(&v, at, size, 1) < 0) return NULL;
    Py_RETURN_NONE;
}

#define TYPED(name, kind, size)                                                                                   \
    static PyObject *pointer_read_##name(mrh_pointer *s, PyObject *a) { return typed_read(s, a, kind, size, "read_" #name); } \
    static PyObject *pointer_write_##name(mrh_pointer *s, PyObject *a) { return typed_write(s, a, kind, size, "write_" #name); }
TYPED(i8, T_INT, 1) TYPED(i16, T_INT, 2) TYPED(i32, T_INT, 4) TYPED(i64, T_INT, 8)
TYPED(u8, T_UINT, 1) TYPED(u16, T_UINT, 2) TYPED(u32, T_UINT, 4) TYPED(u64, T_UINT, 8)
TYPED(f32, T_FLOAT, 4) TYPED(f64, T_FLOAT, 8) TYPED(ptr, T_PTR, sizeof(void *))
#undef TYPED
#define TYPED_METHODS(name, what)                                                                                 \
    {"read_" #name, (PyCFunction)pointer_read_##name, METH_VARARGS, "read_" #name "(offset=0) -> the " what " there"}, \
    {"write_" #name, (PyCFunction)pointer_write_##name, METH_VARARGS, "write_" #name "(value, offset=0): store a " what},

static PyObject *pointer_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    unsigned long long addr = 0;
    PyObject *o = NULL;
    if (!PyArg_ParseTuple(args, "|O:Pointer", &o)) return NULL;
    if (o && o != Py_None && mrh_py_arg_int_slow(o, &addr, sizeof(void *), MRH_ADDRESS, "Pointer", 0) < 0) return NULL;
    return mrh_py_pointer((void *)(uintptr_t)addr);
}

static PyObject *pointer_int(mrh_pointer *self) { return PyLong_FromVoidPtr(self->addr); }
static int pointer_bool(mrh_pointer *self) { return self->addr != NULL; }
static Py_hash_t pointer_hash(mrh_pointer *self) { return _Py_HashPointer(self->addr); }

static PyObject *pointer_add(PyObject *a, PyObject *b)
{
    if (!PyObject_TypeCheck(a, &mrh_pointer_type) || !PyLong_Check(b)) Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t off = PyLong_AsSsize_t(b);
    if (off == -1 && PyErr_Occurred()) return NULL;
    return mrh_py_pointer(((mrh_pointer *)a)->addr + off);
}

static PyObject *pointer_repr(mrh_pointer *self)
{
    if (!self->addr) return PyUnicode_FromString("Pointer(NULL)");
    return PyUnicode_FromFormat("Pointer(%p)", self->addr);
}

static PyObject *pointer_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &mrh_pointer_type)) Py_RETURN_NOTIMPLEMENTED;
    int eq = ((mrh_pointer *)a)->addr == ((mrh_pointer *)b)->addr;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyMethodDef pointer_methods[] = {
    {"read", (PyCFunction)pointer_read, METH_VARARGS, "read(n, offset=0) -> the n bytes at the address"},
    {"string", (PyCFunction)pointer_string, METH_VARARGS, "string(offset=0) -> the bytes up to the first NUL"},
    {"write", (PyCFunction)pointer_write, METH_VARARGS, "write(data, offset=0): copy data to the address"},
    {"cast", (PyCFunction)pointer_cast, METH_VARARGS,
     "cast(type=None) -> a view of the struct at the address: cast('struct stat').st_size; without a name, of "
     "the struct the prototype says this argument points to"},
    TYPED_METHODS(i8, "signed 8-bit integer") TYPED_METHODS(i16, "signed 16-bit integer")
    TYPED_METHODS(i32, "signed 32-bit integer") TYPED_METHODS(i64, "signed 64-bit integer")
    TYPED_METHODS(u8, "unsigned 8-bit integer") TYPED_METHODS(u16, "unsigned 16-bit integer")
    TYPED_METHODS(u32, "unsigned 32-bit integer") TYPED_METHODS(u64, "unsigned 64-bit integer")
    TYPED_METHODS(f32, "float") TYPED_METHODS(f64, "double") TYPED_METHODS(ptr, "pointer (a Pointer)")
    {NULL},
};

static PyNumberMethods pointer_number = {
    .nb_add = pointer_add,
    .nb_bool = (inquiry)pointer_bool,
    .nb_int = (unaryfunc)pointer_int,
    .nb_index = (unaryfunc)pointer_int,
};

static PyTypeObject mrh_pointer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mrhooker.Pointer",
    .tp_basicsize = sizeof(mrh_pointer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An address in the target's memory, as a C pointer argument or result.\n"
              "False for NULL; int(p) is the address; read(n), string(), write(data) access memory.",
    .tp_new = pointer_new,
    .tp_repr = (reprfunc)pointer_repr,
    .tp_hash = (hashfunc)pointer_hash,
    .tp_richcompare = pointer_richcompare,
    .tp_as_number = &pointer_number,
    .tp_methods = pointer_methods,
};

/* ---- conversions --------------------------------------------------------------------------------------- */

static int arg_error(const char *func, int index, const char *expected, PyObject *o)
{
    PyErr_Format(PyExc_TypeError, "%s.original: argument %d must be %s, not %.80s", func, index + 1, expected,
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* An integer of the C type of `size` bytes and `range` (see pyrt.h), as its two's complement bits; else -1 with
 * OverflowError. index >= 0: an argument of func.original; -1: the hook's result. */
static int int_in_range(PyObject *v, unsigned long long *out, int size, int range, const char *func, int index)
{
    int overflow = 0, bits = size * 8, fits;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (s == -1 && PyErr_Occurred()) return -1;
    if (overflow > 0) {   /* above 2**63 - 1: only a 64-bit unsigned type or address takes it */
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        fits = (range == MRH_UNSIGNED || range == MRH_ADDRESS) && bits == 64 &&
               !(u == (unsigned long long)-1 && PyErr_Occurred());
        PyErr_Clear();
        s = (long long)u;
    } else if (overflow < 0) {
        fits = 0;
    } else if (range == MRH_BOOL) {
        fits = s == 0 || s == 1;
    } else {
        long long lo = range == MRH_UNSIGNED ? 0 : bits >= 64 ? LLONG_MIN : -(1LL << (bits - 1));
        long long hi = bits >= 64 ? LLONG_MAX : range == MRH_SIGNED ? (1LL << (bits - 1)) - 1
                                                                     : (long long)((1ULL << bits) - 1);
        fits = s >= lo && s <= hi;
    }
    if (!fits) {
        char type[48];
        if (range == MRH_BOOL) snprintf(type, sizeof type, "_Bool: 0 or 1");
        else if (range == MRH_ADDRESS) snprintf(type, sizeof type, "a %d-bit address", bits);
        else snprintf(type, sizeof type, "%s %d-bit integer", range == MRH_SIGNED ? "signed" : "unsigned", bits);
        if (index >= 0)
            PyErr_Format(PyExc_OverflowError, "%s.original: argument %d (%S) does not fit its C type (%s)", func,
                         index + 1, v, type);
        else
            PyErr_Format(PyExc_OverflowError, "hook %s returned %S, which does not fit its C type (%s)", func, v, type);
        return -1;
    }
    *out = (unsigned long long)s;
    return 0;
}

int mrh_py_arg_int_slow(PyObject *o, unsigned long long *out, int size, int range, const char *func, int index)
{
    if (PyLong_CheckExact(o)) return int_in_range(o, out, size, range, func, index);
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) {
        *out = (uintptr_t)((mrh_pointer *)o)->addr;
        return 0;
    }
    if (PyFloat_Check(o) || !PyIndex_Check(o)) return arg_error(func, index, "int", o);
    PyObject *i = PyNumber_Index(o);
    if (!i) return -1;
    int rc = int_in_range(i, out, size, range, func, index);
    Py_DECREF(i);
    return rc;
}

int mrh_py_arg_float(PyObject *o, double *out, const char *func, int index)
{
    if (!PyFloat_Check(o) && !PyLong_Check(o)) return arg_error(func, index, "float", o);
    *out = PyFloat_AsDouble(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

int mrh_py_arg_ldouble(PyObject *o, long double *out, const char *func, int index)
{
    double d;
    if (mrh_py_arg_float(o, &d, func, index) < 0) return -1;
    *out = d;
    return 0;
}

int mrh_py_arg_bytes(PyObject *o, const char **out, PyObject **keep, const char *func, int index)
{
    *keep = NULL;
    if (PyBytes_Check(o)) {
        const char *from = mrh_py_cstring_pointer(mrh_self(), o);   /* the caller's own string, not a copy */
        *out = from ? from : PyBytes_AS_STRING(o);
        return 0;
    }
    if (o == Py_None) {
        *out = NULL;
        return 0;
    }
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) {
        *out = ((mrh_pointer *)o)->addr;
        return 0;
    }
    if (PyUnicode_Check(o)) {
        /* Paths and names as str: the file system encoding, as os functions do. */
        if (!PyUnicode_FSConverter(o, keep)) return -1;
        *out = PyBytes_AS_STRING(*keep);
        return 0;
    }
    if (PyByteArray_Check(o)) {
        *out = PyByteArray_AS_STRING(o);
        return 0;
    }
    return arg_error(func, index, "bytes, str, Pointer or None", o);
}

int mrh_py_arg_pointer(PyObject *o, void **out, PyObject **keep, const char *func, int index)
{
    *keep = NULL;
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) {
        *out = ((mrh_pointer *)o)->addr;
        return 0;
    }
    if (o == Py_None) {
        *out = NULL;
        return 0;
    }
    if (PyLong_Check(o)) {
        unsigned long long a;
        if (int_in_range(o, &a, sizeof(void *), MRH_ADDRESS, func, index) < 0) return -1;
        *out = (void *)(uintptr_t)a;
        return 0;
    }
    if (PyBytes_Check(o)) {
        *out = PyBytes_AS_STRING(o);
        return 0;
    }
    if (PyObject_CheckBuffer(o)) {
        /* A writable or read-only buffer (bytearray, memoryview, ctypes array): its memory, for this call. */
        Py_buffer view;
        if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) return -1;
        *out = view.buf;
        PyBuffer_Release(&view);   /* o itself keeps the memory alive for the call */
        return 0;
    }
    return arg_error(func, index, "Pointer, int, bytes, a buffer or None", o);
}

static int bad_return(PyObject *o, const char *func, const char *expected)
{
    PyErr_Format(PyExc_TypeError, "hook %s returned %.80s; it must return %s", func, Py_TYPE(o)->tp_name, expected);
    return -1;
}

int mrh_py_ret_int_slow(PyObject *o, unsigned long long *out, int size, int range, const char *func)
{
    if (PyLong_CheckExact(o)) return int_in_range(o, out, size, range, func, -1);
    if (o == Py_None || PyFloat_Check(o) || !PyIndex_Check(o)) return bad_return(o, func, "an int");
    PyObject *i = PyNumber_Index(o);
    if (!i) return -1;
    int rc = int_in_range(i, out, size, range, func, -1);
    Py_DECREF(i);
    return rc;
}

int mrh_py_ret_float(PyObject *o, double *out, const char *func)
{
    if (!PyFloat_Check(o) && !PyLong_Check(o)) return bad_return(o, func, "a float");
    *out = PyFloat_AsDouble(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

int mrh_py_ret_ldouble(PyObject *o, long double *out, const char *func)
{
    double d;
    if (mrh_py_ret_float(o, &d, func) < 0) return -1;
    *out = d;
    return 0;
}

int mrh_py_ret_bytes(PyObject *o, const char **out, const char *func)
{
    if (o == Py_None) {
        *out = NULL;
        return 0;
    }
    if (PyLong_Check(o)) {
        unsigned long long a;
        if (int_in_range(o, &a, sizeof(void *), MRH_ADDRESS, func, -1) < 0) return -1;
        *out = (const char *)(uintptr_t)a;
        return 0;
    }
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) {
        *out = ((mrh_pointer *)o)->addr;
        return 0;
    }
    if (PyBytes_Check(o)) {
        const char *from = mrh_py_cstring_pointer(mrh_self(), o);   /* an argument's or an original's result */
        if (from) {
            *out = from;
            return 0;
        }
        /* The caller keeps the pointer for as long as it likes: keep one copy of each returned value. */
        PyObject *kept = PyDict_SetDefault(returned_strings, o, o);
        if (!kept) return -1;
        *out = PyBytes_AS_STRING(kept);
        return 0;
    }
    return bad_return(o, func, "bytes, a Pointer, an int or None");
}

int mrh_py_ret_pointer(PyObject *o, void **out, const char *func)
{
    /* bytes are kept alive as for const char * (getenv returns char * that callers only read) */
    return mrh_py_ret_bytes(o, (const char **)out, func);
}

PyObject *mrh_py_argcount(const char *func, int expected, Py_ssize_t got)
{
    PyErr_Format(PyExc_TypeError, "%s.original takes %d argument%s (%zd given)", func, expected,
                 expected == 1 ? "" : "s", got);
    return NULL;
}

PyObject *mrh_py_no_original(mrh_py_hook *hook)
{
    PyErr_Format(PyExc_OSError, "%s.original: no definition of %s is loaded in this process", hook->name, hook->name);
    return NULL;
}

/* ---- reporting failures ------------------------------------------------------------------------------ */

/* Prints the pending exception, with its traceback, as a failure of hook `name` (defined in `where`), through
 * mrhooker._inside.report_hook_error; `outcome` says what the target got instead. Clears the exception. */
static void report_pending(const char *name, const char *where, const char *outcome)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    PyObject *r = inside_report && value ? PyObject_CallFunction(inside_report, "ssOs", name, where, value, outcome)
                                         : NULL;
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

void mrh_py_report(mrh_py_hook *hook)
{
    report_pending(hook->name, hook->text, "the call went to the original");
}

/* Cython hooks (.pyx): the generated code reports an exception it can't raise to its caller through here
 * (mrhooker routes Cython's __Pyx_WriteUnraisable calls to it), so it is printed like a .py hook's: with a
 * traceback line for the hook, naming it. */
MRH_EXPORT void mrh_pyx_unraisable(const char *name, int clineno, int lineno, const char *filename,
                                   int full_traceback, int nogil)
{
    PyGILState_STATE gil = PyGILState_UNLOCKED;
    if (nogil) gil = mrh_gil_ensure();
    const char *dot = strrchr(name, '.');
    const char *func = dot ? dot + 1 : name;
    _PyTraceback_Add(func, filename, lineno);   /* Cython made no traceback entry for the hook itself */
    report_pending(func, filename, "it returned 0, as Cython hooks that can't raise do");
    if (nogil) mrh_gil_release(gil);
}

/* Cython's original(name): the next definition of name in the target (what dlsym(RTLD_NEXT, name) gives the
 * preload library). A name that nothing defines gets a stand-in that says so once and fails with ENOSYS,
 * rather than a NULL that crashes the target when called. */
static long missing_original(void)
{
    *mrh_target_errno() = ENOSYS;
    return -1;
}

MRH_EXPORT void *mrh_original(const char *name)
{
    void *p = mrh_rt->original(name);
    if (MRH_LIKELY(p != NULL)) return p;
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED)) {
        char line[512];
        int n = snprintf(line, sizeof line,
                         "mrhooker: original(\"%.200s\"): no function of that name is loaded in this process; "
                         "calls of it return -1 with errno ENOSYS\n", name);
        int fd = mrh_output_open(mrh_rt->output, mrh_rt->output_id);
        if (fd >= 0) {
            mrh_output_write_all(fd, line, n < (int)sizeof line ? n : (int)sizeof line - 1, 1);
            close(fd);
        }
    }
    return (void *)missing_original;
}

/* A Cython hook's dlsym() (the 2011 idiom: dlsym(RTLD_NEXT, "send")) would search this namespace, whose libc
 * is not the target's: the hook library is linked with --wrap=dlsym, and RTLD_NEXT/RTLD_DEFAULT lookups go
 * to the target side. Likewise its errno (--wrap=__errno_location) is the target's. */
MRH_EXPORT void *__wrap_dlsym(void *handle, const char *name)
{
    if (handle == RTLD_NEXT || handle == RTLD_DEFAULT) return mrh_rt->original(name);
    return dlsym(handle, name);
}

MRH_EXPORT int *__wrap___errno_location(void) { return mrh_target_errno(); }

/* ---- mrhooker._native ---------------------------------------------------------------------------------- */

static PyObject *native_set_errno(PyObject *self, PyObject *arg)
{
    long e = PyLong_AsLong(arg);
    if (e == -1 && PyErr_Occurred()) return NULL;
    mrh_thread *t = mrh_self();
    t->errno_set = 1;
    t->errno_value = (int)e;
    Py_RETURN_NONE;
}

static PyObject *native_get_errno(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(mrh_hook_errno(mrh_self()));
}

static PyObject *native_in_hook(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(mrh_self()->depth > 0);
}

static PyObject *native_disable(PyObject *self, PyObject *unused)
{
    mrh_rt->disable();
    Py_RETURN_NONE;
}

/* The hook output could not be written (a full disk, -o /dev/full): the program runs on, and the launcher is
 * told once per process (a "lost ERRNO" record: preload.c, reports), so that mrhooker's last lines say so rather
 * than the lines going missing without a word. */
static pid_t lost_reported_by;   /* the process that has reported it (a forked child reports its own); the first
                                    thread to exchange its pid in reports */
/* A loss the report could not be opened for (every descriptor below the limit in use: the output's own open had
 * failed with EMFILE): told at a later write, or at exit, once one is free. Moved with the GIL held. */
static int lost_untold;
static pid_t lost_untold_by;

static void output_lost(int err)
{
    pid_t pid = getpid();
    if (mrh_rt->report == NULL || __atomic_load_n(&lost_reported_by, __ATOMIC_RELAXED) == pid) return;
    int fd = mrh_output_open(mrh_rt->report, mrh_rt->report_id);
    if (fd < 0) {
        lost_untold = err, lost_untold_by = pid;
        return;
    }
    lost_untold = 0;
    if (__atomic_exchange_n(&lost_reported_by, pid, __ATOMIC_RELAXED) != pid) {
        char line[32];
        int n = snprintf(line, sizeof line, "lost %d\n", err);
        mrh_output_write_all(fd, line, (size_t)n, 1);
    }
    close(fd);
}

/* A loss not told yet, by this process (not one a fork child inherited): told now if it can be. */
static void output_lost_untold(void)
{
    if (MRH_UNLIKELY(lost_untold) && lost_untold_by == getpid()) output_lost(lost_untold);
}

/* write_output(data): one write of data (whole lines) to the hook output, without the GIL. An output that can't
 * be opened (no descriptor free) loses the lines as one that can't be written does, and says so. */
static PyObject *native_write_output(PyObject *self, PyObject *arg)
{
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    errno = 0;
    int fd = output_descriptor(), err = fd < 0 && !__atomic_load_n(&mrh_rt->detached, __ATOMIC_ACQUIRE) ?
                                                   (errno ? errno : EBADF) : 0;
    if (fd >= 0) {
        Py_BEGIN_ALLOW_THREADS
        err = mrh_output_write_all(fd, data.buf, (size_t)data.len, output_piped);
        Py_END_ALLOW_THREADS
    }
    if (err) output_lost(err);
    else output_lost_untold();
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
}

/* os.register_at_fork callbacks (see fork_prepare): this thread is between the interpreter's PyOS_BeforeFork and
 * its PyOS_AfterFork_*. */
static PyObject *native_fork_begins(PyObject *self, PyObject *unused)
{
    mrh_self()->in_python_fork = 1;
    Py_RETURN_NONE;
}

static PyObject *native_fork_ended(PyObject *self, PyObject *unused)
{
    mrh_self()->in_python_fork = 0;
    Py_RETURN_NONE;
}

/* The child of a fork: only the forking thread is left, with its thread state. Another one, for good, that no
 * thread uses: when the forking thread's is deleted (it ends, and the child goes on; or its hook was the last
 * use on an ending thread), the interpreter's list of thread states is not empty. CPython 3.11 and 3.12 abort
 * making a thread state after that ("init_threadstate: thread state already initialized"). */
static PyObject *native_fork_ended_in_child(PyObject *self, PyObject *unused)
{
    mrh_self()->in_python_fork = 0;
    if (!PyThreadState_New(PyInterpreterState_Get())) return NULL;
    Py_RETURN_NONE;
}

/* compile(source, path): the code of a hook script (bytes, its coding cookie honoured), as the builtin
 * compile(source, path, "exec", dont_inherit=True) makes it, without what the builtin does first: its test for an
 * ast.AST source creates Python's AST classes (~1,500 objects, ~200 kB left in every hooked process). */
static PyObject *native_compile(PyObject *self, PyObject *args)
{
    const char *source;
    PyObject *path;
    if (!PyArg_ParseTuple(args, "yO:compile", &source, &path)) return NULL;   /* embedded NUL: ValueError */
    PyCompilerFlags flags = {0};
    flags.cf_flags = PyCF_SOURCE_IS_UTF8;   /* as the builtin sets them */
    flags.cf_feature_version = PY_MINOR_VERSION;
    return Py_CompileStringObject(source, path, Py_file_input, &flags, -1);
}

static PyObject *native_register(PyObject *self, PyObject *args)
{
    const char *spec;
    PyObject *func;
    int blocks = 1;
    if (!PyArg_ParseTuple(args, "sO|p:register", &spec, &func, &blocks)) return NULL;
    for (int i = 0; i < py_nhooks; i++) {
        if (strcmp(py_hooks[i].spec, spec) == 0) {
            py_hooks[i].keeps_gil = !blocks;
            Py_XSETREF(py_hooks[i].func, Py_NewRef(func));
            return PyCFunction_New(&py_hooks[i].original_def, NULL);
        }
    }
    PyErr_Format(PyExc_LookupError, "@hook(%R) was not in the script when mrhooker built it", PyTuple_GET_ITEM(args, 0));
    return NULL;
}

static PyMethodDef native_methods[] = {
    {"set_errno", native_set_errno, METH_O, NULL},
    {"get_errno", native_get_errno, METH_NOARGS, NULL},
    {"in_hook", native_in_hook, METH_NOARGS, NULL},
    {"disable", native_disable, METH_NOARGS, NULL},
    {"write_output", native_write_output, METH_O, NULL},
    {"register", native_register, METH_VARARGS, NULL},
    {"compile", native_compile, METH_VARARGS, NULL},
    {"fork_begins", native_fork_begins, METH_NOARGS, NULL},
    {"fork_ended", native_fork_ended, METH_NOARGS, NULL},
    {"fork_ended_in_child", native_fork_ended_in_child, METH_NOARGS, NULL},
    {NULL},
};

static struct PyModuleDef native_def = {PyModuleDef_HEAD_INIT, "mrhooker._native", NULL, -1, native_methods};

/* Creates mrhooker._native in sys.modules (it lives in this library, not in a file of its own). */
static int native_install(void)
{
    if (PyType_Ready(&mrh_pointer_type) < 0) return -1;
    PyObject *m = PyModule_Create(&native_def);
    if (!m) return -1;
    Py_INCREF(&mrh_pointer_type);
    if (PyModule_AddObject(m, "Pointer", (PyObject *)&mrh_pointer_type) < 0 ||
        PyDict_SetItemString(PyImport_GetModuleDict(), "mrhooker._native", m) < 0) {
        Py_DECREF(m);
        return -1;
    }
    Py_DECREF(m);
    returned_strings = PyDict_New();
    return returned_strings ? 0 : -1;
}

/* ---- threads, fork, exit: the target side calls these (mrh_hook_ops) ---------------------------------- */

/* Made through PyGILState so that it is registered as this thread's (PyGILState_Ensure() in Cython's `with gil`
 * and in libraries finds it); the reference count it starts with keeps their PyGILState_Release() from
 * deleting it. */
PyThreadState *mrh_make_thread_state(mrh_thread *t)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();   /* the start thread's: the interpreter's own */
    if (!ts || t->exited) {
        PyGILState_Ensure();   /* on an ending thread: one for this use only, deleted by mrh_drop_thread_state */
        ts = PyEval_SaveThread();
        if (!t->exited) {
            t->tstate_owned = 1;
            mrh_rt->track_thread_state(t);   /* deleted at thread exit */
        }
    }
    t->tstate = ts;
    return ts;
}

void mrh_drop_thread_state(mrh_thread *t)   /* with the GIL held on an ending thread (mrh_release) */
{
    t->tstate = NULL;
    PyGILState_Release(PyGILState_UNLOCKED);   /* deleted if made by mrh_make_thread_state; the GIL released */
}

MRH_EXPORT void mrh_thread_init(void)
{
    if (ctype_init) ctype_init();   /* without it this libc's ctype tables are NULL in this thread */
}

/* Runs in thread_key's destructor (preload.c), when libc may have cleared PyGILState's own key for this thread
 * already (it visits the keys in turn, clearing each): the thread state is deleted directly, not through
 * PyGILState_Release (which needs that key). */
static void thread_exit(mrh_thread *t)
{
    PyThreadState *ts = t->tstate;
    int owned = t->tstate_owned;
    t->tstate = NULL;   /* the interpreter's own (the start thread's) stays */
    t->tstate_owned = 0;
    if (!ts || !owned) return;
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();   /* and the GIL is released */
}

/* The hook interpreter's fork protocol (PyOS_BeforeFork, PyOS_AfterFork_Parent/_Child) runs on the forking
 * thread, with the GIL, whichever thread forks:
 * - a thread outside Python (the usual case: the program forks): it takes the GIL, so that no other thread
 *   holds it at the fork;
 * - os.fork in a hook's Python: CPython runs the protocol itself (in_python_fork, set by the callbacks _inside
 *   registers with os.register_at_fork);
 * - a thread that holds the GIL otherwise (an original that forks called by a hook that keeps the GIL, a
 *   Cython `with gil` hook calling fork): it runs the protocol without taking the GIL;
 * - a signal handler interrupting code that holds the GIL: nothing (Python can't run there).
 * In the child, PyOS_AfterFork_Child deletes the other threads' thread states, and the callback
 * fork_ended_in_child gives the interpreter one that no thread uses, so that its list never becomes empty.
 * Not covered: a lock of this namespace's own libc (its resolver's, in a hook's getaddrinfo) that another
 * thread held, the GIL released, at the fork stays held in the child, whose libc is the target's. */
static void fork_prepare(mrh_thread *t)
{
    if (PyGILState_Check()) {
        if (t->in_python_fork || t->handler.frame) return;
        PyOS_BeforeFork();
        t->fork_held = MRH_FORK_HAD_GIL;
        return;
    }
    PyThreadState *ts = mrh_thread_state(t);
    if (!ts) return;
    PyEval_RestoreThread(ts);
    PyOS_BeforeFork();
    t->fork_held = MRH_FORK_TOOK_GIL;
}

static void fork_parent(mrh_thread *t)
{
    int held = t->fork_held;
    t->fork_held = MRH_FORK_NOTHING;
    PyOS_AfterFork_Parent();
    if (held == MRH_FORK_TOOK_GIL) mrh_release(t);
}

static void fork_child(mrh_thread *t)
{
    int held = t->fork_held;
    t->fork_held = MRH_FORK_NOTHING;
    PyOS_AfterFork_Child();
    if (held == MRH_FORK_TOOK_GIL) mrh_release(t);
}

static void at_exit(void)
{
    mrh_thread *t = mrh_self();
    PyThreadState *ts = mrh_thread_state(t);
    if (!ts || !inside_at_exit) return;
    PyEval_RestoreThread(ts);
    PyObject *r = PyObject_CallNoArgs(inside_at_exit);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    output_lost_untold();
    mrh_release(t);
}

static void *hook_symbol(const char *name) { return hooks_handle ? dlsym(hooks_handle, name) : NULL; }

static const mrh_hook_ops hook_ops = {mrh_thread_init, thread_exit, fork_prepare, fork_parent, fork_child, at_exit,
                                      hook_symbol, park_output};

/* ---- starting ------------------------------------------------------------------------------------------ */

static void warn(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = mrh_output_format_warning(line, sizeof line, fmt, ap);
    va_end(ap);
    int fd = output_descriptor();
    if (fd >= 0) mrh_output_write_all(fd, line, n, 1);
}

static void warn_exception(const char *what)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    warn("%s: %s%s%.600s", what, type ? ((PyTypeObject *)type)->tp_name : "error", msg ? ": " : "", msg ? msg : "");
    PyErr_Clear();
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

static PyStatus set_bytes(PyConfig *c, wchar_t **field, const char *value)
{
    return value ? PyConfig_SetBytesString(c, field, value) : PyStatus_Ok();
}

/* The hooks' interpreter: isolated from the environment, no site import (fast start; sys.path is the launching
 * Python's, so its packages are seen), no signal handlers, C stdio and locale left alone. */
static int start_interpreter(void)
{
    const mrh_runtime *a = mrh_rt;
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st)) goto fail;

    PyConfig c;
    PyConfig_InitIsolatedConfig(&c);
    c.site_import = 0;
    c.install_signal_handlers = 0;
    c.configure_c_stdio = 0;
    c.parse_argv = 0;
    c.pathconfig_warnings = 0;
    c.user_site_directory = 0;
    c.faulthandler = 0;
    c.write_bytecode = 0;   /* nothing written into the target's (or the script's) directories */
    st = set_bytes(&c, &c.home, a->python_home);
    if (!PyStatus_Exception(st)) st = set_bytes(&c, &c.executable, a->executable);
    if (!PyStatus_Exception(st)) st = set_bytes(&c, &c.program_name, a->executable);
    /* sys.path: one entry per line (paths may hold ':'). */
    for (const char *p = a->python_path ? a->python_path : ""; !PyStatus_Exception(st) && *p;) {
        size_t n = strcspn(p, "\n");
        char entry[4096];
        if (n > 0 && n < sizeof entry) {
            memcpy(entry, p, n);
            entry[n] = 0;
            wchar_t *w = Py_DecodeLocale(entry, NULL);
            if (w) {
                st = PyWideStringList_Append(&c.module_search_paths, w);
                PyMem_RawFree(w);
            }
        }
        p += n + (p[n] == '\n');
    }
    c.module_search_paths_set = 1;
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st)) goto fail;
    return 0;
fail:
    warn("cannot start Python in this process (%s): hooks are off", st.err_msg ? st.err_msg : "unknown error");
    return -1;
}

/* A .py build's trampolines, loaded before its script is imported: their table (mrh_py_hooks, generated), which
 * the script's @hook decorators fill (native_register), is the one in use from now on (an attached process's
 * earlier build may have had another). 0, or -1 having said why. */
static int load_trampolines(const mrh_runtime *rt)
{
    if (strcmp(rt->kind, "py") != 0) return 0;
    hooks_handle = dlopen(rt->hooks_path, RTLD_NOW | RTLD_LOCAL);
    mrh_py_hook *table = hooks_handle ? dlsym(hooks_handle, "mrh_py_hooks") : NULL;
    const int *n = hooks_handle ? dlsym(hooks_handle, "mrh_py_nhooks") : NULL;
    if (table && n) {
        py_hooks = table;
        py_nhooks = *n;
        return 0;
    }
    warn("cannot load the hook library: %s; hooks are off in this process", hooks_handle ? "no table" : dlerror());
    return -1;
}

/* Imports rt's script through mrhooker._inside (with the GIL): the hook side's entry points, or NULL (said). */
static const mrh_hook_ops *import_script(PyObject *inside, const mrh_runtime *rt)
{
    /* Paths as os.fsdecode gives them: a directory's name need not be UTF-8 ("s" would fail on it). */
    PyObject *r = PyObject_CallMethod(inside, "start", "ssNN", rt->kind, rt->module,
                                      PyUnicode_DecodeFSDefault(rt->script ? rt->script : ""),
                                      PyUnicode_DecodeFSDefault(rt->hooks_path));
    if (!r) {
        warn_exception("the hook runtime failed to start");
        return NULL;
    }
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (!ok) return NULL;   /* False: it has said why */
    if (!hooks_handle) hooks_handle = dlopen(rt->hooks_path, RTLD_NOW | RTLD_NOLOAD);   /* the Cython module */
    if (hooks_handle) return &hook_ops;
    warn("the hook library %s is not loaded after importing the script", rt->hooks_path);
    return NULL;
}

MRH_EXPORT const mrh_hook_ops *mrh_hook_start(const mrh_runtime *rt)
{
    mrh_rt = rt;
    mrh_tls_offset = rt->tls_offset;
    mrh_errno_offset = rt->errno_offset;
    ctype_init = (void (*)(void))dlsym(RTLD_DEFAULT, "__ctype_init");
    if (load_trampolines(rt) < 0) return NULL;
    if (start_interpreter() < 0) return NULL;
    const mrh_hook_ops *result = NULL;
    PyObject *inside = NULL;
    if (native_install() < 0) {
        warn_exception("cannot set up the hook runtime");
        goto done;
    }
    inside = PyImport_ImportModule("mrhooker._inside");
    if (!inside) {
        warn_exception("cannot import mrhooker in the target (is it installed for this Python?)");
        goto done;
    }
    inside_report = PyObject_GetAttrString(inside, "report_hook_error");
    inside_at_exit = PyObject_GetAttrString(inside, "at_exit");
    result = import_script(inside, rt);
done:
    Py_XDECREF(inside);
    PyEval_SaveThread();   /* the start thread's thread state stays: it is the interpreter's main one */
    return result;
}

/* An attach of another build (another script, or the same one changed) into a process whose hooks an earlier
 * attach started (preload.c, load_hook_side): the interpreter started then is the process's for good, with its
 * threads' states in the thread-local block that attach builds share (tls.c); the new build's runtime and script
 * take the place of the old ones, which are inert (detached). attach.py lets this happen only with this same
 * file (runtime and Python) and an attach build; the thread-local block is checked here too. */
MRH_EXPORT const mrh_hook_ops *mrh_hook_restart(const mrh_runtime *rt)
{
    mrh_rt = rt;   /* its output is where this attach's messages go */
    if (!inside_at_exit || rt->tls_offset != mrh_tls_offset || rt->errno_offset != mrh_errno_offset) {
        warn("the hooks an earlier attach started in this process can't take this build's; hooks are off in "
             "this process");
        return NULL;
    }
    PyGILState_STATE gil = PyGILState_Ensure();   /* this thread's state if it ran hooks, else one for now */
    const mrh_hook_ops *result = NULL;
    hooks_handle = NULL;
    if (load_trampolines(rt) == 0) {
        PyObject *inside = PyImport_ImportModule("mrhooker._inside");
        if (inside) result = import_script(inside, rt);
        else warn_exception("cannot import mrhooker in the target");
        Py_XDECREF(inside);
    }
    PyGILState_Release(gil);
    return result;
}

/* pyrt.c: the Python side of mrhooker's runtime, compiled into every hook library.
 *
 * The preload library (preload.c) calls mrh_hooklib_start() once, at the first hooked call of a process,
 * holding its start lock. This file then either starts an interpreter of its own (the target is not Python)
 * or joins the target's (it is), builds the mrhooker._native module, and hands over to
 * mrhooker._inside.start(), which sets up hook output and imports the hook script.
 *
 * Thread states: every thread that runs a hook gets one Python thread state for the rest of its life (made
 * through PyGILState so that PyGILState_Ensure() in Cython's `with gil` functions finds it, and deleted at
 * thread exit by preload.c's key destructor). Making and dropping one per call would cost microseconds.
 */
#include "pyrt.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
#endif

int mrh_py_attached_mode;
static PyThreadState *own_main_tstate;   /* made by our Py_Initialize; we never finalize, so it lives on */
static PyObject *inside_report;    /* mrhooker._inside.report_hook_error */
static PyObject *inside_at_exit;   /* mrhooker._inside.at_exit */
static PyObject *returned_strings; /* bytes returned by hooks as const char *: kept alive for the caller */

/* ---- Pointer --------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    char *addr;
} mrh_pointer;

static PyTypeObject mrh_pointer_type;

PyObject *mrh_py_pointer(void *p)
{
    mrh_pointer *o = PyObject_New(mrh_pointer, &mrh_pointer_type);
    if (o) o->addr = p;
    return (PyObject *)o;
}

static int pointer_check(mrh_pointer *self)
{
    if (self->addr) return 0;
    PyErr_SetString(PyExc_ValueError, "NULL pointer");
    return -1;
}

static PyObject *pointer_read(mrh_pointer *self, PyObject *args)
{
    Py_ssize_t n, offset = 0;
    if (!PyArg_ParseTuple(args, "n|n:read", &n, &offset) || pointer_check(self) < 0) return NULL;
    if (n < 0) { PyErr_SetString(PyExc_ValueError, "negative length"); return NULL; }
    return PyBytes_FromStringAndSize(self->addr + offset, n);
}

static PyObject *pointer_string(mrh_pointer *self, PyObject *args)
{
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "|n:string", &offset) || pointer_check(self) < 0) return NULL;
    return PyBytes_FromString(self->addr + offset);
}

static PyObject *pointer_write(mrh_pointer *self, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "y*|n:write", &data, &offset)) return NULL;
    if (pointer_check(self) < 0) { PyBuffer_Release(&data); return NULL; }
    memcpy(self->addr + offset, data.buf, data.len);
    Py_ssize_t n = data.len;
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(n);
}

static PyObject *pointer_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    unsigned long long addr = 0;
    PyObject *o = NULL;
    if (!PyArg_ParseTuple(args, "|O:Pointer", &o)) return NULL;
    if (o && o != Py_None && mrh_py_arg_int(o, &addr, "Pointer", 0) < 0) return NULL;
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

/* ---- conversions -------------------------------------------------------------------------------- */

static int arg_error(const char *func, int index, const char *expected, PyObject *o)
{
    PyErr_Format(PyExc_TypeError, "%s.original: argument %d must be %s, not %.80s", func, index + 1, expected,
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* C conversion semantics: an int is reduced modulo 2**64, then cast to the parameter's type by the caller. */
int mrh_py_arg_int(PyObject *o, unsigned long long *out, const char *func, int index)
{
    if (PyLong_Check(o)) {
        *out = PyLong_AsUnsignedLongLongMask(o);
        return (*out == (unsigned long long)-1 && PyErr_Occurred()) ? -1 : 0;
    }
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) {
        *out = (uintptr_t)((mrh_pointer *)o)->addr;
        return 0;
    }
    PyObject *i = PyNumber_Index(o);
    if (!i) {
        PyErr_Clear();
        return arg_error(func, index, "int", o);
    }
    *out = PyLong_AsUnsignedLongLongMask(i);
    Py_DECREF(i);
    return 0;
}

int mrh_py_arg_float(PyObject *o, double *out, const char *func, int index)
{
    *out = PyFloat_AsDouble(o);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return arg_error(func, index, "float", o);
    }
    return 0;
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
    if (PyBytes_Check(o)) { *out = PyBytes_AS_STRING(o); return 0; }
    if (o == Py_None) { *out = NULL; return 0; }
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) { *out = ((mrh_pointer *)o)->addr; return 0; }
    if (PyUnicode_Check(o)) {
        /* Paths and names as str: the file system encoding, as os functions do. */
        if (!PyUnicode_FSConverter(o, keep)) return -1;
        *out = PyBytes_AS_STRING(*keep);
        return 0;
    }
    if (PyByteArray_Check(o)) { *out = PyByteArray_AS_STRING(o); return 0; }
    return arg_error(func, index, "bytes, str, Pointer or None", o);
}

int mrh_py_arg_pointer(PyObject *o, void **out, PyObject **keep, const char *func, int index)
{
    *keep = NULL;
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) { *out = ((mrh_pointer *)o)->addr; return 0; }
    if (o == Py_None) { *out = NULL; return 0; }
    if (PyLong_Check(o)) { *out = PyLong_AsVoidPtr(o); return PyErr_Occurred() ? -1 : 0; }
    if (PyBytes_Check(o)) { *out = PyBytes_AS_STRING(o); return 0; }
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

int mrh_py_bad_return(PyObject *o, const char *func, const char *expected)
{
    PyErr_Format(PyExc_TypeError, "hook %s returned %.80s; it must return %s", func, Py_TYPE(o)->tp_name,
                 expected);
    return -1;
}

int mrh_py_ret_int(PyObject *o, unsigned long long *out, const char *func)
{
    if (PyLong_Check(o)) {
        *out = PyLong_AsUnsignedLongLongMask(o);
        return (*out == (unsigned long long)-1 && PyErr_Occurred()) ? -1 : 0;
    }
    if (o != Py_None && !PyFloat_Check(o) && PyIndex_Check(o)) {
        PyObject *i = PyNumber_Index(o);
        if (!i) return -1;
        *out = PyLong_AsUnsignedLongLongMask(i);
        Py_DECREF(i);
        return 0;
    }
    return mrh_py_bad_return(o, func, "an int");
}

int mrh_py_ret_float(PyObject *o, double *out, const char *func)
{
    if (!PyFloat_Check(o) && !PyLong_Check(o)) return mrh_py_bad_return(o, func, "a float");
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
    if (o == Py_None) { *out = NULL; return 0; }
    if (PyLong_Check(o)) { *out = PyLong_AsVoidPtr(o); return PyErr_Occurred() ? -1 : 0; }
    if (PyObject_TypeCheck(o, &mrh_pointer_type)) { *out = ((mrh_pointer *)o)->addr; return 0; }
    if (PyBytes_Check(o)) {
        /* The caller keeps the pointer for as long as it likes: keep one copy of each returned value. */
        PyObject *kept = PyDict_SetDefault(returned_strings, o, o);
        if (!kept) return -1;
        *out = PyBytes_AS_STRING(kept);
        return 0;
    }
    return mrh_py_bad_return(o, func, "bytes, a Pointer, an int or None");
}

int mrh_py_ret_pointer(PyObject *o, void **out, const char *func)
{
    if (PyLong_Check(o)) { *out = PyLong_AsVoidPtr(o); return PyErr_Occurred() ? -1 : 0; }
    /* bytes are kept alive as for const char * (getenv returns char * that callers only read) */
    return mrh_py_ret_bytes(o, (const char **)out, func);
}

PyObject *mrh_py_bytes_or_none(const char *s)
{
    if (!s) Py_RETURN_NONE;
    return PyBytes_FromString(s);
}

PyObject *mrh_py_argcount(const char *func, int expected, Py_ssize_t got)
{
    PyErr_Format(PyExc_TypeError, "%s.original takes %d argument%s (%zd given)", func, expected,
                 expected == 1 ? "" : "s", got);
    return NULL;
}

/* Prints the pending exception, with its traceback, as a failure of hook `name` (defined in `where`), through
 * mrhooker._inside.report_hook_error; `outcome` says what the target got instead. Clears the exception. */
static void report_pending(const char *name, const char *where, const char *outcome)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    PyObject *r = inside_report && value
                      ? PyObject_CallFunction(inside_report, "ssOs", name, where, value, outcome)
                      : NULL;
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

void mrh_py_report(int index)
{
    report_pending(&mrh_py_hooks ? mrh_py_hooks[index].name : "?", &mrh_py_hooks ? mrh_py_hooks[index].text : "?",
                   "the call went to the original");
}

/* Cython hooks (.pyx): the generated code reports an exception it can't raise to its caller through here
 * (mrhooker routes Cython's __Pyx_WriteUnraisable calls to it), so it is printed like a .py hook's: with a
 * traceback line for the hook, naming it. */
MRH_EXPORT void mrh_pyx_unraisable(const char *name, int clineno, int lineno, const char *filename,
                                   int full_traceback, int nogil)
{
    PyGILState_STATE gil = PyGILState_UNLOCKED;
    if (nogil) gil = PyGILState_Ensure();
    const char *dot = strrchr(name, '.');
    const char *func = dot ? dot + 1 : name;
#if PY_VERSION_HEX < 0x030D0000
    _PyTraceback_Add(func, filename, lineno);   /* Cython made no traceback entry for the hook itself */
#endif
    report_pending(func, filename, "it returned 0, as Cython hooks that can't raise do");
    if (nogil) PyGILState_Release(gil);
}

/* ---- mrhooker._native ----------------------------------------------------------------------------- */

static PyObject *native_set_errno(PyObject *self, PyObject *arg)
{
#if PY_VERSION_HEX >= 0x030D0000
    int e = PyLong_AsInt(arg);
#else
    int e = _PyLong_AsInt(arg);
#endif
    if (e == -1 && PyErr_Occurred()) return NULL;
    mrh_thread *t = &mrh_tls;
    t->errno_set = 1;
    t->errno_value = e;
    Py_RETURN_NONE;
}

static PyObject *native_get_errno(PyObject *self, PyObject *unused)
{
    mrh_thread *t = &mrh_tls;
    return PyLong_FromLong(t->errno_set ? t->errno_value : t->orig_slot >= 0 ? t->orig_errno : t->entry_errno);
}

static PyObject *native_in_hook(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(mrh_tls.depth > 0);
}

/* run_in_hook(func, *args): calls func as if inside a hook: its output goes to the hook output, hooked calls
 * it makes go to their originals. For the hook script's atexit handlers in a Python target. */
static PyObject *native_run_in_hook(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "run_in_hook needs a function");
        return NULL;
    }
    mrh_thread *t = &mrh_tls;
    t->depth++;
    PyObject *r = PyObject_Vectorcall(args[0], args + 1, nargs - 1, NULL);
    t->depth--;
    return r;
}

static PyObject *native_disable(PyObject *self, PyObject *unused)
{
    mrh_disable();
    Py_RETURN_NONE;
}

static PyObject *native_register(PyObject *self, PyObject *args)
{
    const char *spec;
    PyObject *func;
    int blocks = 1;
    if (!PyArg_ParseTuple(args, "sO|p:register", &spec, &func, &blocks)) return NULL;
    for (int i = 0; &mrh_py_nhooks && i < mrh_py_nhooks; i++) {
        if (strcmp(mrh_py_hooks[i].spec, spec) == 0) {
            mrh_py_hooks[i].keeps_gil = !blocks;
            Py_XSETREF(mrh_py_hooks[i].func, Py_NewRef(func));
            return PyCFunction_New(&mrh_py_hooks[i].original_def, NULL);
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
    {"run_in_hook", (PyCFunction)(void (*)(void))native_run_in_hook, METH_FASTCALL, NULL},
    {"register", native_register, METH_VARARGS, NULL},
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
    if (PyModule_AddObject(m, "Pointer", (PyObject *)&mrh_pointer_type) < 0) goto fail;
    PyObject *specs = PyList_New(0);
    if (!specs || PyModule_AddObject(m, "specs", specs) < 0) goto fail;
    for (int i = 0; &mrh_py_nhooks && i < mrh_py_nhooks; i++) {
        PyObject *s = PyUnicode_FromString(mrh_py_hooks[i].spec);
        if (!s || PyList_Append(specs, s) < 0) { Py_XDECREF(s); goto fail; }
        Py_DECREF(s);
    }
    PyObject *modules = PyImport_GetModuleDict();
    if (PyDict_SetItemString(modules, "mrhooker._native", m) < 0) goto fail;
    Py_DECREF(m);
    returned_strings = PyDict_New();
    return returned_strings ? 0 : -1;
fail:
    Py_DECREF(m);
    return -1;
}

/* ---- starting ------------------------------------------------------------------------------------- */

static PyStatus set_bytes(PyConfig *c, wchar_t **field, const char *value)
{
    return value ? PyConfig_SetBytesString(c, field, value) : PyStatus_Ok();
}

/* Our own interpreter, for a target that is not Python: no site import (fast start; sys.path is the launching
 * Python's, so its packages are seen), no signal handlers, the C stdio and locale of the target untouched. */
static int start_own_interpreter(const mrh_start_args *a)
{
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
    st = set_bytes(&c, &c.home, a->python_home);
    if (!PyStatus_Exception(st)) st = set_bytes(&c, &c.executable, a->executable);
    if (!PyStatus_Exception(st)) st = set_bytes(&c, &c.program_name, a->executable);
    const char *p = a->python_path ? a->python_path : "";
    while (!PyStatus_Exception(st) && *p) {
        size_t n = strcspn(p, ":");
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
        p += n + (p[n] == ':');
    }
    c.module_search_paths_set = 1;
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st)) goto fail;
    return 0;
fail:
    mrh_warn("cannot start Python in this process (%s): hooks are off", st.err_msg ? st.err_msg : "unknown error");
    return -1;
}

/* In a Python target, sys.path is the target's: the launching Python's entries are appended (not
 * prepended), so that mrhooker and the hook's imports resolve while the target's own modules still win. */
static int extend_sys_path(const char *python_path)
{
    PyObject *path = PySys_GetObject("path");   /* borrowed */
    if (!path || !PyList_Check(path)) return 0;
    const char *p = python_path ? python_path : "";
    while (*p) {
        size_t n = strcspn(p, ":");
        if (n > 0) {
            PyObject *entry = PyUnicode_DecodeFSDefaultAndSize(p, n);
            if (!entry) return -1;
            int present = PySequence_Contains(path, entry);
            if (present == 0) present = PyList_Append(path, entry);
            Py_DECREF(entry);
            if (present < 0) return -1;
        }
        p += n + (p[n] == ':');
    }
    return 0;
}

static void attach_thread(mrh_thread *t)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (!ts) {
        /* Made through PyGILState so that it is registered as this thread's; the extra reference count it
         * starts with keeps PyGILState_Release() (in Cython's `with gil`) from deleting it. */
        PyGILState_Ensure();
        ts = PyEval_SaveThread();
        t->owns_tstate = 1;
    }
    /* Python deletes the thread states of its own threads when they end; only ours can be kept here. */
    t->tstate = !mrh_py_attached_mode && (t->owns_tstate || ts == own_main_tstate) ? ts : NULL;
    t->attached = 1;
}

static void detach_thread(mrh_thread *t)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    t->attached = 0;
    t->owns_tstate = 0;
    t->tstate = NULL;
    if (!ts || !Py_IsInitialized() || MRH_FINALIZING()) return;
    PyEval_RestoreThread(ts);
    PyGILState_Release(PyGILState_UNLOCKED);   /* the count drops to zero: the thread state is deleted */
}

static void fork_prepare(mrh_thread *t)
{
    if (mrh_py_attached_mode && MRH_FINALIZING()) return;
    PyThreadState *ts = mrh_py_thread_state(t);
    if (!ts || MRH_CURRENT_TSTATE() == ts) return;   /* this thread runs Python: Python's own fork handling applies */
    PyEval_RestoreThread(ts);
    PyOS_BeforeFork();
    t->fork_held = 1;
}

static void fork_parent(mrh_thread *t)
{
    t->fork_held = 0;
    PyOS_AfterFork_Parent();
    PyEval_SaveThread();
}

static void fork_child(mrh_thread *t)
{
    t->fork_held = 0;
    PyOS_AfterFork_Child();
    PyEval_SaveThread();
}

static void at_exit(mrh_thread *t)
{
    if (mrh_py_attached_mode || !inside_at_exit || !Py_IsInitialized()) return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallNoArgs(inside_at_exit);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    PyGILState_Release(g);
}

static const mrh_hooklib_ops hooklib_ops = {
    attach_thread, detach_thread, fork_prepare, fork_parent, fork_child, at_exit,
};

static void warn_exception(const char *what)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    mrh_warn("%s: %s%s%s", what, type ? ((PyTypeObject *)type)->tp_name : "error", msg ? ": " : "", msg ? msg : "");
    PyErr_Clear();
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

MRH_EXPORT const mrh_hooklib_ops *mrh_hooklib_start(const mrh_start_args *a)
{
    PyGILState_STATE gil = PyGILState_UNLOCKED;
    mrh_py_attached_mode = a->attach;
    if (a->attach) {
        gil = PyGILState_Ensure();
    } else if (start_own_interpreter(a) < 0) {
        return NULL;
    }
    const mrh_hooklib_ops *result = NULL;
    PyObject *inside = NULL, *r = NULL;
    if ((a->attach && extend_sys_path(a->python_path) < 0) || native_install() < 0) {
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
    r = PyObject_CallMethod(inside, "start", "sssssi", a->kind, a->module, a->script ? a->script : "",
                            a->hooks_path, a->output ? a->output : "", a->attach);
    if (!r) {
        warn_exception("the hook runtime failed to start");
        goto done;
    }
    if (PyObject_IsTrue(r)) result = &hooklib_ops;   /* False: it has said why */
done:
    Py_XDECREF(r);
    Py_XDECREF(inside);
    if (a->attach) PyGILState_Release(gil);
    else own_main_tstate = PyEval_SaveThread();
    return result;
}

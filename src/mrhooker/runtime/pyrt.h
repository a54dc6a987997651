/* pyrt.h (hook side): the Python half of a hooked call, for pyrt.c, the trampolines generated for .py hooks
 * and Cython's output for .pyx hooks. All of it runs in the hook namespace (see mrhooker_rt.h).
 *
 * A generated trampoline, for `int foo(int x)` hooked in slot 0, is only what is specific to its prototype:
 *
 *     MRH_EXPORT int mrh_impl_0(int a0)
 *     {
 *         mrh_thread *t = mrh_self();
 *         PyObject *argv[1];
 *         int r;
 *         if (mrh_hook_begin(t, 0) < 0) goto original;       // GIL, errno, the call record
 *         argv[0] = PyLong_FromLongLong((long long)a0);
 *         PyObject *res = mrh_hook_call(0, argv, 1);          // the Python function; NULL: it failed
 *         if (!res || mrh_py_ret_int(res, &u, 4, MRH_SIGNED, "foo") < 0) goto failed;
 *         r = (int)u;
 *         mrh_hook_end(t);                                    // GIL released, errno as the hook says
 *         return r;
 *     failed:
 *         if (mrh_hook_failed(t, 0)) return (int)t->orig_ret.i;   // reported; the original's result
 *     original:
 *         return ((int (*)(int))mrh_original_of(0))(a0);
 *     }
 *
 * and foo.original(x) converts its arguments and calls the real foo between mrh_original_begin/_end.
 */
#ifndef MRHOOKER_PYRT_H
#define MRHOOKER_PYRT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include "mrhooker_rt.h"

#if PY_VERSION_HEX >= 0x030D0000
#define MRH_CURRENT_TSTATE() PyThreadState_GetUnchecked()
#else
#define MRH_CURRENT_TSTATE() _PyThreadState_UncheckedGet()
#endif

/* Set by mrh_hook_start before anything else runs in the namespace; never changes after. */
extern const mrh_runtime *mrh_rt;
extern long mrh_tls_offset, mrh_errno_offset;   /* copies of mrh_rt's: one load fewer per call */

/* This thread's mrh_thread: the target side's TLS, at a fixed offset from the thread pointer. */
static inline mrh_thread *mrh_self(void)
{
    return (mrh_thread *)((char *)__builtin_thread_pointer() + mrh_tls_offset);
}

/* The target's errno (this namespace's libc has an errno of its own, which the target never sees). */
static inline int *mrh_target_errno(void) { return (int *)((char *)__builtin_thread_pointer() + mrh_errno_offset); }

/* The original of a slot: resolved at load in nearly every process, so read here without a call. NULL if it
 * can't be found (a library that is not loaded). */
static inline void *mrh_original_of(int slot)
{
    void *p = __atomic_load_n(&mrh_rt->slots[slot].original, __ATOMIC_ACQUIRE);
    return MRH_LIKELY(p != NULL) ? p : mrh_rt->resolve(slot);
}

/* A hook written in Python (.py scripts). The table is generated, in the same order as the slots, and handed
 * to the runtime by the generated code's constructor (mrh_py_register_table). */
typedef struct mrh_py_hook {
    const char *spec;          /* the string given to @hook(...), exactly */
    const char *name;          /* the symbol */
    const char *text;          /* the prototype, for messages */
    PyObject *func;            /* the Python function, or NULL: calls go to the original */
    int keeps_gil;             /* @hook(..., blocks=False): the original never waits, so the GIL is kept */
    PyMethodDef original_def;  /* the builtin behind func.original */
} mrh_py_hook;

void mrh_py_register_table(mrh_py_hook *hooks, int n);

/* This thread's Python thread state, made at its first hook (and deleted at thread exit). NULL if none
 * could be made. */
PyThreadState *mrh_make_thread_state(mrh_thread *t);
void mrh_drop_thread_state(mrh_thread *t);

static inline PyThreadState *mrh_thread_state(mrh_thread *t)
{
    return MRH_LIKELY(t->tstate != NULL) ? (PyThreadState *)t->tstate : mrh_make_thread_state(t);
}

/* The GIL is given back when a hook (or the runtime) is done with Python on this thread; on a thread that is
 * ending (mrh_thread.exited) the thread state made for this use is deleted too. */
static inline void mrh_release(mrh_thread *t)
{
    if (MRH_UNLIKELY(t->exited)) mrh_drop_thread_state(t);
    else PyEval_SaveThread();
}

/* ---- one Python hook: begin, call, end or fail --------------------------------------------------------- */

/* Takes the GIL for hook `index` and opens its call record. -1: the hook can't run (no Python function was
 * registered for it, or no thread state): the caller calls the original, errno untouched. */
static inline int mrh_hook_begin(mrh_thread *t, mrh_py_hook *hook)
{
    if (MRH_UNLIKELY(hook->func == NULL)) return -1;
    int entry_errno = *mrh_target_errno();
    PyThreadState *ts = mrh_thread_state(t);
    if (MRH_UNLIKELY(ts == NULL)) return -1;
    PyEval_RestoreThread(ts);
    t->entry_errno = entry_errno;
    t->errno_set = 0;
    t->orig_called = 0;
    t->in_python_hook = 1;
    t->ncstr = 0;
    return 0;
}

/* A C string as the hook sees it: bytes (None for NULL), remembered with its pointer (see mrh_thread). */
static inline PyObject *mrh_py_cstring(mrh_thread *t, const char *s)
{
    if (s == NULL) Py_RETURN_NONE;
    PyObject *o = PyBytes_FromString(s);
    if (o != NULL && t->in_python_hook && t->ncstr < MRH_CSTR_MAX) {
        Py_INCREF(o);
        t->cstr_obj[t->ncstr] = o;
        t->cstr_ptr[t->ncstr++] = s;
    }
    return o;
}

/* The pointer a bytes object was made from during this hook, or NULL. */
static inline const char *mrh_py_cstring_pointer(mrh_thread *t, PyObject *o)
{
    for (int i = 0; i < t->ncstr; i++)
        if (t->cstr_obj[i] == (void *)o) return t->cstr_ptr[i];
    return NULL;
}

/* The hook is over (the GIL still held): its C strings' references are released. */
static inline void mrh_hook_close(mrh_thread *t)
{
    for (int i = 0; i < t->ncstr; i++) Py_DECREF((PyObject *)t->cstr_obj[i]);
    t->ncstr = 0;
    t->in_python_hook = 0;
}

/* Calls the hook's Python function with argv (new references, released here). NULL: it raised. */
static inline PyObject *mrh_hook_call(mrh_py_hook *hook, PyObject **argv, int n)
{
    for (int i = 0; i < n; i++) {
        if (MRH_UNLIKELY(argv[i] == NULL)) {   /* a conversion failed (memory): the exception is set */
            for (int j = 0; j < n; j++) Py_XDECREF(argv[j]);
            return NULL;
        }
    }
    PyObject *res = PyObject_Vectorcall(hook->func, argv, n, NULL);
    for (int i = 0; i < n; i++) Py_DECREF(argv[i]);
    return res;
}

/* The hook returned: the GIL is released, errno set as mrh_hook_errno() says. */
static inline void mrh_hook_end(mrh_thread *t)
{
    int e = mrh_hook_errno(t);
    mrh_hook_close(t);
    mrh_release(t);
    *mrh_target_errno() = e;
}

void mrh_py_report(mrh_py_hook *hook);   /* prints the pending exception as a failure of the hook */

/* The hook raised, or returned a value of the wrong type (the exception is pending): it is reported, then
 * the target gets what it would have got unhooked. Returns 1 if the original ran during the hook (its
 * result is in t->orig_ret, errno is its errno): the caller returns that. 0: the caller calls the original
 * (errno is as it was at entry). */
static inline int mrh_hook_failed(mrh_thread *t, mrh_py_hook *hook)
{
    mrh_py_report(hook);
    int ran = t->orig_called;
    int e = ran ? t->orig_errno : t->entry_errno;
    mrh_hook_close(t);
    mrh_release(t);
    *mrh_target_errno() = e;
    return ran;
}

/* ---- func.original(...) -------------------------------------------------------------------------------- */

/* Around the call of an original from Python: depth raised (hooked calls it makes go to their originals),
 * the GIL dropped unless the hook promised the original never waits (blocks=False), errno as the hook was
 * entered with; after it, its errno kept for get_errno() and the caller. */
static inline PyThreadState *mrh_original_begin(mrh_thread *t, mrh_py_hook *hook)
{
    t->depth++;
    PyThreadState *saved = hook->keeps_gil ? NULL : PyEval_SaveThread();
    *mrh_target_errno() = t->entry_errno;
    return saved;
}

static inline void mrh_original_end(mrh_thread *t, PyThreadState *saved)
{
    t->orig_errno = *mrh_target_errno();
    if (saved) PyEval_RestoreThread(saved);
    t->orig_called = 1;
    t->depth--;
}

/* Cython's original(name) (mrhooker/__init__.pxd): the next definition of any symbol in the target. */
void *mrh_original(const char *name);

/* The original is missing (its library is not loaded): what func.original raises. */
PyObject *mrh_py_no_original(mrh_py_hook *hook);

/* ---- Cython's `with gil` ------------------------------------------------------------------------------- */

/* Cython's __Pyx_PyGILState_Ensure/Release, which mrhooker points here: the same as PyGILState_Ensure/Release
 * for a thread with a lasting thread state, which every thread running hooks has, without their second
 * lookup and reference count. */
static inline PyGILState_STATE mrh_gil_ensure(void)
{
    PyThreadState *ts = mrh_thread_state(mrh_self());
    if (MRH_UNLIKELY(ts == NULL)) return PyGILState_Ensure();
    if (MRH_CURRENT_TSTATE() == ts) return PyGILState_LOCKED;
    PyEval_RestoreThread(ts);
    return PyGILState_UNLOCKED;
}

static inline void mrh_gil_release(PyGILState_STATE state)
{
    if (state == PyGILState_UNLOCKED) mrh_release(mrh_self());
}

/* ---- conversions ----------------------------------------------------------------------------------------
 * Each returns 0, or -1 with a Python exception set. `func` names the hook in messages, `index` the argument.
 * Integers must fit the C type (size bytes, and its range below): out of range is an error, never a silent
 * truncation or wrap (-1 is not SIZE_MAX: C's (size_t)-1 is 2**64 - 1 here). A pointer given as an int takes
 * either reading of its bits, as C's casts do: (void *)-1 is MAP_FAILED. */
enum {
    MRH_UNSIGNED = 0,   /* 0 .. 2**bits - 1 */
    MRH_SIGNED = 1,     /* -2**(bits-1) .. 2**(bits-1) - 1 */
    MRH_BOOL = 2,       /* _Bool: 0 or 1 (False, True) */
    MRH_ADDRESS = 3,    /* a pointer: -2**(bits-1) .. 2**bits - 1 */
};
int mrh_py_arg_int_slow(PyObject *o, unsigned long long *out, int size, int range, const char *func, int index);
int mrh_py_arg_float(PyObject *o, double *out, const char *func, int index);
int mrh_py_arg_ldouble(PyObject *o, long double *out, const char *func, int index);
int mrh_py_arg_bytes(PyObject *o, const char **out, PyObject **keep, const char *func, int index);
int mrh_py_arg_pointer(PyObject *o, void **out, PyObject **keep, const char *func, int index);
int mrh_py_ret_int_slow(PyObject *o, unsigned long long *out, int size, int range, const char *func);

/* The common case inline (an int, not above 2**63 - 1, in range; size and range are constants at each call
 * site, so the test folds to one or two comparisons): one call into libpython. Everything else is the _slow
 * functions', which say what is wrong. */
static inline int mrh_py_int_fits(PyObject *o, unsigned long long *out, int size, int range)
{
    if (!PyLong_CheckExact(o)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) return 0;
    if (range == MRH_SIGNED) {
        if (size < 8 && (v < -(1LL << (size * 8 - 1)) || v >= (1LL << (size * 8 - 1)))) return 0;
    } else if (v < 0 || (range == MRH_BOOL && v > 1) || (size < 8 && v >= (1LL << (size * 8)))) {
        return 0;
    }
    *out = (unsigned long long)v;
    return 1;
}

static inline int mrh_py_arg_int(PyObject *o, unsigned long long *out, int size, int range, const char *func,
                                 int index)
{
    return MRH_LIKELY(mrh_py_int_fits(o, out, size, range)) ? 0 : mrh_py_arg_int_slow(o, out, size, range, func, index);
}

static inline int mrh_py_ret_int(PyObject *o, unsigned long long *out, int size, int range, const char *func)
{
    return MRH_LIKELY(mrh_py_int_fits(o, out, size, range)) ? 0 : mrh_py_ret_int_slow(o, out, size, range, func);
}
int mrh_py_ret_float(PyObject *o, double *out, const char *func);
int mrh_py_ret_ldouble(PyObject *o, long double *out, const char *func);
int mrh_py_ret_bytes(PyObject *o, const char **out, const char *func);   /* keeps returned bytes alive */
int mrh_py_ret_pointer(PyObject *o, void **out, const char *func);
PyObject *mrh_py_pointer(void *p);
PyObject *mrh_py_typed_pointer(void *p, const char *pointee);   /* cast() knows the struct it points to */
PyObject *mrh_py_argcount(const char *func, int expected, Py_ssize_t got);

#endif

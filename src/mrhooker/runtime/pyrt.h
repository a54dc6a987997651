/* pyrt.h (hook side): the Python half of a hooked call, for pyrt.c, the trampolines generated for .py hooks
 * and Cython's output for .pyx hooks. All of it runs in the hook namespace (see mrhooker_rt.h).
 *
 * A generated trampoline (codegen.trampolines_source; tests/unit/golden/hooks.trampolines.c shows them) holds
 * only what is specific to its prototype: the conversion of each argument and of the result. The flow of a
 * hooked call is the MRH_HOOK_* macros' at the end of this file, and that of func.original(...) the
 * MRH_ORIGINAL_* macros':
 *
 *     MRH_EXPORT int mrh_impl_0(int a0)
 *     {
 *         MRH_HOOK_BEGIN(0);                              // the GIL, errno, the call record; or the original
 *         MRH_HOOK_CALL(mrh_py_int(a0));                  // the Python function; raised: the failure path
 *         int r = MRH_RESULT_INT(int, 4, MRH_SIGNED);     // its result, which must fit the C type
 *         MRH_HOOK_RETURN(r);                             // the GIL given back, errno as the hook says
 *         MRH_HOOK_FALLBACK(int, i, mrh_fn_0, 0, (int)-1, (a0));   // reported; the original's result
 *     }
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

/* A hook written in Python (.py scripts). The table is generated (mrh_py_hooks, mrh_py_nhooks), in the same order
 * as the slots, and taken by the runtime when it loads the hook library (pyrt.c, load_trampolines). */
typedef struct mrh_py_hook {
    const char *spec;          /* the string given to @hook(...), exactly */
    const char *name;          /* the symbol */
    const char *text;          /* the prototype, for messages */
    PyObject *func;            /* the Python function, or NULL: calls go to the original */
    int keeps_gil;             /* @hook(..., blocks=False): the original never waits, so the GIL is kept */
    PyMethodDef original_def;  /* the builtin behind func.original */
} mrh_py_hook;


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

/* o, a C string as the hook sees it (bytes), remembered with its pointer (see mrh_thread). */
static inline PyObject *mrh_py_remember_cstring(mrh_thread *t, const char *s, PyObject *o)
{
    if (o != NULL && PyBytes_Check(o) && t->in_python_hook && t->ncstr < MRH_CSTR_MAX) {
        Py_INCREF(o);
        t->cstr_obj[t->ncstr] = o;
        t->cstr_ptr[t->ncstr++] = s;
    }
    return o;
}

/* A C string as the hook sees it: bytes (None for NULL), read to its NUL, as the call it is passed to reads it. */
static inline PyObject *mrh_py_cstring(mrh_thread *t, const char *s)
{
    if (s == NULL) Py_RETURN_NONE;
    return mrh_py_remember_cstring(t, s, PyBytes_FromString(s));
}

/* One the call reads at most n bytes of (strnlen's, strncmp's): they need no NUL, and the next byte may be on an
 * unmapped page. */
static inline PyObject *mrh_py_cstring_upto(mrh_thread *t, const char *s, size_t n)
{
    if (s == NULL) Py_RETURN_NONE;
    return mrh_py_remember_cstring(t, s, PyBytes_FromStringAndSize(s, (Py_ssize_t)strnlen(s, n)));
}

/* A path, which the call hands to the kernel: an address in the first page, which nothing maps, is the call's
 * EFAULT (open((char *)1, ...)), not the hook's crash: it arrives as a Pointer, which goes back to `original` as
 * it came. Any other address is read as C reads it: reading through the kernel (process_vm_readv) would make
 * it safe for every address, at the cost of a system call per path, as much as a stat costs (README, Limits). */
PyObject *mrh_py_pointer(void *p);

static inline PyObject *mrh_py_cstring_path(mrh_thread *t, const char *s)
{
    if (s == NULL) Py_RETURN_NONE;
    if ((uintptr_t)s < 4096) return mrh_py_pointer((void *)s);
    return mrh_py_cstring(t, s);
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
    /* The function's vectorcall itself: PyObject_Vectorcall only adds a lookup of the thread state and a check
     * that the result and the error indicator agree, which CPython's vectorcalls keep themselves (a Python
     * function's by construction, a builtin's checks its own): ~25 instructions of ~2,500 a call. */
    vectorcallfunc call = PyVectorcall_Function(hook->func);
    PyObject *res = call ? call(hook->func, argv, n, NULL) : PyObject_Vectorcall(hook->func, argv, n, NULL);
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

/* The value of an int (exactly int), if it is within +-(2**63 - 1). One of a single digit (below 2**30 in
 * magnitude: nearly every int a hook sees or returns) is read from the object, as CPython's own fast paths do
 * (PyUnstable_Long_CompactValue since 3.12; before, its size and first digit, which longintrepr.h shows): a call
 * into libpython and its generic loop fewer, twice a hooked call that returns its original's int (~45
 * instructions of ~2,500). */
static inline int mrh_py_int_value(PyObject *o, long long *v)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)o)) {
        *v = PyUnstable_Long_CompactValue((PyLongObject *)o);
        return 1;
    }
#else
    Py_ssize_t n = Py_SIZE(o);   /* the number of digits, negative for a negative int */
    if (n >= -1 && n <= 1) {
        *v = n == 0 ? 0 : n * (long long)((PyLongObject *)o)->ob_digit[0];   /* 3.9/3.10's 0 has no digit */
        return 1;
    }
#endif
    int overflow;
    *v = PyLong_AsLongLongAndOverflow(o, &overflow);   /* an exact int: it can only overflow */
    return !overflow;
}

/* The common case inline (an int, not above 2**63 - 1, in range; size and range are constants at each call
 * site, so the test folds to one or two comparisons). Everything else is the _slow functions', which say what
 * is wrong. */
static inline int mrh_py_int_fits(PyObject *o, unsigned long long *out, int size, int range)
{
    long long v;
    if (!PyLong_CheckExact(o) || !mrh_py_int_value(o, &v)) return 0;
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
PyObject *mrh_py_typed_pointer(void *p, const char *pointee);   /* cast() knows the struct it points to */
PyObject *mrh_py_argcount(const char *func, int expected, Py_ssize_t got);

/* C values as the hook gets them (new references; NULL with an exception set if memory ran out). */
static inline PyObject *mrh_py_int(long long v) { return PyLong_FromLongLong(v); }
static inline PyObject *mrh_py_uint(unsigned long long v) { return PyLong_FromUnsignedLongLong(v); }
static inline PyObject *mrh_py_double(double v) { return PyFloat_FromDouble(v); }

/* ---- the flow of a trampoline (see the top) -----------------------------------------------------------------
 * Labels: mrh_failed (the hook raised or returned a value of the wrong type: the exception is pending),
 * mrh_original (the hook can't run: the call goes to the original). */

#define MRH_HOOK_BEGIN(slot)                                                                         \
    mrh_py_hook *const hook = &mrh_py_hooks[slot];                                                  \
    mrh_thread *const t = mrh_self();                                                                \
    if (mrh_hook_begin(t, hook) < 0) goto mrh_original

/* Calls the Python function with the converted arguments; `res` is its result. */
#define MRH_HOOK_CALL(...)                                                                           \
    PyObject *mrh_argv[] = {__VA_ARGS__};                                                            \
    PyObject *res = mrh_hook_call(hook, mrh_argv, (int)(sizeof mrh_argv / sizeof mrh_argv[0]));     \
    if (res == NULL) goto mrh_failed
#define MRH_HOOK_CALL_NONE()                                                                         \
    PyObject *res = mrh_hook_call(hook, NULL, 0);                                                    \
    if (res == NULL) goto mrh_failed

/* The result, converted to the C type (`res` released); one that doesn't convert is a failure of the hook. */
#define MRH_RESULT(ctype, scratch, conversion)                                                       \
    __extension__({                                                                                  \
        scratch v;                                                                                   \
        int mrh_bad = (conversion) < 0;                                                              \
        Py_DECREF(res);                                                                              \
        if (mrh_bad) goto mrh_failed;                                                                \
        (ctype)v;                                                                                    \
    })
#define MRH_RESULT_INT(ctype, size, range) \
    MRH_RESULT(ctype, unsigned long long, mrh_py_ret_int(res, &v, size, range, hook->name))
#define MRH_RESULT_BOOL() MRH_RESULT(_Bool, unsigned long long, mrh_py_ret_int(res, &v, 1, MRH_BOOL, hook->name))
#define MRH_RESULT_DOUBLE(ctype) MRH_RESULT(ctype, double, mrh_py_ret_float(res, &v, hook->name))
#define MRH_RESULT_LDOUBLE() MRH_RESULT(long double, long double, mrh_py_ret_ldouble(res, &v, hook->name))
#define MRH_RESULT_BYTES() MRH_RESULT(const char *, const char *, mrh_py_ret_bytes(res, &v, hook->name))
#define MRH_RESULT_POINTER(ctype) MRH_RESULT(ctype, void *, mrh_py_ret_pointer(res, &v, hook->name))
#define MRH_RESULT_VOID() Py_DECREF(res)

#define MRH_HOOK_RETURN(r)                                                                           \
    mrh_hook_end(t);                                                                                 \
    return r

/* The failure path (the original's result if it ran during the hook) and the original's: the end of a
 * trampoline. field: the mrh_value member of its type; failure: what it returns without an original. */
#define MRH_HOOK_FALLBACK(ctype, field, fn_type, slot, failure, args)                                \
mrh_failed:                                                                                          \
    if (mrh_hook_failed(t, hook)) return (ctype)t->orig_ret.field;                                   \
mrh_original:;                                                                                       \
    fn_type mrh_fn = (fn_type)mrh_original_of(slot);                                                 \
    if (mrh_fn == NULL) {                                                                            \
        *mrh_target_errno() = ENOSYS;                                                                \
        return failure;                                                                              \
    }                                                                                                \
    return mrh_fn args
#define MRH_HOOK_FALLBACK_VOID(fn_type, slot, args)                                                  \
mrh_failed:                                                                                          \
    if (mrh_hook_failed(t, hook)) return;                                                            \
mrh_original:;                                                                                       \
    fn_type mrh_fn = (fn_type)mrh_original_of(slot);                                                 \
    if (mrh_fn == NULL) {                                                                            \
        *mrh_target_errno() = ENOSYS;                                                                \
        return;                                                                                      \
    }                                                                                                \
    mrh_fn args

/* func.original(a0, ...): the arguments from Python (bytes and buffers held in keep[] until the end), the call
 * with the GIL dropped (mrh_original_begin/_end), the result to Python. Label: mrh_done (the cleanup). */
#define MRH_ORIGINAL_BEGIN(slot, n)                                                                  \
    mrh_py_hook *const hook = &mrh_py_hooks[slot];                                                  \
    enum { mrh_nargs = (n), mrh_nkeep = (n) > 0 ? (n) : 1 };                                        \
    PyObject *keep[mrh_nkeep] = {NULL}, *result = NULL;                                              \
    if (nargs != mrh_nargs) return mrh_py_argcount(hook->name, mrh_nargs, nargs)

/* Argument i, converted to its C type; one that doesn't convert raises. */
#define MRH_ARG(ctype, scratch, conversion)                                                          \
    __extension__({                                                                                  \
        scratch v;                                                                                   \
        if ((conversion) < 0) goto mrh_done;                                                         \
        (ctype)v;                                                                                    \
    })
#define MRH_ARG_INT(i, ctype, size, range) \
    MRH_ARG(ctype, unsigned long long, mrh_py_arg_int(args[i], &v, size, range, hook->name, i))
#define MRH_ARG_BOOL(i) MRH_ARG(_Bool, unsigned long long, mrh_py_arg_int(args[i], &v, 1, MRH_BOOL, hook->name, i))
#define MRH_ARG_DOUBLE(i, ctype) MRH_ARG(ctype, double, mrh_py_arg_float(args[i], &v, hook->name, i))
#define MRH_ARG_LDOUBLE(i) MRH_ARG(long double, long double, mrh_py_arg_ldouble(args[i], &v, hook->name, i))
#define MRH_ARG_BYTES(i) MRH_ARG(const char *, const char *, mrh_py_arg_bytes(args[i], &v, &keep[i], hook->name, i))
#define MRH_ARG_POINTER(i, ctype) MRH_ARG(ctype, void *, mrh_py_arg_pointer(args[i], &v, &keep[i], hook->name, i))

/* The original called (the statement `call`, which assigns r if it returns a value), its result kept for a
 * failing hook (field: the mrh_value member; to_python: r as the hook gets it), then the cleanup. */
#define MRH_ORIGINAL_CALL(fn_type, slot, call)                                                       \
    fn_type original = (fn_type)mrh_original_of(slot);                                               \
    if (original == NULL) {                                                                          \
        result = mrh_py_no_original(hook);                                                           \
        goto mrh_done;                                                                               \
    }                                                                                                \
    mrh_thread *t = mrh_self();                                                                      \
    PyThreadState *saved = mrh_original_begin(t, hook);                                              \
    call;                                                                                            \
    mrh_original_end(t, saved)
#define MRH_ORIGINAL_RETURN(field, to_python)                                                        \
    t->orig_ret.field = r;                                                                           \
    result = (to_python);                                                                            \
mrh_done:                                                                                            \
    for (int i = 0; i < mrh_nkeep; i++) Py_XDECREF(keep[i]);                                         \
    return result
#define MRH_ORIGINAL_RETURN_NONE()                                                                   \
    result = Py_NewRef(Py_None);                                                                     \
mrh_done:                                                                                            \
    for (int i = 0; i < mrh_nkeep; i++) Py_XDECREF(keep[i]);                                         \
    return result

#endif

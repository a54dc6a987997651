/* pyrt.h: the Python side of the runtime, used by pyrt.c and by the trampolines generated for .py hooks.
 * Everything here runs inside the target, in the hook library (which links against nothing: libpython's
 * symbols come from the process, see preload.c). */
#ifndef MRHOOKER_PYRT_H
#define MRHOOKER_PYRT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include "mrhooker_rt.h"

#if PY_VERSION_HEX >= 0x030D0000
#define MRH_CURRENT_TSTATE() PyThreadState_GetUnchecked()
#define MRH_FINALIZING() Py_IsFinalizing()
#else
#define MRH_CURRENT_TSTATE() _PyThreadState_UncheckedGet()
#define MRH_FINALIZING() _Py_IsFinalizing()
#endif

/* A hook written in Python (.py scripts): filled by mrhooker._native.register(). The table is generated,
 * in the same order as the preload library's slots. */
typedef struct mrh_py_hook {
    const char *spec;          /* the string given to @hook(...), exactly */
    const char *name;          /* the symbol */
    const char *text;          /* the prototype, for messages */
    PyObject *func;            /* the Python function, or NULL: calls go to the original */
    int keeps_gil;             /* @hook(..., blocks=False): the original never waits, so the GIL is kept */
    PyMethodDef original_def;  /* the builtin behind func.original */
} mrh_py_hook;

extern mrh_py_hook mrh_py_hooks[] __attribute__((weak));
extern const int mrh_py_nhooks __attribute__((weak));

extern int mrh_py_attached_mode;   /* 1: the interpreter is the target's own (it may finalize under us) */

/* The original of a slot: resolved at load in nearly every process, so read here without a call. */
static inline void *mrh_original_of(int slot)
{
    void *p = __atomic_load_n(&mrh_slots[slot].original, __ATOMIC_ACQUIRE);
    return MRH_LIKELY(p != NULL) ? p : mrh_resolve(slot);
}

/* This thread's Python thread state, made now if it has none: the first hook on this thread, or Python
 * deleted the one it had (a Python thread ending). NULL if none could be made. */
static inline PyThreadState *mrh_py_thread_state(mrh_thread *t)
{
    PyThreadState *ts = t->tstate ? (PyThreadState *)t->tstate : PyGILState_GetThisThreadState();
    if (MRH_UNLIKELY(!ts)) {
        t->attached = 0;
        mrh_attach_thread(t);
        ts = PyGILState_GetThisThreadState();
    }
    return ts;
}

/* Takes the GIL for a hook on this thread. Returns 1 if it took it, 0 if this thread held it already (a
 * hooked call made by C code that holds the GIL), -1 if Python cannot run now (it is finalizing). */
static inline int mrh_py_enter(mrh_thread *t)
{
    PyThreadState *ts = mrh_py_thread_state(t);
    if (MRH_UNLIKELY(!ts)) return -1;
    if (MRH_CURRENT_TSTATE() == ts) return 0;
    if (MRH_UNLIKELY(mrh_py_attached_mode && MRH_FINALIZING())) return -1;
    PyEval_RestoreThread(ts);
    return 1;
}

static inline void mrh_py_leave(int took)
{
    if (took > 0) PyEval_SaveThread();
}

/* Cython's `with gil` (its __Pyx_PyGILState_Ensure/Release, which mrhooker points here): the same as
 * PyGILState_Ensure/Release for a thread with a lasting thread state, which every thread running hooks has,
 * without their second lookup and reference count. */
static inline PyGILState_STATE mrh_gil_ensure(void)
{
    PyThreadState *ts = mrh_py_thread_state(&mrh_tls);
    if (MRH_UNLIKELY(!ts)) {
        PyGILState_Ensure();   /* made here, it lasts as attached ones do: released by SaveThread */
        return PyGILState_UNLOCKED;
    }
    if (MRH_CURRENT_TSTATE() == ts) return PyGILState_LOCKED;
    PyEval_RestoreThread(ts);
    return PyGILState_UNLOCKED;
}

static inline void mrh_gil_release(PyGILState_STATE state)
{
    if (state == PyGILState_UNLOCKED) PyEval_SaveThread();
}

/* Brackets a call of an original from Python: the GIL is dropped around it when the hook took it itself (the
 * call may block, waiting for another thread that needs the GIL for its own hook), or when Python code
 * outside any hook calls it. errno is kept for the hook's get_errno() and for the target. */
#define MRH_CALL_ORIGINAL(t, slot, call)                                                   \
    do {                                                                                   \
        int mrh_drop_ = ((t)->gil_taken || (t)->depth == 0) && !mrh_py_hooks[slot].keeps_gil; \
        PyThreadState *mrh_saved_ = mrh_drop_ ? PyEval_SaveThread() : NULL;                \
        errno = (t)->entry_errno;                                                          \
        call;                                                                              \
        (t)->orig_errno = errno;                                                           \
        if (mrh_drop_) PyEval_RestoreThread(mrh_saved_);                                   \
        (t)->orig_slot = (slot);                                                           \
    } while (0)

/* Conversions. Each returns 0, or -1 with a Python exception set. "what" names the value in messages. */
int mrh_py_arg_int(PyObject *o, unsigned long long *out, const char *func, int index);
int mrh_py_arg_float(PyObject *o, double *out, const char *func, int index);
int mrh_py_arg_ldouble(PyObject *o, long double *out, const char *func, int index);
/* const char * and other pointers; *keep receives an object to release after the call (or NULL). */
int mrh_py_arg_bytes(PyObject *o, const char **out, PyObject **keep, const char *func, int index);
int mrh_py_arg_pointer(PyObject *o, void **out, PyObject **keep, const char *func, int index);
int mrh_py_ret_int(PyObject *o, unsigned long long *out, const char *func);
int mrh_py_ret_float(PyObject *o, double *out, const char *func);
int mrh_py_ret_ldouble(PyObject *o, long double *out, const char *func);
int mrh_py_ret_bytes(PyObject *o, const char **out, const char *func);   /* keeps returned bytes alive */
int mrh_py_ret_pointer(PyObject *o, void **out, const char *func);
PyObject *mrh_py_bytes_or_none(const char *s);
PyObject *mrh_py_pointer(void *p);
PyObject *mrh_py_argcount(const char *func, int expected, Py_ssize_t got);

/* Prints the pending exception as a failure of hook `index`, with its traceback, to the hook output. */
void mrh_py_report(int index);
/* A hook returned a value of the wrong type: sets the exception that mrh_py_report prints. */
int mrh_py_bad_return(PyObject *o, const char *func, const char *expected);

#endif

"""Variadic functions: the variable arguments can only be forwarded when we know what they are.

This table says which are forwarded (x86_64 and aarch64 pass an int and a pointer in the same
register, hence one 'unsigned long' for fcntl/ioctl):

    open, open64, openat, openat64   mode (unsigned int, mode_t)
    fcntl, fcntl64, ioctl            arg (unsigned long)
    prctl                            arg2, arg3, arg4, arg5 (unsigned long)
    syscall                          arg1 .. arg6 (long)
    sem_open                         mode (unsigned int, mode_t), value (unsigned int)
    mq_open                          mode (unsigned int, mode_t), attr (void *, struct mq_attr *)

Any other variadic function (printf, execl, ...) is refused with a hint to hook its va_list or
array variant (vprintf, execv, ...).  Such functions are absent from known_names(), but
looking one up by name raises that same hint.
"""

import re

_MODE = ("mode", "unsigned int", "mode_t")
_ARG = ("arg", "unsigned long", "unsigned long")
# name -> (number of fixed parameters, ((name, builtin C type, spelling), ...) after them)
_VARIADIC_EXTRA = {
    "open": (2, (_MODE,)),
    "open64": (2, (_MODE,)),
    "openat": (3, (_MODE,)),
    "openat64": (3, (_MODE,)),
    "fcntl": (2, (_ARG,)),
    "fcntl64": (2, (_ARG,)),
    "ioctl": (2, (_ARG,)),
    "prctl": (1, tuple(("arg%d" % i, "unsigned long", "unsigned long") for i in range(2, 6))),
    "syscall": (1, tuple(("arg%d" % i, "long", "long") for i in range(1, 7))),
    "sem_open": (2, (_MODE, ("value", "unsigned int", "unsigned int"))),
    "mq_open": (2, (_MODE, ("attr", "void *", "struct mq_attr *"))),
}


# Variadic functions whose array-taking sibling is not simply 'v' + name.
_VARIADIC_ALTERNATIVE = {"execl": "execv", "execlp": "execvp", "execle": "execve"}


def _variadic_refusal(name, has_function):
    candidates = [_VARIADIC_ALTERNATIVE.get(name), "v" + name, re.sub(r"(printf|scanf)", r"v\1", name)]
    for alternative in candidates:
        if alternative and alternative != name and has_function(alternative):
            return "variadic function %s cannot be forwarded; hook %s instead" % (name, alternative)
    return (
        "variadic function %s cannot be forwarded (mrhooker knows the variable arguments of "
        "open, openat, fcntl, ioctl, prctl, syscall, sem_open and mq_open only)" % name
    )


def _pyx_variadic_refusal(name, has_function):
    """Why a Cython hook defined with a '...' is refused: for a function whose variable arguments mrhooker knows
    (open's mode), how to declare them instead; for any other, what to hook instead."""
    if name not in _VARIADIC_EXTRA:
        return _variadic_refusal(name, has_function)
    extra = _VARIADIC_EXTRA[name][1]
    return ("variadic function %s: a Cython hook can't read its '...'; declare what mrhooker forwards of it as %s "
            "after the fixed ones instead: (..., %s)" % (
                name, "parameters" if len(extra) > 1 else "a parameter",
                ", ".join("%s %s" % (spelling, pname) for pname, _, spelling in extra)))

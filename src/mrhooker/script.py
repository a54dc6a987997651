"""The front end: a hook script read, and for a .py script its hooks with their prototypes.

A .pyx script is Cython's to read (codegen.pyx_exports finds its hooks in Cython's output). A .py script's
@hook("...") prototypes are read from its syntax tree without running it, and parsed by cdecl; its Python
bodies don't matter to the build, so editing them never rebuilds.
"""
import os

from mrhooker.errors import MrhookerError


HOOK_PLACES = ("plt", "entry")   # @hook(..., at=): where a hook takes the calls


class Script:
    def __init__(self, path, kind, module, content, hooks):
        self.path = path          # absolute
        self.kind = kind          # "pyx" or "py"
        self.module = module      # its module name
        self.content = content    # bytes
        self.hooks = hooks        # .py: [Hook] in source order; .pyx: None


class Hook:
    """One @hook of a .py script."""

    def __init__(self, spec, line, prototype, at="plt"):
        self.spec = spec              # the string given to @hook, exactly
        self.line = line
        self.prototype = prototype    # cdecl.Prototype
        self.at = at                  # "plt"; "entry": hooked at the function's own entry (atentry.py); or an int,
                                      # that entry's address in the program's file


def read(path, header_cache_dir=None):
    """Reads a hook script; for .py, also its hooks' prototypes (cdecl caches the system headers' database in
    header_cache_dir)."""
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            content = f.read()
    except FileNotFoundError:
        raise MrhookerError("hook script not found: %s" % path)
    except IsADirectoryError:
        raise MrhookerError("hook script is a directory: %s" % path)
    except OSError as e:
        raise MrhookerError("cannot read hook script %s: %s" % (path, e.strerror))
    base, ext = os.path.splitext(os.path.basename(path))
    if ext not in (".pyx", ".py"):
        raise MrhookerError("hook script must be a Cython .pyx or a Python .py file: %s" % path)
    if not base.isidentifier():
        raise MrhookerError("the hook script's name must be a Python identifier (it names the module): %r" % base)
    return Script(path, ext[1:], base, content, None)


def find_hooks(script, header_cache_dir, headers=()):
    """Fills script.hooks for a .py script: its @hook specs, each parsed into a prototype."""
    from mrhooker import cdecl

    specs = scan_hooks(script.content, script.path)
    if not specs:
        raise MrhookerError('%s declares no hooks: decorate functions with @hook("prototype") (from mrhooker import '
                            'hook)' % script.path)
    hooks, seen = [], {}
    for spec, line, at in specs:
        try:
            proto = cdecl.prototype_for(spec, header_cache_dir, headers)
        except MrhookerError as e:
            raise MrhookerError("%s:%d: %s" % (script.path, line, e))
        if proto.symbol in seen:
            # named as written on this line; an alias (pthread_yield is sched_yield) says what it shares
            first = seen[proto.symbol]
            if first.prototype.name == proto.name:
                raise MrhookerError("%s:%d: %s is hooked twice (also on line %d)" % (script.path, line, proto.name,
                                                                                     first.line))
            raise MrhookerError("%s:%d: %s is hooked twice: %s on line %d is the same function (the symbol %s)" % (
                script.path, line, proto.name, first.prototype.name, first.line, proto.symbol))
        seen[proto.symbol] = hook = Hook(spec, line, proto, at)
        hooks.append(hook)
    check_symbols(seen, script.path)
    script.hooks = hooks
    return hooks


def check_symbols(names, path):
    """Refuses the symbols mrhooker's runtime owns (cdecl.RUNTIME_SYMBOLS)."""
    from mrhooker import cdecl

    for name in names:
        refused = cdecl.runtime_refusal(name)
        if refused:
            raise MrhookerError("%s: %s" % (path, refused))


def scan_hooks(source, path):
    """The @hook("...") specs of a .py script, in order, read from its syntax tree. Returns [(spec, line, at)]: at
    is "plt", "entry" or an address (Hook.at)."""
    import ast   # (here: a warm run, whose scan build.py remembers, does without its import)
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise MrhookerError("%s:%s:%s: %s" % (path, e.lineno, e.offset, e.msg))
    hook_names, module_names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mrhooker":
            hook_names.update(a.asname or a.name for a in node.names if a.name == "hook")
        elif isinstance(node, ast.Import):
            module_names.update(a.asname or a.name for a in node.names if a.name == "mrhooker")

    def is_hook(func):
        if isinstance(func, ast.Name):
            return func.id in hook_names
        return (isinstance(func, ast.Attribute) and func.attr == "hook" and isinstance(func.value, ast.Name)
                and func.value.id in module_names)

    specs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                if is_hook(deco):
                    raise MrhookerError('%s:%d: @hook needs the C prototype, e.g. @hook("int unlink(const char '
                                        '*path)") or @hook("unlink")' % (path, deco.lineno))
        if isinstance(node, ast.Call) and is_hook(node.func):
            arg = node.args[0] if len(node.args) == 1 else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise MrhookerError("%s:%d: @hook takes one string literal (mrhooker reads the prototypes before "
                                    "the script runs)" % (path, node.lineno))
            at = "plt"
            for keyword in node.keywords:
                if keyword.arg == "at":
                    value = keyword.value
                    address = isinstance(value, ast.Constant) and type(value.value) is int and value.value >= 0
                    if not (address or isinstance(value, ast.Constant) and value.value in HOOK_PLACES):
                        raise MrhookerError('%s:%d: @hook\'s at= is "plt" (calls from other objects, the default), '
                                            '"entry" (every call, at the function\'s own entry) or the function\'s '
                                            'address in the program (at=0x1139)' % (path, node.lineno))
                    at = value.value
                elif keyword.arg != "blocks":
                    raise MrhookerError("%s:%d: @hook has no option %s (only blocks=False and at=\"entry\")"
                                        % (path, node.lineno, keyword.arg))
            specs.append((arg.value, node.lineno, at))
    specs.sort(key=lambda s: s[1])
    return specs


def scan_casts(source, path):
    """The type names a .py script casts pointers to (p.cast("struct timespec")), read from its syntax tree:
    their layouts are measured at build time. Returns sorted names."""
    import ast
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise MrhookerError("%s:%s:%s: %s" % (path, e.lineno, e.offset, e.msg))
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cast"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(" ".join(node.args[0].value.split()))
    return sorted(names)


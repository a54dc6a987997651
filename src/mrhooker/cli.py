"""mrhooker's command line: arguments, messages and exit statuses. No build or launch logic lives here.

    mrhooker [OPTIONS] SCRIPT COMMAND [ARGS...]

Options end at SCRIPT, so `mrhooker h.pyx ls -l` passes -l to ls; `--` may stand before SCRIPT or COMMAND.
Every expected failure is an MrhookerError, printed here as one "mrhooker: ..." message with its exit status.
"""
import os
import shlex
import sys

from mrhooker import __version__
from mrhooker.errors import MrhookerError

USAGE = "usage: mrhooker [OPTIONS] SCRIPT.pyx|SCRIPT.py COMMAND [ARGS...]"

HELP = USAGE + """

Run COMMAND with the hooks of SCRIPT preloaded (LD_PRELOAD). SCRIPT is a Cython .pyx whose exported
functions replace C functions, or a Python .py with @hook("C prototype") functions. Builds are cached.

options:
  -o FILE            write hook output (print, tracebacks) to FILE instead of mrhooker's stderr
  --no-follow        hook only COMMAND itself, not the programs it executes
  --build-dir DIR    keep builds in DIR instead of the cache (~/.cache/mrhooker)
  -I DIR             include directory for cimport and `cdef extern from` headers (repeatable)
  -l LIB, -L DIR     link the hooks with a library (e.g. -lssl), search DIR for libraries
  --cflags FLAGS     extra C compiler flags (one shell-quoted string)
  --ldflags FLAGS    extra linker flags
  --rebuild          rebuild even if the cache has a build
  --force            run a program that cannot be hooked (static, setuid) anyway, unhooked
  -v, --verbose      say what happens: build, cache, commands, LD_PRELOAD, exit status
  --version          print the version
  -h, --help         this help

config file: ~/.mrhooker/mrhooker.config (or $MRHOOKER_CONFIG), sections [default] and [MODULE].
exit status: COMMAND's; 128+N if it was killed by signal N; 2 for mrhooker's own errors; 126/127 when
COMMAND cannot be run or found.
"""

# option -> (attribute, takes a value)
_OPTIONS = {
    "-o": ("output", True), "--output": ("output", True),
    "--no-follow": ("no_follow", False),
    "--build-dir": ("build_dir", True),
    "-I": ("include_dirs", True),
    "-l": ("libs", True), "-L": ("lib_dirs", True),
    "--cflags": ("cflags", True), "--ldflags": ("ldflags", True),
    "--rebuild": ("rebuild", False), "--force": ("force", False),
    "-v": ("verbose", False), "--verbose": ("verbose", False),
    "--version": ("version", False), "-h": ("help", False), "--help": ("help", False),
}
_REPEATED = ("include_dirs", "libs", "lib_dirs")


class Arguments:
    def __init__(self):
        self.output = self.build_dir = self.cflags = self.ldflags = None
        self.no_follow = self.rebuild = self.force = self.version = self.help = False
        self.verbose = None   # None: as the config file says
        self.include_dirs, self.libs, self.lib_dirs = [], [], []
        self.script = None
        self.command = []


def parse_args(argv):
    args = Arguments()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, value = arg, None
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        elif arg[:2] in ("-I", "-l", "-L", "-o") and len(arg) > 2:
            name, value = arg[:2], arg[2:]
        if name not in _OPTIONS:
            raise MrhookerError("unknown option %s\n%s" % (arg, USAGE))
        attr, takes_value = _OPTIONS[name]
        if takes_value and value is None:
            i += 1
            if i >= len(argv):
                raise MrhookerError("option %s needs a value\n%s" % (name, USAGE))
            value = argv[i]
        elif not takes_value and value is not None:
            raise MrhookerError("option %s takes no value" % name)
        if attr in _REPEATED:
            getattr(args, attr).append(value)
        else:
            setattr(args, attr, value if takes_value else True)
        i += 1
    rest = argv[i:]
    if args.help or args.version:
        return args
    if not rest:
        raise MrhookerError("no hook script given\n" + USAGE)
    args.script = rest[0]
    args.command = rest[1:]
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        raise MrhookerError("no command given: what should run with the hooks of %s?\n%s" % (args.script, USAGE))
    return args


class Console:
    """mrhooker's own messages on stderr: -v lines, and a one-line build status on a terminal."""

    def __init__(self, verbose):
        self.verbose = verbose
        self._status_shown = False
        try:
            self._tty = os.isatty(2)
        except OSError:
            self._tty = False

    def log(self, msg):
        if self.verbose:
            self.clear_status()
            sys.stderr.write("mrhooker: %s\n" % msg)
            sys.stderr.flush()

    def status(self, msg):
        if self._tty and not self.verbose:
            sys.stderr.write("\r\033[K" + msg)
            sys.stderr.flush()
            self._status_shown = True

    def clear_status(self):
        if self._status_shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._status_shown = False


def _module_name(script):
    return os.path.splitext(os.path.basename(script))[0]


def run(argv):
    from mrhooker import config
    from mrhooker.build import BuildOptions, build, python_info
    from mrhooker.launch import LaunchOptions, find_program, run as launch

    args = parse_args(argv)
    if args.help:
        sys.stdout.write(HELP)
        return 0
    if args.version:
        sys.stdout.write("mrhooker %s\n" % __version__)
        return 0
    settings = config.load(_module_name(args.script))
    # COMMAND is checked before the build, which can take seconds: a typo or an unhookable program fails at once.
    program = find_program(args.command, args.force)
    verbose = args.verbose if args.verbose is not None else settings.get("verbose", False)
    console = Console(verbose)
    try:
        cflags = shlex.split(args.cflags) if args.cflags is not None else settings.get("cflags", [])
        ldflags = shlex.split(args.ldflags) if args.ldflags is not None else settings.get("ldflags", [])
    except ValueError as e:
        raise MrhookerError("bad --cflags/--ldflags: %s" % e)
    ldflags = ldflags + ["-L" + os.path.abspath(d) for d in args.lib_dirs] + ["-l" + lib for lib in args.libs]
    include_dirs = [os.path.abspath(d) for d in args.include_dirs] or settings.get("include_dirs", [])
    options = BuildOptions(
        build_dir=os.path.abspath(os.path.expanduser(args.build_dir)) if args.build_dir else settings.get("build_dir"),
        include_dirs=include_dirs, cflags=cflags, ldflags=ldflags, rebuild=args.rebuild,
        log=console.log, status=console.status)
    try:
        result = build(args.script, options)
    finally:
        console.clear_status()
    return launch(result, python_info(), args.command, program,
                  LaunchOptions(follow=not args.no_follow, output=args.output, force=args.force, log=console.log))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except MrhookerError as e:
        sys.stderr.write("mrhooker: %s\n" % e)
        return e.status
    except KeyboardInterrupt:
        sys.stderr.write("mrhooker: interrupted\n")
        return 130
    except Exception as e:   # a bug in mrhooker: still one line, the traceback only with -v
        if "-v" in argv or "--verbose" in argv:
            import traceback
            traceback.print_exc()
        sys.stderr.write("mrhooker: internal error: %s: %s (rerun with -v for the traceback)\n"
                         % (type(e).__name__, e))
        return 70

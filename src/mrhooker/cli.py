"""mrhooker's command line: arguments, messages and exit statuses. No build or launch logic lives here.

    mrhooker [run] [OPTIONS] SCRIPT COMMAND [ARGS...]

The seed's form has no subcommand: `mrhooker h.pyx ls -l` is `mrhooker run h.pyx ls -l`. Options end at SCRIPT
(argparse.REMAINDER), so -l goes to ls; `--` may stand before SCRIPT or COMMAND. Every expected failure is an
MrhookerError, printed here as one "mrhooker: ..." line with its exit status.
"""
import argparse
import errno
import os
import re
import sys

from mrhooker import __version__
from mrhooker.errors import MrhookerError, say

RUN_USAGE = "mrhooker [run] [OPTIONS] SCRIPT.pyx|SCRIPT.py COMMAND [ARGS...]  or  mrhooker [run] [OPTIONS] -p PID SCRIPT"
RUN_EPILOG = """\
`mrhooker trace --help`: see a command's library calls, with no script (strace's and ltrace's options).
`mrhooker sweep --help`: fail each call site once, one run each, and see which failures a command doesn't survive.
config file: ~/.mrhooker/mrhooker.config (or $MRHOOKER_CONFIG), sections [default] and [MODULE].
exit status: COMMAND's; 128+N if it was killed by signal N; 2 for mrhooker's own errors; 126/127 when
COMMAND cannot be run or found."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one mrhooker: line (the usage on the next); a misspelled option gets the
    options it is close to, as -e names and errno names do."""

    _MESSAGES = (
        (r"unrecognized arguments: (\S+).*", r"unknown option \1"),
        (r"argument (\S+?)(/\S+)?: expected one argument",   # a long option's value may start with '-': say how
         lambda m: "option %s needs a value%s" % (m.group(1), " (one starting with '-' as %s=-VALUE)" % m.group(1)
                                                               if m.group(1).startswith("--") else "")),
        (r"argument (\S+?)(/\S+)?: ignored explicit argument .*", r"option \1 takes no value"),
        (r"argument (\S+?)(/\S+)?: invalid int value: (.*)", r"option \1 takes a whole number, not \3"),
    )

    _width = None

    def _get_formatter(self):
        # argparse's own asks shutil for the terminal's width: an import (~2 ms) a warm start does without; and
        # asks again for each add_argument (its check of the metavar): once is enough
        if self._width is None:
            self._width = _columns() - 2
        return self.formatter_class(prog=self.prog, width=self._width)

    def format_help(self):
        if callable(self.epilog):   # made when asked for (mrhooker trace's: its classes, from tracing.py)
            self.epilog = self.epilog()
        return super().format_help()

    def error(self, message):
        for pattern, replacement in self._MESSAGES:
            if re.match(pattern, message):
                message = re.sub(pattern, replacement, message)
                break
        unknown = re.match(r"unknown option (-[^=\s]*)", message)
        if unknown:
            import difflib
            name, options = unknown.group(1), list(self._option_string_actions)
            close = [o for o in options if o.lower() == name.lower()] or difflib.get_close_matches(
                name, options, n=2, cutoff=0.75)
            if close:
                message += " (did you mean %s?)" % ", ".join(close)
        raise MrhookerError("%s\nusage: %s" % (message, self.usage))


def _columns():
    """The terminal's width, as shutil.get_terminal_size gives it: $COLUMNS, stdout's terminal, or 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _run_parser():
    p = _Parser(prog="mrhooker", usage=RUN_USAGE, allow_abbrev=False, epilog=RUN_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Run COMMAND with the hooks of SCRIPT preloaded (LD_PRELOAD). SCRIPT is a Cython .pyx "
                            "whose exported functions replace C functions, or a Python .py with @hook(\"C "
                            "prototype\") functions. Builds are cached.")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="append hook output (print, tracebacks) to FILE instead of mrhooker's stderr")
    p.add_argument("--no-follow", action="store_true", help="hook only COMMAND itself, not the programs it executes")
    p.add_argument("-p", dest="pids", metavar="PID", action="append", default=[],
                   help="hook the running process PID (comma lists; repeatable) instead of running a command, until "
                        "Ctrl-C, SIGTERM, -D or its end, then detach (children it forks since too, unless "
                        "--no-follow)")
    p.add_argument("-D", "--duration", type=float, metavar="SECONDS", help="with -p: detach after SECONDS")
    p.add_argument("--build-dir", metavar="DIR",
                   help="keep builds in DIR instead of the cache ($XDG_CACHE_HOME/mrhooker, or ~/.cache/mrhooker)")
    p.add_argument("-I", dest="include_dirs", metavar="DIR", action="append", default=[],
                   help="include directory for cimport and `cdef extern from` headers (repeatable)")
    p.add_argument("-l", dest="libs", metavar="LIB", action="append", default=[],
                   help="link the hooks with a library (e.g. -lssl)")
    p.add_argument("-L", dest="lib_dirs", metavar="DIR", action="append", default=[], help="search DIR for libraries")
    _header_option(p)
    p.add_argument("--cflags", metavar="FLAGS", help="extra C compiler flags (one shell-quoted string)")
    p.add_argument("--ldflags", metavar="FLAGS", help="extra linker flags")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cache has a build")
    p.add_argument("--force", action="store_true",
                   help="run a program that cannot be hooked (static, setuid) anyway, unhooked")
    p.add_argument("-v", "--verbose", action="store_true", default=None,
                   help="say what happens: build, cache, commands, LD_PRELOAD, exit status")
    p.add_argument("--version", action="version", version="mrhooker %s" % __version__)
    p.add_argument("script", nargs="?", metavar="SCRIPT")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    return p


_TAKES_VALUE = ("-o", "--output", "--build-dir", "-I", "-l", "-L", "--cflags", "--ldflags", "-p", "-D", "--duration")


def _glue_values(argv):
    """`--cflags -O3` as `--cflags=-O3`: argparse would take a value starting with '-' for an option. Only
    before SCRIPT (or `--`): what follows is COMMAND's."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-"):
            return out + argv[i:]
        if arg in _TAKES_VALUE and i + 1 < len(argv):
            out.append(("%s=%s" if arg.startswith("--") else "%s%s") % (arg, argv[i + 1]))
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def parse_run_args(argv):
    args = _run_parser().parse_args(_glue_values(argv))
    if args.script is None:
        raise MrhookerError("no hook script given\nusage: " + RUN_USAGE)
    if args.script in ("trace", "sweep") and not os.path.exists(args.script):
        # `mrhooker -v trace -e write ls`: options end at SCRIPT, so this said "-e: command not found"
        raise MrhookerError("%s: no such hook script; for `mrhooker %s`, put its options after it: mrhooker %s %s"
                            % (args.script, args.script, args.script,
                               " ".join(a for a in argv[:argv.index(args.script)] if a != "--")))
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    args.pids = _pids(args.pids, args.command, args.duration)
    if not args.command and not args.pids:
        raise MrhookerError("no command given: what should run with the hooks of %s?\nusage: %s"
                            % (args.script, RUN_USAGE))
    return args


class Console:
    """mrhooker's own messages on stderr: -v lines, and a build's progress: on a terminal a line that goes away
    when the build is done; elsewhere (a CI log, a pipe, a test's captured stderr) one line as it starts and one
    with its time when it is done, so that a first run's wait is never silent."""

    def __init__(self, verbose):
        self.verbose = verbose
        self._status_shown = False
        self._started = None   # when the first run's steps began (time.monotonic), while they go on
        self._preparing = None  # when preparing() began: the steps' time counts from there
        import threading
        self._lock = threading.RLock()   # a timer thread may say the first step
        try:
            self._tty = os.isatty(2)
        except OSError:
            self._tty = False

    def log(self, msg):
        if self.verbose:
            self.clear_status()
            say(msg)

    def progress(self, what, ready=True):
        """A step of a first run starts (what: "building the trace of 193 functions"), or (None) mrhooker is
        ready to run the program (ready: else it stopped, refusing the request): then the time the steps took is
        said, if any was."""
        import time
        with self._lock:
            if what is not None:
                if self._started is None:
                    self._started = self._preparing or time.monotonic()
                if self._tty and not self.verbose:
                    self.status("mrhooker: %s (once: cached for the next runs) ..." % what)
                else:
                    say("%s (once: cached for the next runs) ..." % what)
                return
            if self._started is None:
                return
            took = time.monotonic() - self._started
            self._started = None
            if self._tty and not self.verbose:
                self.clear_status()
            elif ready:
                say("ready in %.1f s" % took)

    def preparing(self, what):
        """A context for mrhooker's preparation of a run: if it takes over a second (headers to read, a build),
        progress(what) says so while it goes on, and its time is said when it is done."""
        return _Preparing(self, what)

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


class _Preparing:
    """Console.preparing's context. (A class, not contextlib's decorator: contextlib's import is ~2 ms of a warm
    start.)"""

    def __init__(self, console, what):
        self.console, self.what = console, what

    def __enter__(self):
        import time

        from mrhooker import threads
        console, what = self.console, self.what
        console._preparing = time.monotonic()
        self.timer = threads.timer(1.0, lambda: console._started is None and console.progress(what))

    def __exit__(self, exc_type, *exc):
        self.timer.cancel()
        self.console.progress(None, exc_type is None)
        self.console._preparing = None


def _header_option(parser):
    parser.add_argument("-H", "--header", dest="headers", metavar="HEADER", action="append", default=[],
                        help="also find prototypes in HEADER (curl/curl.h, or a path: ./api.h); repeatable")


def _headers(args, settings):
    """-H's headers, or the config file's."""
    from mrhooker import config
    try:
        return [config.header_name(h) for h in args.headers] or settings.get("headers", [])
    except ValueError as e:
        raise MrhookerError("-H: %s" % e)


def _module_name(script):
    return os.path.splitext(os.path.basename(script))[0]


def run_command(argv):
    """`mrhooker [run] ...`: build SCRIPT, run COMMAND with it; returns the exit status."""
    from mrhooker import config, toolchain
    from mrhooker.build import BuildOptions, build
    from mrhooker.launch import LaunchOptions, attach_target, find_program, run_target

    args = parse_run_args(argv)
    settings = config.load(_module_name(args.script))
    # COMMAND is checked before the build, which can take seconds: a typo or an unhookable program fails at once.
    program = find_program(args.command, args.force) if args.command else None
    verbose = args.verbose if args.verbose is not None else settings.get("verbose", False)
    console = Console(verbose)
    try:
        if args.cflags is not None or args.ldflags is not None:
            import shlex   # (only then: its import is ~1 ms of a warm start)
        cflags = shlex.split(args.cflags) if args.cflags is not None else settings.get("cflags", [])
        ldflags = shlex.split(args.ldflags) if args.ldflags is not None else settings.get("ldflags", [])
    except ValueError as e:
        raise MrhookerError("bad --cflags/--ldflags: %s" % e)
    ldflags = ldflags + ["-L" + os.path.abspath(d) for d in args.lib_dirs] + ["-l" + lib for lib in args.libs]
    include_dirs = [os.path.abspath(d) for d in args.include_dirs] or settings.get("include_dirs", [])
    build_dir = os.path.abspath(os.path.expanduser(args.build_dir)) if args.build_dir else settings.get("build_dir")
    options = BuildOptions(build_dir=build_dir, include_dirs=include_dirs, cflags=cflags, ldflags=ldflags,
                           rebuild=args.rebuild, log=console.log, progress=console.progress,
                           headers=_headers(args, settings), preparing=console.preparing, attach=bool(args.pids))
    try:
        with console.preparing("reading the hooks' prototypes"):
            result = build(args.script, options)
    finally:
        console.clear_status()
    launch_options = LaunchOptions(follow=not args.no_follow, output=args.output, force=args.force, log=console.log,
                                   verbose=verbose)
    if args.pids:
        return attach_target(result, toolchain.python_info(), args.pids, launch_options, args.duration)
    return run_target(result, toolchain.python_info(), args.command, program, launch_options)


TRACE_USAGE = "mrhooker trace [OPTIONS] COMMAND [ARGS...]  or  mrhooker trace [OPTIONS] -p PID"


def _trace_epilog():
    from mrhooker.tracespec import CLASSES, DEFAULT_CLASSES
    return "classes for -e: %s (default: %s).\nexit status: COMMAND's; 2 for mrhooker's own errors." % (
        " ".join("%" + c for c in sorted(CLASSES)), " ".join("%" + c for c in DEFAULT_CLASSES))


def _subcommand_parser(name, usage, description, epilog):
    return _Parser(prog="mrhooker " + name, usage=usage, allow_abbrev=False, description=description,
                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)


def _trace_parser():
    p = _subcommand_parser(
        "trace", TRACE_USAGE, "Show the library calls COMMAND makes (and the programs it runs), one line per call, as "
        "strace shows system calls. No script: the calls are recorded in generated C and decoded here.",
        _trace_epilog)
    p.add_argument("-e", dest="specs", metavar="SPEC", action="append", default=[],
                   help="what to trace: names, globs (open*), !NAME to leave out, %%CLASS; comma lists; repeatable")
    p.add_argument("-l", "--list", nargs="?", const="*", metavar="GLOB",
                   help="list the known prototypes (matching GLOB) and exit; with COMMAND, only those COMMAND and "
                        "the libraries it loads call (open64 or open?), each saying which")
    p.add_argument("-f", dest="follow_count", action="count", default=0,
                   help="follow children (the default); -ff with -o FILE: one FILE.PID per process")
    p.add_argument("--no-follow", action="store_true", help="trace COMMAND only, not the programs it runs")
    p.add_argument("-p", dest="pids", metavar="PID", action="append", default=[],
                   help="attach to the running process PID (comma lists; repeatable) instead of running a command, "
                        "until Ctrl-C, SIGTERM, -D or its end, then detach; -f: its children forked since too")
    p.add_argument("-D", "--duration", type=float, metavar="SECONDS",
                   help="with -p: detach after SECONDS")
    p.add_argument("--entry", action="store_true",
                   help="trace each function at its own entry: every call, also those its own library makes "
                        "(printf's write), not only those through the PLT")
    p.add_argument("-o", "--output", metavar="FILE", help="the lines (or -c's table) to FILE instead of stderr")
    p.add_argument("-A", "--append", action="store_true", help="append to -o FILE instead of truncating it")
    p.add_argument("-s", dest="strsize", type=int, default=32, metavar="N",
                   help="bytes of strings and buffers shown (default 32; at most a 64th of --buffer-size)")
    p.add_argument("-t", dest="timestamps", action="count", default=0,
                   help="time of day on each line; -tt with microseconds, -ttt as seconds since the epoch")
    p.add_argument("-r", dest="relative", action="store_true", help="time since the previous line, on each line")
    p.add_argument("-T", dest="durations", action="store_true", help="time spent in each call, <s> at the end")
    p.add_argument("-i", dest="callers", action="store_true",
                   help="each call's site (the address it returns to) at the start of its line, as ltrace -i")
    p.add_argument("--chosen-only", action="store_true",
                   help="record only the calls --inject chose (the others cost what -c costs)")
    p.add_argument("-Z", "--failed", action="store_true", help="only the calls that failed")
    p.add_argument("-c", dest="summary_only", action="store_true",
                   help="a summary at exit (calls, errors, time per function) instead of the lines")
    p.add_argument("-C", dest="summary_too", action="store_true", help="the lines and the summary")
    p.add_argument("--json", metavar="FILE", help="one JSON object per call to FILE (schema: README)")
    p.add_argument("--timeline", metavar="FILE",
                   help="a timeline in Chrome's trace event format (Perfetto, chrome://tracing) to FILE")
    p.add_argument("--timeline-limit", type=int, default=1_000_000, metavar="N",
                   help="the most calls the timeline holds (default 1000000: what viewers still open)")
    p.add_argument("--scaffold", metavar="FILE.py",
                   help="write a hook script with a stub for each function called, to edit and run")
    p.add_argument("--buffer-size", type=int, default=64, metavar="MB", help="the trace buffer (default 64 MB)")
    p.add_argument("--inject", action="append", default=[], metavar="SPEC",
                   help="make calls fail or wait: FUNC[,FUNC]:error=ENAME|retval=N[:when=FIRST[..LAST][+STEP]]"
                        "[:probability=P][:delay_enter=T][:delay_exit=T] (repeatable)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="the seed of --inject's probability= (default 0)")
    p.add_argument("--fake-time", metavar="WHEN",
                   help="the program's clock: '2000-01-01 12:00', '@EPOCH', '+1d', '-3h', with a rate 'x10'")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no call lines (with --inject or --fake-time: trace only what they need)")
    _header_option(p)
    p.add_argument("--build-dir", metavar="DIR", help="keep builds in DIR instead of the cache")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cache has a build")
    p.add_argument("--force", action="store_true", help="run a program that cannot be traced anyway, untraced")
    p.add_argument("-v", "--verbose", action="store_true", help="say what happens")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    return p


def _list_prototypes(pattern, build_dir, headers, command):
    """-l [GLOB] [COMMAND]: the known prototypes matching GLOB, each with its large-file twin and their checked
    versions (as -e takes them); with COMMAND, only those it or the libraries it loads import, each saying
    which."""
    import fnmatch
    from mrhooker import cache, cdecl, tracing
    from mrhooker.programs import resolve_command
    root = cache.build_root(build_dir)
    imported = None
    if command:
        from mrhooker import programs
        imported = programs.imported(resolve_command(command[0], os.environ), say)
    libraries = bool(command or headers) or (pattern != "*" and not fnmatch.filter(cdecl.known_names(root), pattern))
    names = fnmatch.filter(cdecl.known_names(root, headers, libraries=libraries), pattern)
    if not names:
        hint = ""
        if not command and os.sep not in pattern and any(
                os.access(os.path.join(d or ".", pattern), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            hint = " (to list what the program %s calls: mrhooker trace -l '*' %s)" % (pattern, pattern)
        raise MrhookerError("no known function matches %s%s" % (pattern, hint))
    twins = cdecl.large_file_twins(root, headers, libraries=libraries)
    listed, lines = set(), []
    for name in names:
        for each in tracing.with_twins([name], twins):
            if each in listed:
                continue
            listed.add(each)
            proto = tracing.prototype_for(each, root, headers)
            if imported is None:
                lines.append("%s;\n" % proto.text)
            elif proto.symbol in imported:
                lines.append("%s;  // %s\n" % (proto.text, ", ".join(imported[proto.symbol])))
    if imported is not None and not lines:
        say("%s and the libraries it loads import no known function matching %s" % (command[0], pattern))
        return 1
    try:
        sys.stdout.write("".join(lines))
        sys.stdout.flush()
    except BrokenPipeError:   # `| head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")
        return 128 + 13
    return 0


def _process_of(tid):
    """The process a thread id belongs to (its Tgid); tid itself when it is a process, or gone."""
    try:
        with open("/proc/%d/status" % tid) as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


def _pids(values, command, duration):
    """-p's values (each a comma list) as pids, each once, in order (a thread's id: its process, said so); -p and
    -D checked against COMMAND."""
    from mrhooker.errors import say
    pids = []
    for value in values:
        for item in value.split(","):
            if not item.strip().isdigit() or int(item) <= 0:
                raise MrhookerError("-p %s: not a process id" % value)
            pid = _process_of(int(item))
            if pid != int(item):   # the runtime patches a process, whose threads all call through it
                say("%s is a thread of process %d: attaching to the process (all its threads)" % (item.strip(), pid))
            if pid == os.getpid():
                raise MrhookerError("-p %s: that is mrhooker itself" % item)
            if pid not in pids:
                pids.append(pid)
    if pids and command:
        raise MrhookerError("give either -p PID or a command, not both")
    if duration is not None and (not pids or not duration > 0):
        raise MrhookerError("-D takes a number of seconds above 0, and only with -p PID")
    return pids


def trace_command(argv):
    """`mrhooker trace ...`: trace COMMAND's library calls; returns the exit status."""
    from mrhooker import config
    from mrhooker.build import BuildOptions
    from mrhooker.launch import find_program
    from mrhooker.tracer import TraceRequest, Tracer

    args = _trace_parser().parse_args(argv)
    build_dir = os.path.abspath(os.path.expanduser(args.build_dir)) if args.build_dir else None
    if args.list is not None:
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return _list_prototypes(args.list, build_dir, _headers(args, config.load(None)), command)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    pids = _pids(args.pids, args.command, args.duration)
    if not args.command and not pids:
        raise MrhookerError("no command given: what should run traced?\nusage: " + TRACE_USAGE)
    if args.chosen_only and not args.inject:
        raise MrhookerError("--chosen-only records the calls --inject chooses: give --inject too")
    for bad, says in ((args.strsize < 0, "-s %d: the length takes a number from 0" % args.strsize),
                      (args.timeline_limit < 1, "--timeline-limit %d: a number from 1" % args.timeline_limit),
                      (not 1 <= args.buffer_size <= 65536,
                       "--buffer-size %d: a number of MB from 1 to 65536" % args.buffer_size)):
        if bad:   # the option given, by name
            raise MrhookerError(says)
    for option, path in (("-o", args.output), ("--json", args.json), ("--timeline", args.timeline),
                         ("--scaffold", args.scaffold)):
        # checked now, not after the program ran: a typo must not cost the run. A file that exists and may be
        # written is written in place (-o /dev/null, a log in a directory of another's), but the scaffold, written
        # aside and renamed, and -ff's FILE.PID, made anew, need the directory.
        in_place = option != "--scaffold" and not (option == "-o" and args.follow_count >= 2)
        if path is not None and (not path or os.path.isdir(path) or
                                 not (in_place and os.path.exists(path) and os.access(path, os.W_OK)) and
                                 not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)):
            raise MrhookerError("%s %r: %s" % (option, path, "an empty name" if not path else "a directory"
                                               if os.path.isdir(path) else "its directory is missing or not writable"))
    if args.follow_count >= 2 and not args.output:
        raise MrhookerError("-ff needs -o FILE (it writes FILE.PID for each process)")
    program = find_program(args.command, args.force) if not pids else None
    # a launched command's children are followed unless --no-follow; an attached process's only with -f (strace's)
    follow = not args.no_follow and (args.follow_count >= 1 or not pids)
    console = Console(args.verbose)
    request = TraceRequest(
        specs=args.specs, strsize=args.strsize, follow=follow, output=args.output,
        per_process=args.follow_count >= 2, append=args.append, timestamps=min(args.timestamps, 3),
        relative=args.relative, durations=args.durations, callers=args.callers, failed_only=args.failed,
        summary=args.summary_only or args.summary_too, lines=not (args.summary_only or args.quiet), json_path=args.json,
        timeline_path=args.timeline, timeline_limit=args.timeline_limit, scaffold_path=args.scaffold,
        buffer_mb=args.buffer_size, inject=args.inject, seed=args.seed, fake_time=args.fake_time, quiet=args.quiet,
        duration=args.duration, entry=args.entry, chosen_only=args.chosen_only)
    options = BuildOptions(build_dir=build_dir, rebuild=args.rebuild, log=console.log, progress=console.progress,
                           headers=_headers(args, config.load(None)), preparing=console.preparing,
                           attach=bool(pids))
    try:
        return Tracer(request, options, console.log).run(args.command, program, attach_to=pids)
    finally:
        console.clear_status()


SWEEP_USAGE = "mrhooker sweep [OPTIONS] COMMAND [ARGS...]"


def _sweep_parser():
    p = _subcommand_parser(
        "sweep", SWEEP_USAGE, "Make each call site of the chosen functions fail once, one run of COMMAND each, and say "
        "which failures it doesn't survive: crashes and hangs first, each with the command that reproduces it.",
        "kinds: crash (a signal), hang (--timeout), output (same status, different output), exit (status changed, "
        "no message), handled (status changed, a message), silent (as the clean run).\n\"{}\" in an argument: a "
        "fresh directory for each run.\nexit status: 1 if a run crashed or hung, else 0; 2 for mrhooker's own "
        "errors.")
    p.add_argument("-e", dest="specs", metavar="SPEC", action="append", default=[],
                   help="the functions to fail, as trace -e (default: %s)" % sweep_defaults())
    p.add_argument("-j", dest="jobs", type=int, metavar="N", help="runs at once (default: the number of cores)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="a run not done after S seconds is a hang (default: 10x the clean run, at least 10)")
    p.add_argument("--limit", type=int, metavar="K", help="at most K failing runs")
    p.add_argument("--all", dest="all_calls", action="store_true", help="fail every call, not each site's first")
    p.add_argument("--errno", metavar="ENAME", help="this errno for every failure (default: the function's usual)")
    p.add_argument("--input", metavar="FILE", help="each run's standard input (default: /dev/null)")
    p.add_argument("--check", metavar="COMMAND",
                   help="a shell command run after each run ({}: its directory), whose output and status count as "
                        "the run's: what the program wrote (cmp data {}/copy)")
    p.add_argument("--json", metavar="FILE", help="every run, one JSON object per line, to FILE")
    p.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def sweep_defaults():
    from mrhooker.sweep import DEFAULT_SPEC
    return DEFAULT_SPEC.replace("%", "%%")


def sweep_command(argv):
    from mrhooker.launch import find_program
    from mrhooker.sweep import Sweep, SweepRequest
    args = _sweep_parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise MrhookerError("no command given: what should be swept?\nusage: " + SWEEP_USAGE)
    if (args.jobs is not None and args.jobs < 1) or (args.limit is not None and args.limit < 0) or \
            (args.timeout is not None and not 0 < args.timeout < float("inf")):
        raise MrhookerError("-j takes a number from 1, --limit one from 0, --timeout a time over 0")
    if args.errno is not None and not re.fullmatch(r"E[A-Z0-9]+", args.errno):
        raise MrhookerError("--errno takes an errno name (ENOMEM, EIO, ...), not %r" % args.errno)
    for option, path in (("--input", args.input),):
        if path is not None and not os.path.isfile(path):
            raise MrhookerError("%s %s: no such file" % (option, path))
    find_program(command, False)
    console = Console(False)

    def progress(done, total, crashes):
        console.status("mrhooker: sweep: %d of %d runs, %d crashed or hung" % (done, total, crashes))

    import shlex
    say("sweep: a clean run of %s ..." % shlex.join(command))
    request = SweepRequest(specs=args.specs, jobs=args.jobs, timeout=args.timeout, limit=args.limit,
                           all_calls=args.all_calls, errno_name=args.errno, input_path=args.input,
                           json_path=args.json, progress=progress, check=args.check)
    try:
        sweep = Sweep(request, command).run()
    finally:
        console.clear_status()
    for line in sweep.report():
        sys.stderr.write(line + "\n")
    return 1 if sweep.findings() else 0


SUBCOMMANDS = {"run": run_command, "trace": trace_command, "sweep": sweep_command}


class _Interrupted(BaseException):
    """SIGTERM or SIGHUP while mrhooker itself works (a build): raised to unwind, cleaning up as it goes."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


_UNWINDING = ("SIGINT", "SIGTERM", "SIGHUP")


def _interrupt(signum, _frame):
    """The first of these signals unwinds; those after it (a second Ctrl-C, or `timeout` passing on the SIGINT
    its group got) are ignored, so that the cleanup they would cut short (the compilers killed, the build's
    temporary directory removed) ends in the one line, not a traceback."""
    import signal
    for name in _UNWINDING:
        sig = getattr(signal, name)
        if signal.getsignal(sig) is _interrupt:
            signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt if signum == signal.SIGINT else _Interrupted(signum)


class _OwnStderr:
    """mrhooker's stderr, for its own lines: once nobody reads it (`2> >(head -2)`: EPIPE), what is still said
    there is lost, as strace's lines are, and nothing else changes: the exit status stays the program's (a
    BrokenPipeError had made it 1, "internal error")."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _standard_streams():
    """A standard descriptor mrhooker was started without (`2>&-`, `>&-`) is held on /dev/null, close-on-exec:
    the program still starts without it, as it would have, while the first file mrhooker opens (the trace's
    ring, a pipe) can't take its number and become mrhooker's stderr (the trace's lines were written into the
    ring: mrhooker died of SIGSEGV) or stdout. Python left sys.stderr/stdout None for it (a traceback at the
    first write); they write to /dev/null now."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)   # the lowest free number: fd (those below it are open)
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))
    if not isinstance(sys.stderr, _OwnStderr):
        sys.stderr = _OwnStderr(sys.stderr)


def main(argv=None):
    import signal

    _standard_streams()
    argv = sys.argv[1:] if argv is None else argv
    handler = SUBCOMMANDS.get(argv[0]) if argv else None
    if handler is not None:
        argv = argv[1:]
    else:
        handler = run_command
    # While mrhooker builds, SIGTERM and SIGHUP unwind like Ctrl-C: the compilers are killed, the build's
    # temporary directory removed. (While the target runs, launch forwards them to it instead.) One mrhooker was
    # started ignoring (`nohup`, a background job's SIGINT) stays ignored, by mrhooker and the target it runs.
    for name in _UNWINDING:
        sig = getattr(signal, name)
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(sig, _interrupt)
    # mrhooker.testing.run asks for the message of a refused request in a file, to tell it from the program's
    # own failures; the target must not inherit the request.
    error_file = os.environ.pop("MRHOOKER_ERROR_FILE", None)
    try:
        return handler(argv)
    except MrhookerError as e:
        say(e)
        if error_file:
            try:
                with open(error_file, "w", encoding="utf-8") as f:
                    f.write("%s\n" % e)
            except OSError:
                pass
        return e.status
    except (KeyboardInterrupt, _Interrupted) as e:
        from mrhooker import toolchain
        toolchain.kill_running()
        signum = e.signum if isinstance(e, _Interrupted) else signal.SIGINT
        say("interrupted")
        return 128 + signum
    except OSError as e:
        if e.errno not in (errno.EMFILE, errno.ENFILE):
            return _internal_error(e, argv)
        # out of descriptors (a tight `ulimit -n`) where mrhooker opens one without a message of its own
        from mrhooker.threads import limit
        say("%s%s (mrhooker needs a few descriptors of its own beside the program's; %s)"
            % ("cannot open %s: " % e.filename if e.filename else "", e.strerror, limit("RLIMIT_NOFILE")))
        return 2
    except Exception as e:
        return _internal_error(e, argv)


def _internal_error(e, argv):
    """A bug in mrhooker: still one line, the traceback only with -v."""
    if "-v" in argv or "--verbose" in argv:
        import traceback
        traceback.print_exception(type(e), e, e.__traceback__)
    say("internal error: %s: %s (rerun with -v for the traceback)" % (type(e).__name__, e))
    return 70


def script():
    """The `mrhooker` command and `python -m mrhooker`: main()'s exit status. Unless a thread is still at work
    (a build's compiler being stopped), the process then ends without Python's teardown, which frees every
    module and object one by one (~7 ms, 5% of a warm trace) where the kernel frees them at once; what that
    teardown would still do for mrhooker, flushing stdout and stderr, is done here (a closed pipe is not an
    error by then: the program's status stands)."""
    status = main()
    import threading
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(status)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status or 0)

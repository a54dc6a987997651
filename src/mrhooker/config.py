"""The INI config file, ~/.mrhooker/mrhooker.config (or the file MRHOOKER_CONFIG names).

    [default]
    build_dir = ~/.cache/mrhooker-builds/%(module)s
    verbose = false

    [hooks]                 ; a section named after a script's module (hooks.pyx -> hooks) beats [default]
    include_dirs = ~/src/myproject/include
    ldflags = -lssl
    headers = curl/curl.h ./include/api.h   ; functions hooks and traces may name (-H)

A missing file, or a missing section, is normal. Command-line options beat the module's section, which beats
[default].
"""
import os
import re

from mrhooker.errors import MrhookerError

DEFAULT_PATH = os.path.join("~", ".mrhooker", "mrhooker.config")

# key -> kind of value
KEYS = {
    "build_dir": "path",      # where builds are kept (instead of the cache); %(module)s is the script's module
    "verbose": "bool",
    "include_dirs": "paths",  # for cimport and `cdef extern from` headers; separated by ':' or whitespace
    "cflags": "words",        # extra C compiler flags
    "ldflags": "words",       # extra linker flags, e.g. -lssl
    "headers": "headers",     # more headers whose functions hooks and traces may name (-H)
}


def config_path():
    """The config file's path, and whether the user named it (so that its absence is an error)."""
    named = os.environ.get("MRHOOKER_CONFIG")
    if named:
        return os.path.expanduser(named), True
    return os.path.expanduser(DEFAULT_PATH), False


def _line_of(text, section, key=None):
    """The line number of a key in a section (or of the section header), for messages."""
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[([^\]]*)\]", line)
        if header:
            current = header.group(1).strip()
            if key is None and current == section:
                return number
            continue
        if current == section and key is not None:
            match = re.match(r"\s*([^=:\s][^=:]*?)\s*[=:]", line)
            if match and match.group(1).strip().lower() == key:
                return number
    return 0


def _convert(kind, raw):
    if kind == "bool":
        value = raw.strip().lower()
        if value in ("1", "yes", "true", "on"):
            return True
        if value in ("0", "no", "false", "off"):
            return False
        raise ValueError("not a boolean: %r (use true or false)" % raw)
    if kind == "path":
        if not raw.strip():
            raise ValueError("empty: name a directory (an empty value would mean the current one)")
        # An indented line continues the setting above it: a path with a newline is such a slip, not a path.
        if "\n" in raw.strip():
            raise ValueError("one path expected, but the value goes on over several lines (an indented line "
                             "continues the setting above it): %r" % raw)
        return os.path.abspath(os.path.expanduser(raw.strip()))
    if kind == "paths":
        return [os.path.abspath(os.path.expanduser(p)) for p in re.split(r"[:\s]+", raw.strip()) if p]
    import shlex
    if kind == "words":
        return shlex.split(raw)
    if kind == "headers":
        return [header_name(h) for h in shlex.split(raw)]
    raise AssertionError(kind)


def header_name(header):
    """A header as cdecl reads it: a name found on the include path (zlib.h), or a file's absolute path."""
    header = os.path.expanduser(header)
    if header.startswith(".") or os.path.isabs(header):
        if not os.path.isfile(header):
            raise ValueError("no such header file: %s" % os.path.abspath(header))
        return os.path.abspath(header)
    return header


def load(module, path=None):
    """The settings for a script's module: {key: value} for the keys set in [default] or [module]. module None:
    `mrhooker trace`'s, which has no script: [default] alone, its %(module)s read as "trace"."""
    named = path is not None
    if path is None:
        path, named = config_path()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if named:
            raise MrhookerError("config file not found: %s (named by MRHOOKER_CONFIG)" % path)
        return {}
    except PermissionError as e:
        # the default file in a directory this user can't enter (another user's HOME, kept by su or setpriv):
        # none of this user's, as a missing one
        if not named and not os.access(os.path.dirname(path), os.X_OK):
            return {}
        raise MrhookerError("cannot read config file %s: %s" % (path, e.strerror))
    except (OSError, UnicodeDecodeError) as e:
        raise MrhookerError("cannot read config file %s: %s" % (path, getattr(e, "strerror", None) or e))

    import configparser   # only when there is a file: a warm run without one stays fast
    # Inline comments after a value or a section header (`verbose = false   ; why`), as the README's example has
    # them: only after whitespace, so that `-DX=a;b` keeps its ';'.
    parser = configparser.ConfigParser(default_section="\0none", interpolation=configparser.BasicInterpolation(),
                                       inline_comment_prefixes=(";", "#"))
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as e:
        if e.line.lstrip().startswith("["):   # configparser calls a broken header a missing one
            raise MrhookerError("%s:%d: bad section header %r: write [default] or [MODULE]"
                                % (path, e.lineno, e.line.strip()))
        raise MrhookerError("%s:%d: a setting before any [section]; start the file with [default]" % (path, e.lineno))
    except configparser.ParsingError as e:
        lineno = e.errors[0][0] if e.errors else 0
        raise MrhookerError("%s:%d: not a 'key = value' line or [section] header" % (path, lineno))
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as e:
        raise MrhookerError("%s:%s: %s" % (path, e.lineno, e.message.split(": ", 1)[-1]))
    except configparser.Error as e:
        raise MrhookerError("%s: %s" % (path, e.message))

    settings = {}
    for section in ("default", module):
        if not parser.has_section(section):
            continue
        for key in parser.options(section):
            where = "%s:%d" % (path, _line_of(text, section, key))
            if key not in KEYS:
                raise MrhookerError("%s: unknown setting %r in [%s]; known: %s" % (where, key, section,
                                                                                   ", ".join(sorted(KEYS))))
            try:
                raw = parser.get(section, key, vars={"module": module or "trace"})
                settings[key] = _convert(KEYS[key], raw)
            except configparser.InterpolationError as e:
                # '%' starts a %(name)s reference, so a literal one (-DFMT="%d") must be doubled
                hint = "; write %% for a literal %" if isinstance(e, configparser.InterpolationSyntaxError) else ""
                raise MrhookerError("%s: bad %%(...)s in %s: %s%s" % (where, key, e.message.splitlines()[0], hint))
            except ValueError as e:
                raise MrhookerError("%s: %s: %s" % (where, key, e))
    return settings

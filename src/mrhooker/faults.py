"""Fault injection and fake time for `mrhooker trace`: the --inject and --fake-time specs, read into the rules
the generated C applies (runtime/trace.h: mrh_inject_rule, fake time). Nothing here runs in the target.

--inject, in strace's syntax where it has one (and libfiu's probability):

    FUNC[,FUNC...]:error=ENAME|retval=N[:when=FIRST[..LAST][+[STEP]]][:probability=P][:delay_enter=T][:delay_exit=T]

A chosen call isn't made: it returns retval (or, with error= alone, the failure value its prototype implies:
-1 for a signed integer, NULL for a pointer) with errno set to ENAME; with error= alone, a function that fails
by returning an error number (tracespec.returns_error_number: posix_spawn, pthread_create) returns ENAME's
number instead and leaves errno alone, as it does itself. when= counts a function's calls in each process from
1: `3` the third only, `3+` the third and every one after, `3+2` every second from the third, `2..4` the
second to the fourth. probability= (0.05, or 5%) then keeps each of those with that chance, from a
hash of --seed, the function and the call's number: the same seed chooses the same calls. delay_enter= and
delay_exit= wait before or after the call (microseconds, or with a unit: 10ms, 1.5s, 200us, 50ns); alone,
they delay without failing. Several rules may name one function: they count the same calls (when= numbers are
the function's call numbers, whatever the other rules do), and the first rule in command-line order that
chooses a call decides what it gets.
"""
import decimal
import fnmatch
import re
import time

from mrhooker import tracespec
from mrhooker.errors import MrhookerError

ALWAYS = 0xFFFFFFFF
U64 = (1 << 64) - 1


class Rule:
    """One --inject spec: the functions it names and what a chosen call gets."""

    def __init__(self, spec, functions, error=0, error_name=None, retval=None, first=1, last=0, step=1,
                 probability=ALWAYS, delay_enter_ns=0, delay_exit_ns=0):
        self.spec = spec
        self.functions = functions        # names or globs, as written
        self.error, self.error_name = error, error_name
        self.retval = retval              # None: the prototype's failure value
        self.first, self.last, self.step = first, last, step
        self.probability = probability    # in 2^-32
        self.delay_enter_ns, self.delay_exit_ns = delay_enter_ns, delay_exit_ns

    @property
    def fails(self):
        return bool(self.error_name) or self.retval is not None

    def entry(self, proto):
        """The mrh_inject_rule fields for one function, but its chain's `next`: (armed, error, retval, fail,
        probability, first, last, step, delay_enter_ns, delay_exit_ns)."""
        error, retval = self.error, self.retval
        if self.fails:
            name = proto.symbol
            if name in tracespec.NORETURN:
                raise MrhookerError("--inject %s: %s never returns: it can be delayed, not made to fail"
                                    % (self.spec, name))
            if proto.ret.kind == "void":
                raise MrhookerError("--inject %s: %s returns nothing, so it can't fail: use delay_enter= or "
                                    "delay_exit=" % (self.spec, name))
            if retval is None and tracespec.returns_error_number(proto):
                error, retval = 0, error   # failing as the function does: the error number returned, not in errno
            elif retval is None:
                retval = tracespec.failure_value(proto)
                if retval is None:
                    raise MrhookerError("--inject %s: what %s returns when it fails isn't clear from its prototype "
                                        "(%s): say it with retval=" % (self.spec, name, proto.text))
        return (1, error, int(retval or 0), int(self.fails), self.probability, self.first, self.last,
                self.step, self.delay_enter_ns, self.delay_exit_ns)


def parse_inject(spec, errno_values):
    """A --inject SPEC, read into a Rule. errno_values: {name: value} (the headers' E* constants)."""
    parts = spec.split(":")
    names = [n.strip() for n in parts[0].split(",") if n.strip()]
    if not names or any(not re.fullmatch(r"[A-Za-z_*?\[\]][\w*?\[\]]*", n) for n in names):
        raise MrhookerError("bad --inject %r: start with the function names, e.g. write:error=ENOSPC" % spec)
    settings = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise MrhookerError("bad --inject %r: %r is not KEY=VALUE" % (spec, part))
        if key in settings:
            raise MrhookerError("bad --inject %r: %s given twice" % (spec, key))
        settings[key] = value
    unknown = set(settings) - {"error", "retval", "when", "probability", "delay_enter", "delay_exit"}
    if unknown:
        raise MrhookerError("bad --inject %r: unknown %s (known: error, retval, when, probability, delay_enter, "
                            "delay_exit)" % (spec, ", ".join(sorted(unknown))))
    if not ({"error", "retval", "delay_enter", "delay_exit"} & set(settings)):
        raise MrhookerError("bad --inject %r: say what to do: error=ENAME, retval=N, delay_enter= or delay_exit="
                            % spec)
    rule = Rule(spec, names)
    if "error" in settings:
        name = settings["error"].upper()
        value = errno_values.get(name)
        if value is None and name.isdigit() and 0 < int(name) < 4096:   # errno values: 1..4095
            value = int(name)
        if value is None or not name.startswith("E") and not name.isdigit():
            import difflib
            close = difflib.get_close_matches(name, [n for n in errno_values if n.startswith("E")], n=3)
            raise MrhookerError("bad --inject %r: unknown errno name %s%s" % (
                spec, settings["error"], " (did you mean %s?)" % ", ".join(close) if close else ""))
        rule.error, rule.error_name = value, name
    if "retval" in settings:
        try:
            if len(settings["retval"]) > 70:   # past 64 bits in any base; int() refuses 4300 digits anyway
                raise OverflowError
            rule.retval = int(settings["retval"], 0)
        except OverflowError:
            raise MrhookerError("bad --inject %r: retval=%s does not fit 64 bits" % (spec, settings["retval"][:40]))
        except ValueError:
            raise MrhookerError("bad --inject %r: retval=%s is not an integer" % (spec, settings["retval"]))
        if not -(1 << 63) <= rule.retval < (1 << 64):
            raise MrhookerError("bad --inject %r: retval=%s does not fit 64 bits" % (spec, settings["retval"]))
        if rule.retval >= 1 << 63:
            rule.retval -= 1 << 64
    if "when" in settings:
        rule.first, rule.last, rule.step = _when(spec, settings["when"])
    if "probability" in settings:
        rule.probability = _probability(spec, settings["probability"])
    for key in ("delay_enter", "delay_exit"):
        if key in settings:
            setattr(rule, key + "_ns", duration_ns(settings[key], "--inject %r: %s" % (spec, key)))
    return rule


def _when(spec, text):
    match = re.fullmatch(r"(\d+)(?:\.\.(\d+))?(\+(\d*))?", text)
    if not match:
        raise MrhookerError("bad --inject %r: when=%s: write FIRST, FIRST+, FIRST+STEP, FIRST..LAST or "
                            "FIRST..LAST+STEP" % (spec, text))
    numbers = [g for g in (match.group(1), match.group(2), match.group(4)) if g]
    if any(len(g.lstrip("0")) > 20 or int(g) > U64 for g in numbers):
        raise MrhookerError("bad --inject %r: when=%s: calls are counted in 64 bits (at most %d)"
                            % (spec, text, U64))
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else 0
    plus, step = match.group(3), match.group(4)
    if first < 1 or (last and last < first):
        raise MrhookerError("bad --inject %r: when=%s: calls are counted from 1, and LAST can't come before FIRST"
                            % (spec, text))
    if plus is None:
        step = 1 if last else 0     # FIRST alone: that call only; FIRST..LAST: each of them
    else:
        step = int(step) if step else 1
        if step < 1:
            raise MrhookerError("bad --inject %r: when=%s: the step must be at least 1" % (spec, text))
    return first, last, step


def _probability(spec, text):
    try:
        p = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        p = -1
    if not 0 <= p <= 1:
        raise MrhookerError("bad --inject %r: probability=%s: a number from 0 to 1, or a percentage" % (spec, text))
    return ALWAYS if p >= 1 else int(p * (1 << 32))


_UNITS = {"ns": 1, "us": 1000, "ms": 1000000, "s": 1000000000}


def duration_ns(text, what):
    """A delay: microseconds, or with a unit (ns, us, ms, s)."""
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|s)?", text.strip())
    if not match:
        raise MrhookerError("bad %s=%s: a duration such as 500 (µs), 10ms or 1.5s" % (what, text))
    ns = int(decimal.Decimal(match.group(1)) * _UNITS[match.group(2) or "us"]) if len(match.group(1)) < 40 else U64 + 1
    if ns > U64:
        raise MrhookerError("bad %s=%s: too long (the runtime counts nanoseconds in 64 bits: 584 years)"
                            % (what, text))
    return ns


def rules_for(rules, prototypes, twins=None):
    """{index of the prototype: [Rule]}: the rules that name each function, in command-line order (the order
    in which they decide a call). A name stands for the function (by the name written or its symbol: an alias),
    its large-file twin (twins: {open: open64}) and their checked versions (__open_2, __open64_2), as in -e."""
    base = {twin: name for name, twin in (twins or {}).items()}
    chosen = {}
    for rule in rules:
        matched = False
        for index, proto in enumerate(prototypes):
            checked = tracespec.checks(proto.symbol)
            names = {proto.name, proto.symbol, base.get(proto.symbol, proto.symbol)}
            if checked:
                names |= {checked, base.get(checked, checked)}
            if any(fnmatch.fnmatchcase(n, pattern) for n in names for pattern in rule.functions):
                chosen.setdefault(index, []).append(rule)
                matched = True
        if not matched:
            raise MrhookerError("--inject %s: no traced function matches %s" % (rule.spec, ",".join(rule.functions)))
    return chosen


# ---- fake time ----------------------------------------------------------------------------------------------

# The functions --fake-time fakes, and what each is (the runtime's faketime.c has a mrh_faked_NAME for each;
# README's table lists them). With fake time on, a trace records them (those the headers declare): the readers,
# the absolute waits and the timers' clocks always, the relative waits only with a rate (without one, they
# wait as they would).
READER = "reader"              # returns the time: real -> fake
DEADLINE = "absolute wait"     # waits until a time on a realtime clock: fake -> real (and relative ones by the rate)
TIMER_CLOCK = "timer clock"    # remembers each POSIX timer's clock, for timer_settime
DURATION = "relative wait"     # waits for a duration: divided by the rate (the time left, multiplied back)
FAKE_TIME = {
    "time": READER, "gettimeofday": READER, "clock_gettime": READER, "timespec_get": READER, "ftime": READER,
    "ntp_gettime": READER, "ntp_gettimex": READER, "adjtimex": READER, "clock_adjtime": READER,
    "pthread_cond_timedwait": DEADLINE, "pthread_cond_clockwait": DEADLINE, "sem_timedwait": DEADLINE,
    "sem_clockwait": DEADLINE, "pthread_mutex_timedlock": DEADLINE, "pthread_mutex_clocklock": DEADLINE,
    "pthread_rwlock_timedrdlock": DEADLINE, "pthread_rwlock_timedwrlock": DEADLINE,
    "pthread_rwlock_clockrdlock": DEADLINE, "pthread_rwlock_clockwrlock": DEADLINE,
    "pthread_timedjoin_np": DEADLINE, "pthread_clockjoin_np": DEADLINE, "mq_timedsend": DEADLINE,
    "mq_timedreceive": DEADLINE, "cnd_timedwait": DEADLINE, "mtx_timedlock": DEADLINE,
    "clock_nanosleep": DEADLINE, "timer_settime": DEADLINE, "timerfd_settime": DEADLINE, "syscall": DEADLINE,
    "timer_create": TIMER_CLOCK, "timer_delete": TIMER_CLOCK,
    "nanosleep": DURATION, "sleep": DURATION, "usleep": DURATION, "thrd_sleep": DURATION, "poll": DURATION,
    "ppoll": DURATION, "select": DURATION, "pselect": DURATION, "epoll_wait": DURATION, "epoll_pwait": DURATION,
    "epoll_pwait2": DURATION, "sigtimedwait": DURATION, "alarm": DURATION, "ualarm": DURATION,
    "setitimer": DURATION, "getitimer": DURATION, "timer_gettime": DURATION, "timerfd_gettime": DURATION,
}
NORMAL_RATE = 1000000   # rates are in millionths


def fake_time_functions(rate_ppm, known):
    """The functions a trace with fake time at this rate must record, of those in `known`."""
    return [name for name, kind in FAKE_TIME.items()
            if name in known and (kind != DURATION or rate_ppm != NORMAL_RATE)]


_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_RELATIVE = re.compile(r"([+-])%s\s*([smhdwy]?)" % _NUMBER)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}   # y: libfaketime's
_EPOCH = re.compile(r"@\s*(-?)%s" % _NUMBER)
_RATE = re.compile(r"x%s" % _NUMBER)
_FORMS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_TIME_T = 1 << 63   # seconds a 64-bit time_t holds, each way
_FAR = _TIME_T * 2 * 1000000000   # past it (a number too long to read)


def _exact(digits):
    """A number as written (digits and a point), exactly; None if absurdly long."""
    return decimal.Decimal(digits) if len(digits) <= 60 else None


def parse_fake_time(text, now_ns=None):
    """--fake-time SPEC -> (real anchor ns, fake anchor ns, rate in millionths): the program's clock shows the fake
    anchor at the real one and runs at the rate from there. SPEC: a local date and time ('2000-01-01',
    '2000-01-01 12:30[:45]'), '@EPOCH' (seconds, a fraction allowed), or a shift from now ('+1d', '-3h', '+90m',
    '+30s', '+1.5w', '+2y': a year is 365 days, as libfaketime counts); then, optionally, a rate: 'x10' (ten
    times as fast), 'x0.5'. A rate alone starts from now. Any time a 64-bit time_t holds is allowed (years
    -292277022657 to 292277026596)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    # A whole millisecond: readers that truncate the time (ftime to ms, gettimeofday to µs) then turn the
    # second when the precise clock does (runtime/faketime.h).
    now_ns -= now_ns % 1000000
    words = text.split()
    if not words:   # (the real clock, unfaked: not what anyone writing --fake-time means)
        raise MrhookerError("bad --fake-time %r: give a date ('2000-01-01'), @EPOCH, a shift ('+1d') or a rate "
                            "('x2')" % text)
    rate = NORMAL_RATE
    if words and _RATE.fullmatch(words[-1]):
        value = _exact(words.pop()[1:])
        rate = int(value * NORMAL_RATE) if value is not None and value <= NORMAL_RATE else 0
        if not 1 <= rate <= NORMAL_RATE ** 2:
            raise MrhookerError("bad --fake-time %r: the rate must be from x0.000001 to x1000000" % text)
    when = " ".join(words)
    if not when:
        fake = now_ns
    elif when.startswith("@"):
        match = _EPOCH.fullmatch(when)
        if not match:
            raise MrhookerError("bad --fake-time %r: @ takes seconds since the epoch (@946684800, @-1.5)" % text)
        seconds = _exact(match.group(2))
        fake = _FAR if seconds is None else int((-seconds if match.group(1) else seconds) * 1000000000)
    elif when[0] in "+-":
        match = _RELATIVE.fullmatch(when)
        if not match:
            raise MrhookerError("bad --fake-time %r: a shift is written +1d, -3h, +90m, +30s, +2w or +1y" % text)
        amount = _exact(match.group(2))
        shift = _FAR if amount is None else int(amount * _SECONDS[match.group(3)] * 1000000000)
        fake = now_ns + (shift if match.group(1) == "+" else -shift)
    else:
        for form in _FORMS:
            try:
                fake = int(time.mktime(time.strptime(when, form))) * 1000000000
                break
            except (ValueError, OverflowError):
                continue
        else:
            raise MrhookerError("bad --fake-time %r: write a date ('2000-01-01 12:00:00'), '@EPOCH' or a "
                                "shift ('+1d', '-3h'), a rate ('x10'), or one of them and a rate" % text)
    if not -_TIME_T <= fake // 1000000000 < _TIME_T:
        raise MrhookerError("bad --fake-time %r: past what a 64-bit time_t holds (years -292277022657 to "
                            "292277026596)" % text)
    return now_ns, fake, rate

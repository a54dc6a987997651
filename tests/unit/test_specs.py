"""--inject, --fake-time and -e read (faults.py, tracing.select), no target run: their numbers' ranges, the
rule table the runtime reads, the README's table of faked time functions, and a seeded fuzz of ~400 random
specs, each of which either works or is one MrhookerError line (never an internal error)."""
import os
import random
import re

import pytest

from specfuzz import e_spec, fake_time_spec, inject_spec

from mrhooker import faults, tracing
from mrhooker.errors import MrhookerError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INT64 = (-(1 << 63), (1 << 63) - 1)


# ---- fake time --------------------------------------------------------------------------------------------

def header_words(fake_time):
    """What TraceFile writes of a parsed --fake-time: each value must fit its field (int64, or uint64)."""
    real, fake, rate = fake_time
    sec, nsec = fake // 1000000000, fake % 1000000000
    assert INT64[0] <= real <= INT64[1] and INT64[0] <= sec <= INT64[1] and 0 <= nsec < 10 ** 9
    assert 1 <= rate <= 10 ** 12
    return sec, nsec


def test_fake_time_reaches_both_ends_of_a_64_bit_time_t():
    now = 1796377677123456789
    assert faults.parse_fake_time("2300-01-01 00:00:00", now)[1] == 10413792000 * 10 ** 9
    assert header_words(faults.parse_fake_time("9999-12-31", now))[0] == 253402214400
    assert header_words(faults.parse_fake_time("@-62135596800", now)) == (-62135596800, 0)   # 0001-01-01
    assert header_words(faults.parse_fake_time("@-1.5", now)) == (-2, 500000000)
    assert header_words(faults.parse_fake_time("@9223372036854775807", now))[0] == INT64[1]
    for spec in ("@9223372036854775808", "@99999999999999999999", "+300000000000y", "+" + "9" * 40 + "w",
                 "-" + "9" * 400 + "d"):
        with pytest.raises(MrhookerError, match="64-bit time_t|shift is written"):
            faults.parse_fake_time(spec, now)


def test_fake_time_anchors_and_rates():
    now = 1796377677123456789
    real, fake, rate = faults.parse_fake_time("+1d x10", now)
    assert real == 1796377677123000000 and fake == real + 86400 * 10 ** 9 and rate == 10 ** 7   # a whole ms
    assert faults.parse_fake_time("x0.5", now)[1:] == (real, 500000)
    assert faults.parse_fake_time("@946684800.25", now)[1] == 946684800250000000
    # libfaketime's years (FAKETIME=+2y): 365 days each
    assert faults.parse_fake_time("+2y", now)[1] == real + 2 * 365 * 86400 * 10 ** 9
    assert faults.parse_fake_time("-1y x2", now)[1:] == (real - 365 * 86400 * 10 ** 9, 2 * 10 ** 6)
    for spec in ("x0", "x0.0000001", "x1000001", "+1d x" + "9" * 400):
        with pytest.raises(MrhookerError, match="rate"):
            faults.parse_fake_time(spec, now)


def test_relative_waits_are_added_to_a_trace_only_with_a_rate():
    known = set(faults.FAKE_TIME) - {"ftime"}
    plain = faults.fake_time_functions(10 ** 6, known)
    rated = faults.fake_time_functions(2 * 10 ** 6, known)
    assert "ftime" not in plain and "time" in plain and "pthread_cond_timedwait" in plain and "sleep" not in plain
    assert set(rated) == known and set(rated) - set(plain) == {n for n, k in faults.FAKE_TIME.items()
                                                             if k == faults.DURATION}


def test_every_faked_function_has_its_function_in_the_runtime():
    source = open(os.path.join(ROOT, "src", "mrhooker", "runtime", "faketime.h")).read()
    declared = set(re.findall(r"\bmrh_faked_([a-z0-9_]+)\(", source))
    assert declared == set(faults.FAKE_TIME)


def test_readme_table_of_time_functions_is_the_runtime_s():
    """README's table says, for every function --fake-time fakes, what it does; the table and faults.FAKE_TIME
    (which decides what the runtime does) must agree."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    rows = re.findall(r"^\| ([^|\n]+) \| \*\*([a-z ]+)\*\*", readme, re.M)
    assert rows, "no table of time functions in README.md"
    documented = {}
    for names, kind in rows:
        for name in re.findall(r"`(\w+)`", names):
            documented[name] = kind
    faked = {name: kind for name, kind in documented.items() if kind != "not faked"}
    assert faked == faults.FAKE_TIME
    assert not set(faults.FAKE_TIME) & {n for n, k in documented.items() if k == "not faked"}


# ---- inject -----------------------------------------------------------------------------------------------

ERRNOS = {"EIO": 5, "ENOSPC": 28, "EBADF": 9, "ENOMEM": 12, "EINTR": 4}


def test_inject_numbers_past_64_bits_are_refused():
    for spec in ("write:error=EIO:when=18446744073709551616", "write:error=EIO:when=1..18446744073709551616",
                 "write:error=EIO:when=1+18446744073709551616", "write:retval=18446744073709551616",
                 "write:retval=-9223372036854775809", "write:delay_exit=18446744073709552s",
                 "write:error=4096", "write:error=EIO:when=" + "1" * 5000, "write:retval=" + "1" * 5000):
        with pytest.raises(MrhookerError) as e:
            faults.parse_inject(spec, ERRNOS)
        assert "\n" not in str(e.value)
    rule = faults.parse_inject("write:error=EIO:when=18446744073709551615", ERRNOS)
    assert rule.first == (1 << 64) - 1
    assert faults.parse_inject("write:retval=-1:delay_enter=1.5s", ERRNOS).delay_enter_ns == 1500000000


def test_inject_error_into_a_function_that_returns_its_error_number(unit_cache):
    """error= alone: posix_fadvise and pthread_create return the error number and leave errno alone (they fail
    so); write returns -1 with errno set; an explicit retval= is kept, with errno, for either."""
    prototypes = {p.symbol: p for p in tracing.select(["posix_fadvise", "pthread_create", "write"], unit_cache)}
    for symbol, (error, retval) in [("posix_fadvise", (0, 5)), ("pthread_create", (0, 5)), ("write", (5, -1))]:
        assert faults.parse_inject("%s:error=EIO" % symbol, ERRNOS).entry(prototypes[symbol])[1:3] == (error, retval)
    assert faults.parse_inject("pthread_create:error=EIO:retval=-1", ERRNOS).entry(
        prototypes["pthread_create"])[1:3] == (5, -1)


# ---- fuzz -------------------------------------------------------------------------------------------------

# mrh_inject_rule's fields (runtime/tracefile.h), as Rule.entry gives them: each must fit its C type.
_RULE_FIELDS = (("armed", 0, 1 << 32), ("error", -(1 << 31), 1 << 31), ("retval", -(1 << 63), 1 << 63),
                ("fail", 0, 2), ("probability", 0, 1 << 32), ("first", 0, 1 << 64), ("last", 0, 1 << 64),
                ("step", 0, 1 << 64), ("delay_enter_ns", 0, 1 << 64), ("delay_exit_ns", 0, 1 << 64))


def _check_inject(spec, symbols, prototypes):
    rule = faults.parse_inject(spec, symbols)
    chosen = faults.rules_for([rule], prototypes)
    for index, rules in chosen.items():
        for r in rules:
            for value, (name, low, high) in zip(r.entry(prototypes[index]), _RULE_FIELDS):
                assert low <= value < high, (spec, name, value)


def test_fuzz_of_specs_at_parse_level(unit_cache):
    rng = random.Random(20261204)
    symbols = tracing.symbols(unit_cache)
    prototypes = tracing.select(["%file", "%desc", "%time", "%process", "%memory", "strlen"], unit_cache)
    tried = {"works": 0, "refused": 0}
    for i in range(400):
        kind = i % 3
        spec = (inject_spec, fake_time_spec, e_spec)[kind](rng)
        try:
            if kind == 0:
                _check_inject(spec, symbols, prototypes)
            elif kind == 1:
                header_words(faults.parse_fake_time(spec))
            else:
                tracing.select([spec], unit_cache)
            tried["works"] += 1
        except MrhookerError as e:
            assert str(e) and "\n" not in str(e), (spec, str(e))
            tried["refused"] += 1
    assert tried["works"] > 40 and tried["refused"] > 40, tried

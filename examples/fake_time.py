"""Fake time: the program sees the clock shifted to $MRHOOKER_FAKE_DATE (YYYY-MM-DD, default 2000-01-01).

    MRHOOKER_FAKE_DATE=1999-12-31 mrhooker examples/fake_time.py date

Shifts time(), gettimeofday() and clock_gettime(CLOCK_REALTIME); the clock keeps ticking from there.
"""
import calendar
import os
import time as _time

from mrhooker import hook

_target = calendar.timegm(_time.strptime(os.environ.get("MRHOOKER_FAKE_DATE", "2000-01-01"), "%Y-%m-%d"))
OFFSET = None   # seconds to add, fixed at the first call
CLOCK_REALTIME = 0


def _offset(now):
    global OFFSET
    if OFFSET is None:
        OFFSET = _target - now
    return OFFSET


@hook("time")
def time(tloc):
    # Not time.original(): it reads a coarse clock, up to a tick behind the precise one that gettimeofday and
    # clock_gettime read, so it could show the second before theirs. Python's time.time() reads the precise one.
    now = int(_time.time())
    fake = now + _offset(now)
    if tloc:
        tloc.write_i64(fake)          # time_t
    return fake


@hook("gettimeofday")
def gettimeofday(tv, tz):
    rc = gettimeofday.original(tv, tz)
    if rc == 0 and tv:
        view = tv.cast()              # the prototype's struct timeval *
        view.tv_sec += _offset(view.tv_sec)
    return rc


@hook("clock_gettime")
def clock_gettime(clock, ts):
    rc = clock_gettime.original(clock, ts)
    if rc == 0 and clock == CLOCK_REALTIME and ts:
        view = ts.cast()              # struct timespec *: layout from the system headers
        view.tv_sec += _offset(view.tv_sec)
    return rc

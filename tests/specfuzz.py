"""Random --inject, --fake-time and -e specs, well and badly formed, for the fuzz tests (tests/unit/test_specs.py
at the parse level, tests/test_faults.py through the command line): each must work or be one mrhooker: line."""


def number(rng):
    return rng.choice(["0", "1", "3", "-1", "+5", "2..4", "10+", "3+2", "1.5", "1e9", "0x10", "99999999999999999999",
                       "18446744073709551615", "18446744073709551616", "9" * rng.randint(1, 60), "", " ", "nan",
                       "inf", "-0", "1..", "..3", "5..2", "1+0", "½", "３", "1_000"])


def inject_spec(rng):
    names = rng.choice(["write", "read,write", "wr*", "*", "open*,close", "", ",", "nosuch", "exit", "free",
                        "strlen", "malloc", "w[", "9abc", "write ", "é", "write:", "::"])
    parts = [names]
    for _ in range(rng.randint(0, 4)):
        key = rng.choice(["error", "retval", "when", "probability", "delay_enter", "delay_exit", "colour", "",
                          "ERROR", "when "])
        if key == "error":
            value = rng.choice(["EIO", "ENOSPC", "eio", "ENOSPACE", "5", "0", "4096", "99999999999", "", "E", "EIO2"])
        elif key in ("delay_enter", "delay_exit"):
            value = number(rng) + rng.choice(["", "ms", "s", "us", "ns", "h", " ms"])
        elif key == "probability":
            value = rng.choice(["0.5", "50%", "1", "0", "2", "-0.1", "1e-400", "nan", "inf", "%", "101%", "0.5.5"])
        else:
            value = number(rng)
        parts.append(key + rng.choice(["=", "=", "=", "", "=="]) + value)
    return ":".join(parts)


def fake_time_spec(rng):
    when = rng.choice(["2000-01-01", "2000-01-01 12:30", "2000-01-01 12:30:45", "2300-01-01", "9999-12-31",
                       "0001-01-01", "10000-01-01", "2000-13-01", "2000-02-30", "@" + number(rng),
                       "@-" + number(rng), rng.choice("+-") + number(rng) + rng.choice(["", "s", "m", "h", "d",
                                                                                          "w", "y", " d"]),
                       "", "now", "next tuesday", "@", "+", "x", "2000-01-01T00:00"])
    rate = rng.choice(["", "", " x10", " x0.5", " x" + number(rng), " x", " 10x", " x-1", " x1000000",
                       " x1000001"])
    return (when + rate).strip() or rng.choice(["x2", " "])


def e_spec(rng):
    return rng.choice(["open", "open,read", "open*", "*sleep*", "!open", "%file", "%nosuch", "%time,!time",
                       "int foo(int x)", "int foo(int", "foo)", "void f(void)", "struct s *g(char *p)",
                       "printf", "execl", "sigaction", "nosuchfunction", "", ",", "!*", "[", "op[en", "ö",
                       "time,ftime", "int time(int x, int y)", "long time(long *t)", "%file,%net", "-x",
                       "open,,read", "(", ")", "a(b(c))", "unsigned long long x(void)"])

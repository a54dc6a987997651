"""Prototypes beyond libc: OpenSSL's, zlib's and SQLite's functions by name (their installed headers), the
user's own headers (-H, the config file), and library types behind pointers as opaque pointers; on real
programs: curl over TLS, python3's zlib, the sqlite3 shell, a library the test compiles."""
import re
import subprocess
import sys

import pytest

from helpers import unhooked, scaled


TLS_PLAINTEXT = '''\
from mrhooker import hook

@hook("SSL_write")
def SSL_write(ssl, buf, num):
    print("SSL_write", buf.read(num)[:16], num)
    return SSL_write.original(ssl, buf, num)

@hook("int SSL_read(SSL *ssl, void *buf, int num)")   # SSL: a type this prototype needs no header for
def SSL_read(ssl, buf, num):
    n = SSL_read.original(ssl, buf, num)
    if n > 0:
        print("SSL_read", buf.read(n)[:15])
    return n
'''


def test_tls_plaintext_by_name_in_curl(mrhooker, script, https_server):
    hooks = script("tls_plain.py", TLS_PLAINTEXT)
    r = mrhooker(hooks, "curl", "-sk", https_server)
    bare = unhooked(["curl", "-sk", https_server])
    assert r.returncode == 0 and r.stdout == bare.stdout == b"<html>hello over TLS</html>\n", r
    assert "SSL_write b'GET / HTTP/1.1\\r\\n'" in r.err and "SSL_read b'HTTP/1.0 200 OK'" in r.err


def test_trace_shows_tls_plaintext(mrhooker, https_server):
    r = mrhooker("trace", "-e", "SSL_write,SSL_read", "curl", "-sk", "-o", "/dev/null", https_server)
    assert r.returncode == 0, r
    assert 'SSL_write(0x' in r.err and '"GET / HTTP/1.1\\r\\nHost: 127.0.0.1' in r.err
    assert re.search(r'SSL_read\(0x[0-9a-f]+, "HTTP/1.0 200 OK\\r\\n[^\n]*\) = \d+', r.err), r.err


def test_zlib_by_name_in_a_python_target(mrhooker, script):
    """zlibVersion lives in a library Python loads with dlopen (its zlib module) after the hooks start."""
    hooks = script("zver.py", '''\
        from mrhooker import hook

        @hook("zlibVersion")
        def zlibVersion():
            return b"9.9.9-hooked"
        ''')
    code = "import zlib; print(zlib.ZLIB_RUNTIME_VERSION, zlib.decompress(zlib.compress(b'ok')))"
    r = mrhooker(hooks, sys.executable, "-c", code)
    assert r.returncode == 0 and r.out == "9.9.9-hooked b'ok'\n", r


def test_sqlite_by_name_in_the_sqlite3_shell(mrhooker, script):
    hooks = script("sql.py", '''\
        from mrhooker import hook

        @hook("sqlite3_prepare_v2")
        def prepare(db, sql, n, stmt, tail):
            print("SQL:", sql)
            return prepare.original(db, sql, n, stmt, tail)
        ''')
    r = mrhooker(hooks, "sqlite3", ":memory:", "select 6*7;")
    assert r.returncode == 0 and r.out == "42\n", r
    assert "SQL: b'select 6*7;'" in r.err


API_H = """\
typedef struct api_ctx api_ctx;   /* opaque, as libraries' handles are */
int api_sum(api_ctx *ctx, int a, int b);
"""
API_C = """\
#include "api.h"
int api_sum(api_ctx *ctx, int a, int b) { (void)ctx; return a + b; }
"""
API_MAIN = """\
#include <stdio.h>
#include "api.h"
int main(void) { printf("%d\\n", api_sum(0, 2, 3)); return 0; }
"""


@pytest.fixture
def api_program(tmp_path):
    for name, text in (("api.h", API_H), ("api.c", API_C), ("main.c", API_MAIN)):
        (tmp_path / name).write_text(text)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(tmp_path / "libapi.so"), str(tmp_path / "api.c")],
                   check=True, timeout=scaled(60))
    subprocess.run(["cc", "-o", str(tmp_path / "main"), str(tmp_path / "main.c"), "-L", str(tmp_path), "-lapi",
                    "-Wl,-rpath," + str(tmp_path)], check=True, timeout=scaled(60))
    return tmp_path


SUM_HOOK = '''\
from mrhooker import hook

@hook("api_sum")
def api_sum(ctx, a, b):
    return api_sum.original(ctx, a, b) * 100
'''


def test_the_users_header_by_option_and_by_config(mrhooker, script, api_program, tmp_path):
    hooks = script("sum.py", SUM_HOOK)
    main = str(api_program / "main")
    r = mrhooker(hooks, main)
    assert r.returncode != 0 and "no prototype known for 'api_sum'" in r.err, r
    r = mrhooker("-H", str(api_program / "api.h"), hooks, main)
    assert r.returncode == 0 and r.out == "500\n", r
    r = mrhooker("-H", "./api.h", hooks, main, cwd=str(api_program))   # relative to where mrhooker runs
    assert r.returncode == 0 and r.out == "500\n", r
    config = tmp_path / "c.config"
    config.write_text("[sum]\nheaders = %s\n" % (api_program / "api.h"))
    r = mrhooker(hooks, main, env={"MRHOOKER_CONFIG": str(config)})
    assert r.returncode == 0 and r.out == "500\n", r
    r = mrhooker("trace", "-H", str(api_program / "api.h"), "-e", "api_*", main)
    assert r.returncode == 0 and r.out == "5\n" and "api_sum(NULL, 2, 3) = 5" in r.err, r
    r = mrhooker("-H", "./no_such.h", hooks, main)
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and "no_such.h" in r.err, r
    assert "Traceback" not in r.err

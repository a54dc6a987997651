"""The benchmark harness still runs: `benchmarks/run.py --quick` (tiny counts, one run) produces every figure.

Only the quick mode runs here; the real benchmarks (minutes) are run by hand: python benchmarks/run.py
"""
import json
import os
import subprocess
import sys

import pytest

from helpers import scaled

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(REPO, "benchmarks", "run.py")

MRHOOKER_HOOKS = ("c_wrapper", "mrhooker_pyx_nogil", "mrhooker_pyx_with_gil", "mrhooker_py",
                  "mrhooker_py_nonblocking")
PEER_HOOKS = {"frida": "frida", "ltrace": "ltrace"}
STARTUP_MS = ("true_bare", "true_mrhooker_module", "cold_build_pyx", "cold_build_pyx_script_only",
              "cold_build_py", "cold_build_py_script_only")
STARTUP_ADDED = ("preload_per_process_pyx", "preload_per_process_py", "first_hooked_call_pyx",
                 "first_hooked_call_py")
DD_MRHOOKER = ("mrhooker_pyx_with_gil", "mrhooker_py")
DD_PEERS = {"frida_script": "frida", "frida_trace": "frida-trace", "strace": "strace", "ltrace": "ltrace"}


def positive(value):
    return isinstance(value, (int, float)) and value > 0


def number(value):
    return isinstance(value, (int, float))


@pytest.fixture(scope="module")
def report(base_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run([sys.executable, RUN, "--quick", "--json", str(out)], env=base_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=scaled(170))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    markdown = proc.stdout.decode()
    with open(out) as f:
        data = json.load(f)
    data["_markdown"] = markdown
    data["_log"] = proc.stderr.decode(errors="replace")
    return data


def peer_available(report, tool):
    """Installed and usable here; otherwise the harness says why it skipped it."""
    return report["peers_skipped"][tool] is None


def check_skipped(report, figure, tool):
    assert figure.get("skipped") == report["peers_skipped"][tool], figure


def test_machine_info(report):
    m = report["machine"]
    assert m["cpu"] and positive(m["cores"]) and m["python"]
    assert m["date"] and m["cython"]
    assert report["settings"]["quick"] is True and report["settings"]["runs"] == 1


def test_per_call_figures(report):
    per_call = report["per_call"]
    assert positive(per_call["none"]["main"]["ns_per_call"]), per_call["none"]
    for name in MRHOOKER_HOOKS:
        for mode in ("main", "thread"):
            figure = per_call[name].get(mode)
            assert figure, (name, per_call[name])
            assert positive(figure["ns_per_call"]) and number(figure["added_ns"]), (name, mode, figure)
    # Python in the loop costs far more than the noise of a tiny run.
    assert per_call["mrhooker_pyx_with_gil"]["main"]["added_ns"] > 0
    assert per_call["mrhooker_py"]["main"]["added_ns"] > 0


def test_per_call_peers(report):
    per_call = report["per_call"]
    for name, tool in PEER_HOOKS.items():
        if not peer_available(report, tool):
            check_skipped(report, per_call[name], tool)
            continue
        for mode in ("main", "thread"):
            figure = per_call[name].get(mode)
            assert figure, (name, per_call[name])
            assert positive(figure["ns_per_call"]) and positive(figure["added_ns"]), (name, mode, figure)
    if peer_available(report, "frida"):
        assert per_call["frida"]["main"]["vs_frida"] == pytest.approx(1.0)
        assert positive(per_call["mrhooker_py"]["main"]["vs_frida"])


def test_startup_figures(report):
    startup = report["startup"]
    for key in STARTUP_MS:
        assert positive(startup[key].get("ms")), (key, startup[key])
    for key in STARTUP_ADDED:
        assert number(startup[key].get("added_ms")), (key, startup[key])
    assert startup["first_hooked_call_pyx"]["added_ms"] > 0   # starting Python is never free
    assert startup["true_mrhooker_module"]["added_ms"] > 0
    if peer_available(report, "frida"):
        assert positive(startup["frida_spawn_true"]["ms"])


def test_dd_figures(report):
    dd = report["dd"]
    assert positive(dd["bare"]["seconds"])
    for name in DD_MRHOOKER:
        assert positive(dd[name].get("seconds")) and positive(dd[name].get("slowdown")), (name, dd[name])
    for name, tool in DD_PEERS.items():
        if peer_available(report, tool):
            assert positive(dd[name].get("seconds")) and positive(dd[name].get("slowdown")), (name, dd[name])
        else:
            check_skipped(report, dd[name], tool)


def test_markdown_tables(report):
    text = report["_markdown"]
    for heading in ("### Per-call overhead", "### Start-up", "### A real workload"):
        assert heading in text
    assert "| hook | calls | main thread ns/call |" in text
    assert "Machine: " in text
    assert "failed:" not in text, text

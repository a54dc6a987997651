"""The benchmark harness still runs: `benchmarks/run.py --quick` (its own code, on tiny counts, one run)
produces every figure.

Only the quick mode runs here; the real benchmarks (an hour or more) are run by hand: python benchmarks/run.py
"""
import importlib.util
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
STARTUP_MS = ("true_bare", "python_start", "python_start_no_site", "python_imports", "trace_small_true",
              "trace_default_true", "hook_py_true", "true_mrhooker_module")
STARTUP_PEERS = {"strace_true": "strace", "ltrace_true": "ltrace", "frida_spawn_true": "frida"}
STARTUP_ADDED = ("preload_per_process_pyx", "preload_per_process_py", "first_hooked_call_pyx",
                 "first_hooked_call_py")
COLD = ("trace_default", "trace_all", "hook_py", "hook_py_script_only", "hook_pyx", "hook_pyx_script_only")
INSTRUCTION_ROWS = ("none", "mrhooker_trace", "mrhooker_trace_c", "c_wrapper", "mrhooker_pyx_nogil",
                    "mrhooker_pyx_with_gil", "mrhooker_py", "mrhooker_py_nonblocking")
MEMORY_CASES = ("unhooked", "traced", "hooks_py", "hooks_pyx")
DD_MRHOOKER = ("mrhooker_trace", "mrhooker_trace_c", "mrhooker_pyx_with_gil", "mrhooker_py")
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


def test_instruction_figures(report):
    instructions = report["instructions"]
    if "skipped" in instructions:   # no valgrind
        return
    for name in INSTRUCTION_ROWS:
        figure = instructions[name]
        assert positive(figure.get("instructions")) and number(figure.get("added")), (name, figure)
        assert figure["most"] >= figure["instructions"]
    # Counted in one process, the loops apart: the bare loop's figure is the loop's own, exactly.
    assert instructions["none"]["instructions"] == instructions["none"]["most"] < 40
    assert instructions["mrhooker_py"]["added"] > 500   # Python runs for each call


def test_startup_figures(report):
    startup = report["startup"]
    for key in STARTUP_MS:
        assert positive(startup[key].get("ms")), (key, startup[key])
        if key != "true_bare":
            assert positive(startup[key]["vs_python"]), (key, startup[key])
    assert startup["python_start"]["vs_python"] == pytest.approx(1.0)
    for key, tool in STARTUP_PEERS.items():
        if peer_available(report, tool):
            assert positive(startup[key].get("ms")), (key, startup[key])
        else:
            check_skipped(report, startup[key], tool)
    for key in STARTUP_ADDED:
        assert number(startup[key].get("added_ms")), (key, startup[key])
    assert startup["first_hooked_call_pyx"]["added_ms"] > 0   # starting Python is never free
    assert startup["true_mrhooker_module"]["added_ms"] > 0


def test_cold_figures(report):
    cold = report["cold"]
    for key in COLD:
        assert positive(cold[key].get("ms")), (key, cold[key])
    # A first run says what it does.
    assert any("building" in line for line in cold["trace_default"]["said"]), cold["trace_default"]
    assert any("building" in line for line in cold["hook_py"]["said"]), cold["hook_py"]


def test_trace_lines_figures(report):
    lines = report["lines"]
    assert len(lines["counts"]) == 3
    for n in lines["counts"]:
        figure = lines["by_calls"][str(n)]
        for key in ("bare_seconds", "traced_seconds", "bare_ns_per_call", "traced_ns_per_call", "vs_first"):
            assert positive(figure.get(key)), (n, key, figure)
        assert figure["lines_per_second"] is None or positive(figure["lines_per_second"])
    assert lines["by_calls"][str(lines["counts"][0])]["vs_first"] == pytest.approx(1.0)


def test_memory_figures(report):
    memory = report["memory"]
    for case in MEMORY_CASES:
        figure = memory[case]
        assert positive(figure.get("pss_kb")) and positive(figure.get("private_kb")), (case, figure)
        assert figure["libc_copies"] >= 1
        assert sum(figure["by_kind_kb"].values()) == pytest.approx(figure["pss_kb"], abs=64), (case, figure)
    assert memory["hooks_py"]["by_kind_kb"]["libpython"] > 0 and not memory["unhooked"]["by_kind_kb"]["libpython"]
    assert memory["hooks_py"]["pss_kb"] > memory["unhooked"]["pss_kb"]
    for case in ("unhooked", "hooks_py"):
        assert memory[case]["group"]["processes"] == report["settings"]["memory_group"]
        assert positive(memory[case]["group"]["pss_kb"])


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


def test_sweep_figures(report):
    sweep = report["sweep"]
    assert sweep["runs"] >= 3 and positive(sweep["wall"]["seconds"]) and positive(sweep["bare"]["seconds"]), sweep
    assert "crash" not in sweep["kinds"] and "hang" not in sweep["kinds"], sweep   # gzip survives each failure


def test_markdown_tables(report):
    text = report["_markdown"]
    for heading in ("### Per-call overhead", "### Instructions per call", "### Start-up", "### Cold builds",
                    "### Trace lines", "### A real workload", "### Memory"):
        assert heading in text
    assert "| hook | calls | main thread ns/call |" in text
    assert "Machine: " in text and "load average" in text
    assert "failed:" not in text, text


# ---- the harness's own helpers, without running it ----

@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frida_judged_by_its_output(harness):
    """Frida 17's CLI exits 0 or 1 at random once the spawned program ends: its output decides."""
    ok = "Spawned `/bin/true`. Resuming main thread!\nProcess terminated\n"
    assert harness.frida_failure(ok) is None
    assert harness.frida_failure("hooked_calls=3\n" + ok) is None
    assert "boom" in harness.frida_failure(ok + "Error: boom\n    at <eval> (/tmp/x.js:1:7)\n")
    assert "Failed to spawn" in harness.frida_failure("Failed to spawn: unable to find executable\n")
    assert "did not see the process end" in harness.frida_failure("Spawned `x`. Resuming main thread!\n")


def test_count_in_file_across_pieces(harness, tmp_path):
    needle = b', "x", 1) = 1\n'
    data = b"".join(b'write(%d, "x", 1) = 1\n' % i for i in range(1000)) + b"write(1, \"ns\", 2) = 2\n"
    path = tmp_path / "trace.txt"
    path.write_bytes(data)
    for piece_size in (1, 7, 13, 14, 15, 64, 1 << 20):   # needles cut at every place by the pieces' ends
        assert harness.count_in_file(str(path), needle, piece_size) == 1000, piece_size


def test_frida_tools_version_of_another_python(harness, tmp_path):
    """frida-tools' version is read by the Python that runs frida (its #! line), not this one."""
    script = tmp_path / "frida"
    script.write_text("#!%s\nprint('frida')\n" % sys.executable)
    assert harness.script_interpreter(str(script)) == sys.executable
    assert harness.package_version("pytest", sys.executable) == pytest.__version__
    assert harness.package_version("no-such-distribution-here", sys.executable) is None

"""--inject, --fake-time and -e specs through the command line: a seeded fuzz (tests/specfuzz.py), each spec either
working or one `mrhooker:` line with exit status 2 (never an internal error, never a traceback). The same specs
at the parse level are tests/unit/test_specs.py."""
import random
import subprocess
import sys

from helpers import RUN_TIMEOUT, without_progress
from specfuzz import e_spec, fake_time_spec, inject_spec


def test_fuzz_of_specs_through_the_command_line(base_env):
    rng = random.Random(7)
    specs = [("--inject", inject_spec(rng)) for _ in range(4)] + [("--fake-time=", fake_time_spec(rng))
                                                                   for _ in range(4)]
    specs += [("-e", e_spec(rng)) for _ in range(2)]
    specs += [("--inject", "write:error=EIO:when=99999999999999999999"), ("--fake-time=", "@99999999999999999999")]
    for option, spec in specs:
        args = [option + spec] if option.endswith("=") else [option, spec]
        r = subprocess.run([sys.executable, "-m", "mrhooker", "trace", "-q"] + args + ["true"], env=base_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
        err = without_progress(r.stderr.decode(errors="replace"))
        if r.returncode != 0:
            assert r.returncode == 2 and err.startswith("mrhooker: ") and "Traceback" not in err, (args, r)
            assert len(err.splitlines()) == 1 or "usage:" in err, (args, err)

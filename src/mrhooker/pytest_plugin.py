"""The pytest plugin (registered as `mrhooker` through the pytest11 entry point): the `mrhooker` fixture.

    def test_refused_connection(mrhooker):
        r = mrhooker.run(["./myprog"], inject=["connect:error=ECONNREFUSED"])
        assert r.returncode == 3

The fixture is mrhooker.testing (run, Call, Result, MrhookerRunError): each run is its own mrhooker process,
and the builds it needs are cached, so a session builds once, and `pytest -n` workers share the builds safely.
"""
import pytest


@pytest.fixture
def mrhooker():
    from mrhooker import testing
    return testing

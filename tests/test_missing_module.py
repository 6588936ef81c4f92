"""A module-level function travels by reference; where its module is
missing, loading fails with ModuleNotFoundError naming the module (as with
the reference cloudpickle), and registering the module for pickling by value
is the way to ship it."""

import importlib
import os
import subprocess
import sys
import textwrap

import cloudpickle
import pytest
from _child_process import child_env

_LOAD = """\
import pickle, sys
with open(sys.argv[1], "rb") as f:
    payload = f.read()
try:
    func = pickle.loads(payload)
except ModuleNotFoundError as exc:
    print("ModuleNotFoundError", exc.name, str(exc))
else:
    print("loaded", func(20))
"""


@pytest.fixture
def private_module(tmp_path, monkeypatch):
    """A module importable here only (its directory is on this process's
    sys.path, not on the child's)."""
    name = "cp_only_here_module"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """\
            OFFSET = 22

            def shipped(x):
                return x + OFFSET
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def load_in_child(payload, tmp_path):
    path = tmp_path / "payload.pkl"
    path.write_bytes(payload)
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=os.path.dirname(__file__),
        timeout=120,
        check=True,
    )
    return proc.stdout.split()


def test_missing_module_fails_at_load_naming_it(private_module, tmp_path):
    payload = cloudpickle.dumps(private_module.shipped)
    assert b"cp_only_here_module" in payload and b"OFFSET" not in payload  # by reference
    out = load_in_child(payload, tmp_path)
    assert out[:2] == ["ModuleNotFoundError", "cp_only_here_module"]


def test_registered_module_ships_by_value(private_module, tmp_path):
    cloudpickle.register_pickle_by_value(private_module)
    try:
        payload = cloudpickle.dumps(private_module.shipped)
    finally:
        cloudpickle.unregister_pickle_by_value(private_module)
    assert load_in_child(payload, tmp_path) == ["loaded", "42"]

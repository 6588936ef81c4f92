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


def run_loader(script, payload, tmp_path, extra_path=()):
    """Runs ``script`` (which loads the payload file named by its first
    argument) in a child whose path has only ``extra_path`` and the test
    helpers; returns what it printed."""
    path = tmp_path / "payload.pkl"
    path.write_bytes(payload)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        env=child_env(extra_path),
        cwd=os.path.dirname(__file__),
        timeout=120,
        check=True,
    )
    return proc.stdout


def load_in_child(payload, tmp_path):
    return run_loader(_LOAD, payload, tmp_path).split()


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


def write_package(root, version):
    """A package ``cp_local_pkg`` with a submodule, at ``root``."""
    pkg = root / "cp_local_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"VERSION = {version}\n")
    (pkg / "sub.py").write_text(
        textwrap.dedent(
            f"""\
            from . import VERSION

            def versioned(x):
                return ("v{version}", VERSION, x)
            """
        )
    )


@pytest.fixture
def local_package(tmp_path, monkeypatch):
    write_package(tmp_path / "new", 2)
    monkeypatch.syspath_prepend(str(tmp_path / "new"))
    package = importlib.import_module("cp_local_pkg")
    sub = importlib.import_module("cp_local_pkg.sub")
    yield package, sub
    for name in ("cp_local_pkg", "cp_local_pkg.sub"):
        sys.modules.pop(name, None)


_RUN_VERSIONED = (
    "import pickle, sys\n"
    "try:\n"
    "    print(pickle.loads(open(sys.argv[1], 'rb').read())(1))\n"
    "except ModuleNotFoundError as exc:\n"
    "    print('missing', exc.name)\n"
)


def run_versioned(payload, tmp_path, extra_path=()):
    return run_loader(_RUN_VERSIONED, payload, tmp_path, extra_path).strip()


def test_registered_package_submodules_ship_by_value(local_package, tmp_path):
    package, sub = local_package
    cloudpickle.register_pickle_by_value(package)
    try:
        assert package.__name__ in cloudpickle.list_registry_pickle_by_value()
        payload = cloudpickle.dumps(sub.versioned)
    finally:
        cloudpickle.unregister_pickle_by_value(package)
    # A worker without the package runs it...
    assert run_versioned(payload, tmp_path) == "('v2', 2, 1)"
    # ...and so does one with an old version of it: the new code runs.
    write_package(tmp_path / "old", 1)
    assert run_versioned(payload, tmp_path, [str(tmp_path / "old")]) == "('v2', 2, 1)"
    # Unregistered, the function goes by reference again.
    by_reference = cloudpickle.dumps(sub.versioned)
    assert run_versioned(by_reference, tmp_path) == "missing cp_local_pkg"
    assert run_versioned(by_reference, tmp_path, [str(tmp_path / "old")]) == "('v1', 1, 1)"

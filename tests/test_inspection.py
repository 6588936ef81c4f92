"""Payload inspection: inspect_payload (object side), python -m cloudpickle
inspect (payload side, never loading it), and the large-payload warning."""

import json
import os
import pickle
import subprocess
import sys
import types
import warnings

import cloudpickle
import pytest
from cloudpickle._inspection import PayloadError, inspect_pickle

BIG = b"g" * 300_000


def make_closure():
    data = b"x" * 1_000_000
    small = 3

    def process(x, scale=2.5, *, label="tag"):
        return len(data) + small + x + len(BIG)

    return process


def run_cli(*args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "cloudpickle", "inspect", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
    )


def test_largest_captured_value_comes_first():
    report = cloudpickle.inspect_payload(make_closure())
    assert report.total_bytes == len(cloudpickle.dumps(make_closure()))
    assert report.by_value == [("function", "make_closure.<locals>.process")]
    first, size = report.contributors[0]
    assert first == "closure variable 'data' of function 'make_closure.<locals>.process'"
    assert 1_000_000 <= size < 1_000_100
    descriptions = [d for d, _ in report.contributors]
    assert "global 'BIG' of function 'make_closure.<locals>.process'" in descriptions
    assert "default 'scale' of function 'make_closure.<locals>.process'" in descriptions
    assert "default 'label' of function 'make_closure.<locals>.process'" in descriptions
    sizes = [s for _, s in report.contributors]
    assert sizes == sorted(sizes, reverse=True)
    text = str(report)
    assert "976.6 KiB" in text and text.index("'data'") < text.index("'BIG'")


def test_classes_modules_and_nested_functions():
    class Holder:
        table = list(range(20_000))

        def method(self):
            return self.table

    module = types.ModuleType("dynamic_inspected")
    exec("NAMES = 'n' * 50_000\ndef f():\n    return NAMES\n", module.__dict__)

    def outer():
        return helper()

    def helper():
        return Holder

    report = cloudpickle.inspect_payload([outer, module])
    kinds = dict((name, kind) for kind, name in report.by_value)
    assert kinds[outer.__qualname__] == "function"
    assert kinds[helper.__qualname__] == "function"
    assert kinds[Holder.__qualname__] == "class"
    assert kinds["dynamic_inspected"] == "module"
    descriptions = [d for d, _ in report.contributors]
    assert any(d.startswith("class attribute 'table'") for d in descriptions)
    assert any(d.startswith("module attribute 'NAMES'") for d in descriptions)


def test_function_by_reference_carries_nothing_by_value():
    report = cloudpickle.inspect_payload([os.path.join, 1, "a"])
    assert report.by_value == [] and report.contributors == []
    assert "posixpath" in report.imports or "ntpath" in report.imports


def test_unpicklable_capture_is_reported_or_raised():
    from _helpers import unpicklable_lock

    lock = unpicklable_lock()

    def f():
        return lock

    with pytest.raises(TypeError):
        cloudpickle.inspect_payload(f)


def test_large_payload_warning():
    previous = cloudpickle.warn_on_large_payloads(100_000)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cloudpickle.dumps(make_closure())
            cloudpickle.dumps(b"small")
        assert len(caught) == 1
        warning = caught[0]
        assert issubclass(warning.category, cloudpickle.LargePayloadWarning)
        assert "closure variable 'data'" in str(warning.message)
        with warnings.catch_warnings():
            warnings.simplefilter("error", cloudpickle.LargePayloadWarning)
            with pytest.raises(cloudpickle.LargePayloadWarning):
                cloudpickle.dumps(make_closure())
    finally:
        cloudpickle.warn_on_large_payloads(previous)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloudpickle.dumps(make_closure())
    assert caught == []
    with pytest.raises(ValueError):
        cloudpickle.warn_on_large_payloads(-1)


def test_cli_lists_what_a_payload_carries(tmp_path):
    class Shape:
        sides = 4

    path = tmp_path / "payload.pkl"
    path.write_bytes(cloudpickle.dumps([make_closure(), Shape, os.path.join]))
    out = run_cli(str(path))
    assert out.returncode == 0, out.stderr
    assert "functions by value (1): make_closure.<locals>.process" in out.stdout
    assert "classes by value (1): Shape" in out.stdout
    assert "posixpath" in out.stdout or "ntpath" in out.stdout
    out = run_cli(str(path), "--json")
    report = json.loads(out.stdout)
    assert report["functions"] == ["make_closure.<locals>.process"]
    assert report["largest_constants"][0][1] >= 1_000_000
    # Allow-list: the path module is outside it.
    out = run_cli(str(path), "--allow", "numpy")
    assert out.returncode == 1
    assert "imports outside the allow-list" in out.stdout


def test_cli_on_plain_pickles_of_every_protocol(tmp_path):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"a": [1, 2.5, "x"], "b": os.path.join}, protocol))
        report = inspect_pickle(path.read_bytes())
        assert report.functions == [] and report.classes == []
        assert any(m in report.imports for m in ("posixpath", "ntpath"))
        out = run_cli(str(path), "--allow", "posixpath", "--allow", "ntpath")
        assert out.returncode == 0, out.stdout + out.stderr


def test_inspecting_never_runs_the_payload(tmp_path):
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    out = run_cli(str(path), "--allow", "numpy")
    assert out.returncode == 1
    assert "posix" in out.stdout or "nt" in out.stdout
    report = cloudpickle.inspect_payload(1)  # the API side never loads either
    assert report.by_value == []
    assert not marker.exists()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello world\n", "not a readable pickle"),
        (cloudpickle.dumps(list(range(100)))[:-20], "pickle"),
    ],
    ids=["empty", "garbage", "truncated"],
)
def test_bad_input_gives_a_clear_error(tmp_path, data, message):
    with pytest.raises(PayloadError, match=message):
        inspect_pickle(data)
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    out = run_cli(str(path))
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_missing_file_and_standard_input(tmp_path):
    out = run_cli(str(tmp_path / "nope.pkl"))
    assert out.returncode == 2 and "cannot read" in out.stderr
    payload = cloudpickle.dumps({"k": 1})
    proc = subprocess.run(
        [sys.executable, "-m", "cloudpickle", "inspect", "-", "--json"],
        input=payload,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["total_bytes"] == len(payload)

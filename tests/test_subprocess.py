"""Pickles cross process boundaries: dump here, load in a fresh interpreter, and back."""

import os
import pickle
import subprocess
import sys
import textwrap

import _importable
import cloudpickle
import pytest
from _helpers import PROTOCOLS

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _run_child(code, stdin=b""):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS_DIR, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"child failed with return code {proc.returncode}\n"
        f"stderr:\n{proc.stderr.decode(errors='replace')[-3000:]}"
    )
    return proc.stdout


def _skip_text_floats_on_pypy(protocol):
    if protocol == 0 and sys.implementation.name == "pypy":
        pytest.skip(
            "PyPy's unpickler cannot read protocol 0's text form of inf and nan "
            "(ValueError), which the sample data holds"
        )


_LOAD_IN_CHILD = """
    import pickle, sys
    import _importable
    data = sys.stdin.buffer.read()
    obj = pickle.loads(data)
    ok = _importable.sample_data_equal(obj, _importable.sample_data())
    # Plain pickle payload: loading builtin data must not need cloudpickle.
    uses_cloudpickle = "cloudpickle" in sys.modules
    sys.stdout.buffer.write(repr((ok, uses_cloudpickle)).encode() + b"\\n")
    # Send the object back re-pickled by the standard library.
    sys.stdout.buffer.write(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dump_here_load_in_child(protocol):
    """Data pickled by cloudpickle loads in a fresh ``pickle``-only interpreter."""
    _skip_text_floats_on_pypy(protocol)
    data = cloudpickle.dumps(_importable.sample_data(), protocol=protocol)
    out = _run_child(_LOAD_IN_CHILD, stdin=data)
    status, _, payload = out.partition(b"\n")
    assert status == b"(True, False)", status
    back = pickle.loads(payload)
    assert _importable.sample_data_equal(back, _importable.sample_data())


_DUMP_IN_CHILD = """
    import pickle, sys
    import cloudpickle
    import _importable
    if sys.implementation.name == "pypy":
        import _cpython_pickle  # the oracle writes what CPython's C pickler writes
        _cpython_pickle.install()
    obj = _importable.sample_data()
    data = cloudpickle.dumps(obj, protocol={protocol})
    # Set order depends on the per-process hash seed: compare bytes in the child.
    same = data == pickle.dumps(obj, protocol={protocol})
    sys.stdout.buffer.write(repr(same).encode() + b"\\n" + data)
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dump_in_child_load_here(protocol):
    """Data pickled by cloudpickle in a child process (byte-identical to pickle
    there) loads here with ``pickle``."""
    _skip_text_floats_on_pypy(protocol)
    out = _run_child(_DUMP_IN_CHILD.format(protocol=protocol))
    same, _, data = out.partition(b"\n")
    assert same == b"True", "cloudpickle bytes differ from pickle bytes in the child"
    loaded = pickle.loads(data)
    assert _importable.sample_data_equal(loaded, _importable.sample_data())


_DUMP_FILE_IN_CHILD = """
    import sys
    import cloudpickle
    import _importable
    with open(sys.argv[1], "wb") as f:
        cloudpickle.dump(_importable.sample_data(), f)
        pickler = cloudpickle.Pickler(f, protocol=2)
        point = _importable.Point(1, 2)
        pickler.dump(point)
        pickler.dump(point)
"""


def test_dump_to_file_in_child(tmp_path):
    """A child writes several pickles into one file (``dump`` then a Pickler with
    memo reuse); the parent reads them back in order with ``pickle.load``."""
    path = tmp_path / "child.pkl"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS_DIR, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_DUMP_FILE_IN_CHILD), str(path)],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    with open(path, "rb") as f:
        first = pickle.load(f)
        unpickler = pickle.Unpickler(f)
        second, third = unpickler.load(), unpickler.load()
        assert f.read() == b""
    assert _importable.sample_data_equal(first, _importable.sample_data())
    assert second == _importable.Point(1, 2)
    assert third is second


_OUT_OF_BAND_CHILD = """
    import pickle, sys
    payload = sys.stdin.buffer.read()
    n = int.from_bytes(payload[:4], "little")
    sizes = [int.from_bytes(payload[4 + 4 * i:8 + 4 * i], "little") for i in range(n)]
    pos = 4 + 4 * n
    data_len = int.from_bytes(payload[pos:pos + 8], "little")
    data = payload[pos + 8:pos + 8 + data_len]
    pos += 8 + data_len
    buffers = []
    for size in sizes:
        buffers.append(bytearray(payload[pos:pos + size]))
        pos += size
    obj = pickle.loads(data, buffers=buffers)
    sys.stdout.buffer.write(pickle.dumps([bytes(memoryview(b)) for b in obj], protocol=5))
"""


def test_out_of_band_buffers_across_processes():
    """Out-of-band buffers shipped separately are reassembled in another process."""
    chunks = [b"first buffer", bytearray(b"second, writable"), b"x" * 100_000]
    buffers = []
    data = cloudpickle.dumps(
        [pickle.PickleBuffer(c) for c in chunks], protocol=5, buffer_callback=buffers.append
    )
    raw = [bytes(b.raw()) for b in buffers]
    payload = (
        len(raw).to_bytes(4, "little")
        + b"".join(len(r).to_bytes(4, "little") for r in raw)
        + len(data).to_bytes(8, "little")
        + data
        + b"".join(raw)
    )
    out = _run_child(_OUT_OF_BAND_CHILD, stdin=payload)
    assert pickle.loads(out) == [bytes(c) for c in chunks]

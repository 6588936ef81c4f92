"""Gigabyte payloads (run with CLOUDPICKLE_TEST_LARGE=1): a bytes object and
a NumPy array over 2 GiB pickle and load correctly in-band and out-of-band,
and peak memory is measured in a child process."""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.large

SIZE = 2**31 + 1  # just over 2 GiB: needs the 8-byte length opcodes

CHILD = textwrap.dedent(
    """
    import json, pickle, resource, sys
    import cloudpickle
    kind, protocol, band = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    size = int(sys.argv[4])
    if kind == "bytes":
        data = b"\\x07" * size
        same = lambda loaded: len(loaded) == size and loaded[:3] == b"\\x07" * 3 \
            and loaded[-3:] == b"\\x07" * 3
        obj = data if band == "in" else pickle.PickleBuffer(data)
    else:
        import numpy as np
        data = np.ones(size // 8 + 1, dtype=np.float64)
        same = lambda loaded: loaded.shape == data.shape and float(loaded[-1]) == 1.0
        obj = data
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    buffers = []
    if band == "in":
        payload = cloudpickle.dumps(obj, protocol=protocol)
    else:
        payload = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    payload_size = len(payload)
    loaded = pickle.loads(payload, buffers=buffers)
    ok = bool(same(loaded if kind == "numpy" or band == "in" else bytes(loaded)))
    print(json.dumps({"ok": ok, "payload": payload_size, "input": size,
                      "extra": peak - base, "buffers": len(buffers)}))
    """
)


def run_child(kind, protocol, band):
    if kind == "numpy":
        pytest.importorskip("numpy")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(protocol), band, str(SIZE)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("protocol", [4, 5])
def test_bytes_over_2_gib_in_band_costs_one_copy(protocol):
    result = run_child("bytes", protocol, "in")
    assert result["ok"]
    assert result["payload"] > SIZE
    # One extra copy of the payload (the result itself), plus slack.
    assert result["extra"] <= result["payload"] * 1.1, result


def test_bytes_over_2_gib_out_of_band():
    result = run_child("bytes", 5, "out")
    assert result["ok"] and result["buffers"] == 1
    assert result["payload"] < 1000
    assert result["extra"] < 100 * 2**20, result


@pytest.mark.parametrize("band", ["in", "out"])
def test_numpy_array_over_2_gib(band):
    result = run_child("numpy", 5, band)
    assert result["ok"]
    if band == "out":
        assert result["buffers"] == 1 and result["payload"] < 1000
        assert result["extra"] < 100 * 2**20, result
    else:
        # NumPy hands over a writable buffer: it is copied once, straight
        # into the result (which grows by remapping, not copying).
        assert result["extra"] <= result["payload"] * 1.1, result

"""Running Python code in a fresh interpreter for the by-value tests.

A function pickled by value must work in a process that never saw its
definition, so these tests load payloads in a child interpreter. The child
reads the payload from a file, unpickles it with the standard ``pickle`` and
hands the object to a ``probe(obj)`` function given as source code; the
probe's result (plain data) is pickled back through another file.
"""

import os
import pickle
import subprocess
import sys
import tempfile
import textwrap

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# Data exchanged with the child uses a protocol every supported Python reads.
RESULT_PROTOCOL = 4

_LOADER = """\
import pickle, sys
payload_path, result_path = sys.argv[1], sys.argv[2]
with open(payload_path, "rb") as f:
    payload = f.read()
{prelude}
obj = pickle.loads(payload)
{probe}
result = probe(obj)
with open(result_path, "wb") as f:
    pickle.dump(result, f, protocol={protocol})
"""


def child_env(extra_path=()):
    """The environment for a child: ours, with ``tests/`` (and ``extra_path``)
    in front of ``PYTHONPATH`` so the helper modules can be imported."""
    env = dict(os.environ)
    parts = [*extra_path, TESTS_DIR, env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


def run_python(args, *, python=None, isolated=False, env=None, cwd=None, timeout=300):
    """Run ``python args...`` and return its stdout (bytes); fail the test
    with the child's output when it exits with an error.

    ``isolated`` runs the interpreter with ``-I``: no ``PYTHONPATH``, no user
    site-packages and no current directory on ``sys.path``, so only what is
    installed in that interpreter's environment can be imported.
    """
    python = python or sys.executable
    command = [python, *(["-I"] if isolated else []), *args]
    proc = subprocess.run(
        command,
        check=False,
        capture_output=True,
        env=child_env() if env is None else env,
        cwd=cwd,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"child {command[:3]} exited with {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout.decode(errors='replace')}\n"
            f"--- stderr ---\n{proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout


def load_in_child(payload, probe_source, *, prelude="", python=None, isolated=False):
    """Unpickle ``payload`` in a new interpreter, apply ``probe`` to the result
    there and return what it returned.

    ``probe_source`` must define ``def probe(obj): ...``; ``prelude`` runs
    before unpickling (to record the state of the fresh process, say).
    """
    with tempfile.TemporaryDirectory() as tmp:
        payload_path = os.path.join(tmp, "payload.pkl")
        result_path = os.path.join(tmp, "result.pkl")
        with open(payload_path, "wb") as f:
            f.write(payload)
        script = _LOADER.format(
            prelude=textwrap.dedent(prelude),
            probe=textwrap.dedent(probe_source),
            protocol=RESULT_PROTOCOL,
        )
        # Run from the scratch directory: nothing importable by accident.
        run_python(
            ["-c", script, payload_path, result_path], python=python, isolated=isolated, cwd=tmp
        )
        with open(result_path, "rb") as f:
            return pickle.load(f)

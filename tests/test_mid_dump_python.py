"""Python code that runs in the middle of a dump must not change the payload.

Hooks (``__reduce__``, ``__reduce_ex__``, ``__getstate__``,
``reducer_override``, ``persistent_id``, dispatch-table reducers,
``buffer_callback``, ``file.write``), lookups that run Python code (a
metaclass ``__hash__``/``__eq__``/``__getattribute__``, properties on the
metaclass, dict keys with their own ``__eq__`` in instance, class and module
dicts, ``str`` subclasses as ``__module__``/``__qualname__``) and the garbage
collector (finalizers, weakref callbacks, ``gc.callbacks``, a nested ``dumps``
in a GC callback, with ``gc.set_threshold(1)``) free objects already written
and allocate new ones that may take their addresses. Each case must load as
the same data as ``pickle.dumps`` of a fresh identical input (or raise the
same exception type) and never crash. See ``_mid_dump_cases.py`` for the
inputs and the comparison.

All cases run in child processes; when one crashes, the crash fails that
case (naming the layout it was running) and the remaining cases run in a
new child.
"""

import concurrent.futures
import json
import pickle
import subprocess
import sys

import _mid_dump_cases as cases
import pytest
from _child_process import child_env, run_python

CHILD = (
    "import json, sys\n"
    "import _mid_dump_cases\n"
    "_mid_dump_cases.child_main(json.loads(sys.stdin.read()))\n"
)
CHILD_TIMEOUT = 240


def _run_child(case_ids):
    """Run ``case_ids`` in one child: (results by id, the case it died in
    or None, the layout it was running, exit status, end of stderr)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=json.dumps(case_ids).encode(),
            capture_output=True,
            env=child_env(),
            timeout=CHILD_TIMEOUT,
        )
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, err, rc = exc.stdout or b"", exc.stderr or b"", "timeout"
    results = {}
    current = sub = None
    wrong = []  # of the current case, reported before the end of the case
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("BEGIN "):
            current, sub, wrong = line[6:], None, []
        elif line.startswith("SUB "):
            sub = line[4:]
        elif line.startswith("WRONG "):
            wrong.append(line[6:])
        elif line.startswith("RESULT "):
            result = json.loads(line[7:])
            results[result.pop("id")] = result
            current = None
    if current is None and len(results) < len(case_ids):
        current = next(c for c in case_ids if c not in results)  # died between cases
    if current is not None and wrong:
        sub = f"{sub}, after wrong data in: " + "; ".join(w[:300] for w in wrong)
    return results, current, sub, rc, err.decode(errors="replace")[-2000:]


def _run_children(case_ids):
    """Outcomes by case id: {"wrong": [...], "paths": [...]} or {"crash": text}.

    When the child dies in a case, that case runs again alone: if it dies
    again the crash is its own; if not, the case before it (in the same
    child) left the process corrupted and fails with that."""
    results = {}
    pending = list(case_ids)
    while pending:
        got, current, sub, rc, tail = _run_child(pending)
        results.update(got)
        if current is None:
            break
        where = f"while running {current!r} ({sub or 'set-up'})"
        index = pending.index(current)
        alone, died_again, sub_alone, rc_alone, tail_alone = _run_child([current])
        if died_again is None:
            results[current] = alone[current]
            if index > 0:
                results[pending[index - 1]]["wrong"].append(
                    f"the child exited with {rc} {where}, the case after this one, "
                    f"which does not crash when run alone\n{tail}"
                )
            else:  # pragma: no cover - a crash that does not reproduce
                results[current]["wrong"].append(f"the child exited with {rc} {where}\n{tail}")
        else:
            results[current] = {
                "crash": f"child exited with {rc_alone} while running "
                f"{sub_alone or 'the set-up'!r} (alone; {rc} {where} in the full run)\n"
                f"{tail_alone}"
            }
        pending = pending[index + 1 :]
    return results


@pytest.fixture(scope="module")
def outcomes():
    # Two children at a time, each with every other case.
    ids = cases.all_case_ids()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = {}
        for part in pool.map(_run_children, [ids[0::2], ids[1::2]]):
            results.update(part)
    return results


def _ids(names):
    return [
        pytest.param(f"{name}|{protocol}", id=f"{name}-p{protocol}")
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1)
        for name in names
    ]


# The three reproducers of the report, as written there (each prints the
# last list of the graph it pickles); PROTOCOL and DUMPS are filled in.
ISSUE_SCRIPTS = {
    "metaclass __hash__": """
import pickle, cloudpickle
A = [[0, i] for i in range(20)]; B = []
class M(type):
    fired = False
    def __hash__(cls):
        if not M.fired:
            M.fired = True; A.clear(); B.extend([[1, i] for i in range(20)])
        return type.__hash__(cls)
class X(metaclass=M): pass
class Flush:
    def __reduce__(self): return (list, ((7,),))
print(pickle.loads(DUMPS([A, X(), Flush(), B], protocol=PROTOCOL))[-1])
""",
    "instance dict key __eq__": """
import pickle, cloudpickle
A = [[0, i] for i in range(20)]; B = []
class K:
    fired = False
    def __hash__(self): return hash("__reduce_ex__")
    def __eq__(self, other):
        if not K.fired:
            K.fired = True; A.clear(); B.extend([[1, i] for i in range(20)])
        return False
class P: pass
p = P(); p.__dict__[K()] = 0
class Flush:
    def __reduce__(self): return (list, ((7,),))
print(pickle.loads(DUMPS([A, p, Flush(), B], protocol=PROTOCOL))[-1])
""",
    "gc finalizer": """
import gc, pickle, cloudpickle
A = [[0, i] for i in range(20)]; B = []
armed = False
class Finalizer:
    def __del__(self):
        if armed:
            A.clear(); B.extend([[1, i] for i in range(20)])
class P:
    def __init__(self, v): self.v = v
root = [A] + [P(i) for i in range(6)] + [B]
gc.collect(); gc.disable()
f = Finalizer(); f.me = f; del f
armed = True; gc.set_threshold(1); gc.enable()
print(pickle.loads(DUMPS(root, protocol=PROTOCOL))[-1])
""",
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", list(ISSUE_SCRIPTS))
def test_issue_reproducers(name, protocol):
    """Each prints what pickle.dumps gives (and does not crash)."""
    if "gc.set_threshold" in ISSUE_SCRIPTS[name] and not cases.CPYTHON_GC:
        pytest.skip("needs gc.set_threshold (CPython's collector) to collect at a chosen point")

    def run(dumps):
        script = ISSUE_SCRIPTS[name].replace("PROTOCOL", str(protocol))
        return run_python(["-c", script.replace("DUMPS", dumps)])

    expected = run("pickle.dumps")
    assert expected.strip() == str([[1, i] for i in range(20)]).encode()
    assert run("cloudpickle.dumps") == expected


def _skip_gc_trigger_without_cpython_gc(case_id):
    name = case_id.split("|")[0]
    if name == "class dict keys" and sys.implementation.name == "pypy":
        pytest.skip("PyPy's type() accepts only exact str keys in a class namespace")
    if name in cases.GC_TRIGGERS and not cases.CPYTHON_GC:
        pytest.skip(
            "needs gc.callbacks and gc.set_threshold (CPython's collector) to run "
            "Python code from a collection at a chosen point"
        )


@pytest.mark.skipif(
    sys.version_info < (3, 10),
    reason="CPython 3.9's C pickler reads freed memory in these cases: no oracle (see _oracle)",
)
@pytest.mark.parametrize("case_id", _ids(cases.TRIGGERS))
def test_same_data_as_pickle(case_id, outcomes):
    """Every layout and kind of freed objects, for one way Python code runs
    mid-dump, at one protocol."""
    _skip_gc_trigger_without_cpython_gc(case_id)
    result = outcomes[case_id]
    assert "crash" not in result, result["crash"]
    assert not result["wrong"], "\n".join(result["wrong"])


@pytest.mark.parametrize("case_id", _ids(cases.TRIGGERS))
def test_dumps_and_pickler_class_write_the_same_bytes(case_id, outcomes):
    """``cloudpickle.dumps`` (one-shot, with its memo shortcuts) and
    ``cloudpickle.Pickler(file).dump`` (without them) write the same bytes
    for the same hostile input, where the hooks run at fixed points."""
    _skip_gc_trigger_without_cpython_gc(case_id)
    result = outcomes[case_id]
    if "crash" in result:
        pytest.fail(result["crash"])
    assert not result["paths"], "\n".join(result["paths"])


def test_runner_reports_a_crash_as_the_case_that_crashed(monkeypatch):
    """The harness itself: a child that dies in a case fails that case, and
    the cases after it still run."""
    ids = ["__reduce__|2", "__reduce_ex__|2"]
    crash_child = (
        "import os, sys\n"
        "print('BEGIN __reduce__|2'); print('SUB once/list'); sys.stdout.flush()\n"
        "os.abort()\n"
    )
    real_run = subprocess.run
    calls = []

    def fake_run(args, **kwargs):
        ran = json.loads(kwargs["input"])
        calls.append(ran)
        code = crash_child if ran[0] == ids[0] else CHILD
        return real_run([args[0], "-c", code], **kwargs)

    monkeypatch.setattr(subprocess, "run", fake_run)
    results = _run_children(ids)
    assert "once/list" in results["__reduce__|2"]["crash"]
    assert calls == [ids, ids[:1], ids[1:]]
    assert results["__reduce_ex__|2"] == {"wrong": [], "paths": []}

"""Payloads exchanged with the reference implementation (pure-Python
cloudpickle 3.1.3), in both directions.

The reference runs in its own virtual environment, created on first use in
the temporary directory and reused afterwards (``_reference_venv.py``); set
``CLOUDPICKLE_REFERENCE_PYTHON`` to the interpreter of an existing
environment to use that instead. The tests are
skipped only when the package index cannot be reached to install it.

The functions exchanged come from ``_interop_samples.py``: each side executes
that file as a module unknown to ``sys.modules``, so its functions travel by
value, and uses its probes to exercise the loaded objects.
"""

import os
import pickle
import tempfile
import textwrap

import _interop_samples
import _reference_venv
import cloudpickle
import pytest
from _child_process import RESULT_PROTOCOL, TESTS_DIR, load_in_child, run_python

REFERENCE_VERSION = "3.1.3"
SAMPLES_PATH = os.path.join(TESTS_DIR, "_interop_samples.py")


# A private copy of the samples, unknown to sys.modules: pickled by value.
SAMPLES_MODULE = _interop_samples.load_samples_module(SAMPLES_PATH)
LABELS = sorted(SAMPLES_MODULE.SAMPLES)

# Executed by the reference's interpreter before it unpickles anything:
# makes sure it is the reference that loads the payload, not this package.
CHECK_REFERENCE = f"""
import cloudpickle
assert cloudpickle.__version__ == {REFERENCE_VERSION!r}, cloudpickle.__version__
assert not hasattr(cloudpickle.cloudpickle, "_engine"), cloudpickle.__file__
"""

# The head of every script the reference runs: load the samples module.
_LOAD_SAMPLES = f"""
import importlib.util, pickle, sys
result_protocol = {RESULT_PROTOCOL}
samples_path = sys.argv[1]
# Not registered in sys.modules: its functions are pickled by value.
spec = importlib.util.spec_from_file_location("_interop_samples_dynamic", samples_path)
samples = importlib.util.module_from_spec(spec)
spec.loader.exec_module(samples)
{CHECK_REFERENCE}
"""


# -----------------------------------------------------------------------------
# The reference's environment.
# -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def reference_python():
    """The interpreter of an environment where cloudpickle is the reference."""
    return _reference_venv.reference_python(REFERENCE_VERSION, "CLOUDPICKLE_REFERENCE_PYTHON")


def run_reference(python, script, *args):
    """Run ``script`` with the reference's interpreter in isolated mode (no
    ``PYTHONPATH``, no current directory: this package cannot leak in)."""
    return run_python(
        ["-c", textwrap.dedent(script), *args],
        python=python,
        isolated=True,
        cwd=tempfile.gettempdir(),
    )


# -----------------------------------------------------------------------------
# Samples: this package -> reference.
# -----------------------------------------------------------------------------

_REFERENCE_LOADS = (
    _LOAD_SAMPLES
    + """
payloads_path, results_path = sys.argv[2], sys.argv[3]
with open(payloads_path, "rb") as f:
    payloads = pickle.load(f)
results = {}
for label, payload in payloads.items():
    probe = samples.SAMPLES[label][1]
    try:
        obj = pickle.loads(payload)
    except Exception as exc:
        results[label] = ("load failed", type(exc).__name__, str(exc))
        continue
    results[label] = samples.run_probe(probe, obj)
with open(results_path, "wb") as f:
    pickle.dump(results, f, protocol=result_protocol)
"""
)


@pytest.fixture(scope="module")
def ours_loaded_by_reference(reference_python, tmp_path_factory):
    """label -> (result here, result in the reference after loading our
    payload)."""
    payloads = {}
    expected = {}
    for label in LABELS:
        build, probe = SAMPLES_MODULE.SAMPLES[label]
        obj = build()
        try:
            payloads[label] = cloudpickle.dumps(obj)
        except Exception as exc:  # noqa: BLE001 - reported by the test of that label
            expected[label] = ("dumps failed", type(exc).__name__, str(exc))
            continue
        expected[label] = SAMPLES_MODULE.run_probe(probe, obj)

    tmp = tmp_path_factory.mktemp("ours_to_reference")
    payloads_path = tmp / "payloads.pkl"
    results_path = tmp / "results.pkl"
    with open(payloads_path, "wb") as f:
        pickle.dump(payloads, f, protocol=RESULT_PROTOCOL)
    run_reference(
        reference_python, _REFERENCE_LOADS, SAMPLES_PATH, str(payloads_path), str(results_path)
    )
    with open(results_path, "rb") as f:
        results = pickle.load(f)
    return {label: (expected[label], results.get(label)) for label in LABELS}


@pytest.mark.parametrize("label", LABELS)
def test_our_payload_runs_in_the_reference(label, ours_loaded_by_reference):
    here, there = ours_loaded_by_reference[label]
    assert here[0] == "ok", f"the sample itself failed here: {here}"
    assert there == here


# -----------------------------------------------------------------------------
# Samples: reference -> this package.
# -----------------------------------------------------------------------------

_REFERENCE_DUMPS = (
    _LOAD_SAMPLES
    + """
out_path = sys.argv[2]
made = {}
for label, (build, probe) in samples.SAMPLES.items():
    obj = build()
    payload = cloudpickle.dumps(obj)
    made[label] = (payload, samples.run_probe(probe, obj))
with open(out_path, "wb") as f:
    pickle.dump(made, f, protocol=result_protocol)
"""
)


@pytest.fixture(scope="module")
def reference_payloads(reference_python, tmp_path_factory):
    """label -> (payload made by the reference, result in the reference)."""
    out_path = tmp_path_factory.mktemp("reference_to_ours") / "made.pkl"
    run_reference(reference_python, _REFERENCE_DUMPS, SAMPLES_PATH, str(out_path))
    with open(out_path, "rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("label", LABELS)
def test_reference_payload_runs_here(label, reference_payloads):
    payload, there = reference_payloads[label]
    assert there[0] == "ok", f"the sample failed in the reference: {there}"
    probe = SAMPLES_MODULE.SAMPLES[label][1]
    obj = pickle.loads(payload)
    assert SAMPLES_MODULE.run_probe(probe, obj) == there


@pytest.mark.parametrize("label", LABELS)
def test_reference_payload_runs_in_a_fresh_process(label, reference_payloads):
    payload, there = reference_payloads[label]
    probe = f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("_interop_samples_dynamic", {SAMPLES_PATH!r})
        samples = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(samples)

        def probe(obj):
            return samples.run_probe(samples.SAMPLES[{label!r}][1], obj)
    """
    assert load_in_child(payload, probe) == there


# -----------------------------------------------------------------------------
# Functions defined in a script (__main__), both ways, and the same bytes.
# -----------------------------------------------------------------------------

MAIN_SCRIPT = textwrap.dedent(
    """
    import functools
    import os
    import sys
    import xml.etree.ElementTree

    import cloudpickle

    BASE = 7
    counter = 0


    def helper(x):
        return x + BASE


    def compute(x, *, scale=2):
        \"\"\"Scaled.\"\"\"
        return helper(x) * scale


    compute.note = "attr"
    square = lambda v: v * v  # noqa: E731


    def make_power(k):
        def power(x):
            return x**k + len(os.path.basename("/q/abc"))

        return power


    def fact(n):
        return 1 if n < 2 else n * fact(n - 1)


    def tags(text):
        return [child.tag for child in xml.etree.ElementTree.fromstring(text)]


    def bump():
        global counter
        counter += 1
        return counter


    def read():
        return counter


    def many_cells(a, b, c, d, e):
        def inner() -> int:
            return a + b + c + d + e

        return inner


    def g(x: int = 1, *, y: "str" = "q"):
        return x


    def not_yet():
        def uses_later():
            return later

        later = 1
        return uses_later


    WIDE = {f"v{i}": i for i in range(1005)}
    globals().update(WIDE)
    exec("def wide():\\n    return " + " + ".join(WIDE), globals())


    def gen(n):
        yield from range(n)


    extra = [many_cells(1, 2, 3, 4, 5), g, not_yet(), wide, gen, lambda: g]
    objs = [compute, square, make_power(3), fact, tags, bump, read,
            functools.partial(compute, scale=5), extra]
    with open(sys.argv[1], "wb") as f:
        f.write(cloudpickle.dumps(objs))
    """
)

MAIN_PROBE = """
def probe(objs):
    compute, square, cube, fact, tags, bump, read, part, extra = objs
    assert [f() for f in extra[:4:2]] == [15, 1] and extra[3]() == sum(range(1005))
    return (
        compute(1), compute.__doc__, compute.note, compute.__module__,
        square(7), cube(2), fact(6), tags("<a><b/><c/></a>"),
        bump(), bump(), read(), part(1),
        bump.__globals__ is read.__globals__ is compute.__globals__,
    )
"""

MAIN_EXPECTED = (16, "Scaled.", "attr", "__main__", 49, 11, 720, ["b", "c"], 1, 2, 2, 40, True)


@pytest.fixture(scope="module")
def main_payloads(reference_python, tmp_path_factory):
    """``(ours, reference's)`` payloads of the same script, run by each."""
    tmp = tmp_path_factory.mktemp("main_script")
    script = tmp / "main_script.py"
    script.write_text(MAIN_SCRIPT)
    ours_path, ref_path = tmp / "ours.pkl", tmp / "reference.pkl"
    run_python([str(script), str(ours_path)], cwd=str(tmp))
    run_python([str(script), str(ref_path)], python=reference_python, isolated=True, cwd=str(tmp))
    return ours_path.read_bytes(), ref_path.read_bytes()


def test_main_functions_from_the_reference_run_here(main_payloads):
    _, reference_payload = main_payloads
    assert load_in_child(reference_payload, MAIN_PROBE) == MAIN_EXPECTED


def test_our_main_functions_run_in_the_reference(main_payloads, reference_python):
    ours, _ = main_payloads
    result = load_in_child(
        ours, MAIN_PROBE, prelude=CHECK_REFERENCE, python=reference_python, isolated=True
    )
    assert result == MAIN_EXPECTED


def test_main_functions_pickle_to_the_same_bytes(main_payloads):
    ours, reference = main_payloads
    if ours != reference:
        from _helpers import describe_difference

        pytest.fail("payloads differ:\n" + describe_difference(ours, reference))


# -----------------------------------------------------------------------------
# The same bytes as the reference, for code defined in files at different
# places (cloudpickle 3.1.3 writes "<dynamic-code>" as the file name of every
# code object it pickles by value).
# -----------------------------------------------------------------------------

# Run by both interpreters: executes the samples' source, compiled under the
# file name given, in a module without ``__file__`` (as a notebook cell or an
# ``exec``-ed string would be: nothing in the namespace names the file), and
# pickles every sample at every protocol from 2 up.
_IDENTITY_DUMPS = """
import pickle, sys, types
import cloudpickle
source_path, filename, out_path, expect_engine = sys.argv[1:5]
assert hasattr(cloudpickle.cloudpickle, "_engine") == (expect_engine == "ours"), expect_engine
with open(source_path) as f:
    source = f.read()
samples = types.ModuleType("_interop_samples_dynamic")
exec(compile(source, filename, "exec"), samples.__dict__)
payloads = {}
for label, (build, probe) in samples.SAMPLES.items():
    obj = build()
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        payloads[label, protocol] = cloudpickle.dumps(obj, protocol=protocol)
with open(out_path, "wb") as f:
    pickle.dump(payloads, f, protocol=4)
"""


@pytest.fixture(scope="module")
def identity_payloads(reference_python, tmp_path_factory):
    """``(ours, reference's)``: {(label, protocol): payload} made by each side
    from the samples compiled under a different file name on each side."""
    tmp = tmp_path_factory.mktemp("identity")
    made = []
    for side, python in (("ours", None), ("reference", reference_python)):
        filename = str(tmp / side / "cell.py")
        out_path = tmp / f"{side}.pkl"
        run_python(
            ["-c", _IDENTITY_DUMPS, SAMPLES_PATH, filename, str(out_path), side],
            python=python,
            isolated=python is not None,
            cwd=str(tmp),
        )
        with open(out_path, "rb") as f:
            made.append(pickle.load(f))
    return tuple(made)


@pytest.mark.parametrize("label", LABELS)
def test_payloads_are_byte_identical_to_the_reference(label, identity_payloads):
    ours, reference = identity_payloads
    keys = sorted(key for key in reference if key[0] == label)
    assert keys and sorted(key for key in ours if key[0] == label) == keys
    for key in keys:
        if ours[key] != reference[key]:
            from _helpers import describe_difference

            pytest.fail(f"protocol {key[1]}:\n" + describe_difference(ours[key], reference[key]))


def test_payloads_name_no_file(identity_payloads):
    # The file names each side compiled the samples under appear in neither
    # side's payloads: every code object carries "<dynamic-code>" instead.
    for payloads in identity_payloads:
        for key, payload in payloads.items():
            assert b"cell.py" not in payload, key
            if key[0] == "lambda":
                assert payload.count(b"<dynamic-code>") == 1, key


# Runs MAIN_SCRIPT's source in ``__main__`` compiled under the file name
# given: functions of a notebook or an interactive session, whose cells have
# file names that change from one session to the next.
_RUN_AS_CELL = """
import sys
script, filename = sys.argv[1], sys.argv[2]
with open(script) as f:
    source = f.read()
sys.argv = [filename, sys.argv[3]]
exec(compile(source, filename, "exec"), globals())
"""


@pytest.fixture(scope="module")
def cell_payloads(reference_python, tmp_path_factory):
    """``(ours, reference's, ours again)``: MAIN_SCRIPT's payload made in
    ``__main__`` by each side, the source compiled under a different file
    name each time."""
    tmp = tmp_path_factory.mktemp("cells")
    script = tmp / "main_script.py"
    script.write_text(MAIN_SCRIPT)
    made = []
    for run, python in (("ours", None), ("reference", reference_python), ("again", None)):
        out_path = tmp / f"{run}.pkl"
        filename = f"/tmp/kernel_{run}/cell_{len(made)}.py"
        run_python(
            ["-c", _RUN_AS_CELL, str(script), filename, str(out_path)],
            python=python,
            isolated=python is not None,
            cwd=str(tmp),
        )
        made.append(out_path.read_bytes())
    return tuple(made)


def test_cell_functions_pickle_to_the_same_bytes(cell_payloads):
    ours, reference, again = cell_payloads
    assert b"kernel_" not in reference and b"<dynamic-code>" in reference
    if ours != reference:
        from _helpers import describe_difference

        pytest.fail("payloads differ:\n" + describe_difference(ours, reference))
    # Deterministic: another session, another file name, the same bytes.
    assert again == ours


# Describes every name of the package, of ``cloudpickle.cloudpickle`` and of
# ``cloudpickle.cloudpickle_fast`` as ``dir()`` lists them, by what a client
# can rely on: the value of plain data (constants, opcode numbers, names),
# which module a module attribute is, which object a name borrowed from the
# standard library is, and the kind of cloudpickle's own functions and
# classes (their behaviour is tested elsewhere).
NAMES_PROBE = """
import importlib, json, types
PLAIN = (bool, int, float, str, bytes, type(None))

def describe(value):
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, PLAIN):
        return ["value", repr(value)]
    if isinstance(value, (tuple, list, set, frozenset)) and all(
        isinstance(item, PLAIN) for item in value
    ):
        return ["value", type(value).__name__, sorted(map(repr, value))]
    if isinstance(value, dict):
        return ["dict", sorted(repr(key) for key in value)]
    module = getattr(value, "__module__", None)
    if (isinstance(value, type) or callable(value)) and isinstance(module, str):
        if module.split(".")[0] == "cloudpickle":
            return ["class" if isinstance(value, type) else "callable"]
        return ["object", module, getattr(value, "__qualname__", None)]
    return ["instance", type(value).__module__, type(value).__qualname__]

described = {}
for name in ("cloudpickle", "cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast"):
    module = importlib.import_module(name)
    described[name] = {attr: describe(getattr(module, attr)) for attr in dir(module)}
print(json.dumps(described))
"""

# Module attributes that say where a module's file is, or document it.
_WHERE_AND_DOC = {"__doc__", "__file__", "__cached__", "__path__", "__loader__", "__spec__"}


def _describe_names(python, isolated):
    import json

    return json.loads(run_python(["-c", NAMES_PROBE], python=python, isolated=isolated))


@pytest.fixture(scope="module")
def described_names(reference_python):
    """``(ours, reference's)``: module -> name -> description, as a fresh
    process of each side sees them."""
    return _describe_names(None, False), _describe_names(reference_python, True)


@pytest.mark.parametrize(
    "module", ["cloudpickle", "cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast"]
)
def test_every_name_of_the_reference_is_here(module, described_names):
    # Client code reads the package and its modules in every way: helpers,
    # constants, the standard modules the reference imports, even the
    # variables its module-level loop leaves behind. Every name dir() shows
    # in the reference is here, with the same value or the same kind.
    ours, reference = (side[module] for side in described_names)
    assert "dumps" in reference or module.endswith("_fast")
    missing = sorted(set(reference) - set(ours))
    assert missing == []
    differ = {
        name: (ours[name], reference[name])
        for name in reference
        if name not in _WHERE_AND_DOC | {"__all__"} and ours[name] != reference[name]
    }
    assert differ == {}
    if "__all__" in reference:
        # The package exports what the reference exports (and a few more).
        (_, _, exported) = reference["__all__"]
        assert set(exported) <= set(ours["__all__"][2])


def test_star_import_gives_the_reference_names(described_names):
    # The reference module has no __all__: `from cloudpickle.cloudpickle
    # import *` (which the package does) gives all its public names.
    ours, reference = (side["cloudpickle.cloudpickle"] for side in described_names)
    assert "__all__" not in reference and "__all__" not in ours
    public = {name for name in reference if not name.startswith("_")}
    assert {"is_tornado_coroutine", "subimport", "GLOBAL_OPS", "sys"} <= public
    assert public <= set(described_names[0]["cloudpickle"])


PICKLER_NAMES_PROBE = """
import json, cloudpickle
print(json.dumps(sorted(dir(cloudpickle.Pickler))))
"""


def test_pickler_has_every_attribute_of_the_reference(reference_python):
    import json

    reference = json.loads(
        run_python(["-c", PICKLER_NAMES_PROBE], python=reference_python, isolated=True)
    )
    assert "_function_reduce" in reference
    assert sorted(set(reference) - set(dir(cloudpickle.Pickler))) == []


def test_pickler_function_reducer_methods():
    import io

    pickler = cloudpickle.Pickler(io.BytesIO())
    n = 3
    func = lambda x: x + n  # noqa: E731
    make, newargs, state, _, _, setstate = pickler._function_reduce(func)
    assert make is cloudpickle.cloudpickle._make_function
    assert setstate is cloudpickle.cloudpickle._function_setstate
    assert newargs[0] is func.__code__ and newargs[1] is next(iter(pickler.globals_ref.values()))
    assert pickler._dynamic_function_reduce(func)[1][1] is newargs[1]
    assert pickler._function_getnewargs(func)[1] is newargs[1]
    assert pickler._function_reduce(textwrap.dedent) is NotImplemented
    rebuilt = make(*newargs)
    setstate(rebuilt, state)
    assert rebuilt(1) == 4

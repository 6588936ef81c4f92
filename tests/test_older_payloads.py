"""Payloads written by older releases of the pure-Python cloudpickle load here.

For each older release, an environment with only that release installed
(cached in the temporary directory, see ``_reference_venv.py``) runs
``_older_samples.py`` as ``__main__``: it pickles a representative set of
functions, classes, enums, dataclasses, typing constructs, modules and other
objects, each into its own file, and records what the probes of
``_older_probes.py`` return on the originals. Then, in fresh processes that
have neither the definitions nor the old release:

* this package loads every payload and runs the probes;
* the reference release 3.1.2 does the same, as the oracle of how an older
  payload loads today.

A payload must load here exactly as it loads with the reference, and behave
like the original object, except for what the payload itself does not carry
(``KNOWN_LOSSES``: the reference loses it too).

Releases 2.2.x name some reconstructors under ``cloudpickle.cloudpickle_fast``
(and 2.2.0 creates classes with their ``__slots__``, later releases do not);
``test_old_module_path_*`` check that path without any old release installed.
"""

import enum
import os
import pickle
import shutil
import sys

import _older_probes
import _reference_venv
import cloudpickle
import pytest
from _child_process import TESTS_DIR, load_in_child, run_python

OLDER_VERSIONS = ("2.2.0", "2.2.1", "3.0.0", "3.1.0", "3.1.1", "3.1.2")
ORACLE_VERSION = "3.1.2"
SAMPLES_PATH = os.path.join(TESTS_DIR, "_older_samples.py")
PROBES_PATH = os.path.join(TESTS_DIR, "_older_probes.py")
LABELS = list(_older_probes.PROBES)
PYTHON = "{}.{}".format(*sys.version_info[:2])

# What a payload does not carry, so that the object loaded (by the reference
# as well as here) differs from the original: (label, check) -> (releases the
# loss applies to, or None for all of them; why).
KNOWN_LOSSES = {
    **{
        ("slots", check): (
            OLDER_VERSIONS[1:],
            "since 2.2.1 a class is created without its __slots__ (set afterwards as "
            "a plain attribute): no slot descriptors",
        )
        for check in ("instance_dict", "other_attribute", "slot_descriptor")
    },
    ("class_in_function", "qualname"): (None, "a class's __qualname__ is not pickled"),
    ("dynamic_module", "functions_share_module_namespace"): (
        None,
        "the functions of a module pickled by value get a copy of its namespace",
    ),
    ("memoryview", "type"): (None, "a memoryview is pickled as bytes"),
    ("class_features", "module"): (
        ("2.2.0",),
        "2.2.0 drops a subclass's __module__ when it equals its base's (the class "
        "comes back with the module that created it)",
    ),
    ("namedtuple", "<load>"): (
        ("2.2.0",),
        "2.2.0 creates classes without __module__, which typing.NamedTuple requires: "
        "the payload does not load with 2.2.0 itself either",
    ),
    **{
        (label, check): (
            ("2.2.0", "2.2.1"),
            "before 3.0 the dataclass field-type sentinels were pickled by value, "
            "so dataclasses.fields() finds no field",
        )
        for label, check in (
            ("dataclass", "fields"),
            ("dataclass", "astuple"),
            ("dataclass", "asdict"),
            ("frozen_dataclass", "fields"),
        )
    },
}

if sys.version_info >= (3, 14):
    # Python 3.14 evaluates class annotations lazily (PEP 649/749).
    KNOWN_LOSSES.update(
        {
            **{
                (label, "annotations"): (
                    ("3.1.2",),
                    "on Python 3.14+, 3.1.2 drops a class's annotate function: the "
                    "payload carries no annotations",
                )
                for label in ("namedtuple", "typeddict")
            },
            ("typeddict", "<load>"): (
                ("3.1.1",),
                "on Python 3.14+, 3.1.1's TypedDict payload does not load (cloudpickle "
                "3.1.2 fails on it the same way)",
            ),
        }
    )

if sys.version_info >= (3, 15):
    KNOWN_LOSSES.update(
        {
            (label, "<load>"): (
                ("3.1.1",),
                "on Python 3.15+, 3.1.1's dataclass payloads do not load (AttributeError: "
                "type object 'object' has no attribute '__weakref__'; cloudpickle 3.1.2 "
                "fails on them the same way)",
            )
            for label in ("dataclass", "frozen_dataclass")
        }
    )

# Every name under cloudpickle.* that payloads of the older releases can refer
# to (read from their sources; the names their payloads refer to in these
# tests must be among them).
OLD_PAYLOAD_NAMES = (
    "_builtin_type",
    "_class_setstate",
    "_empty_cell_value",
    "_file_reconstructor",
    "_function_setstate",
    "_get_dataclass_field_type_sentinel",
    "_make_cell",
    "_make_dict_items",
    "_make_dict_keys",
    "_make_dict_values",
    "_make_empty_cell",
    "_make_function",
    "_make_skeleton_class",
    "_make_skeleton_enum",
    "_make_typevar",
    "dynamic_subimport",
    "subimport",
)


# -----------------------------------------------------------------------------
# Generating and loading the payloads.
# -----------------------------------------------------------------------------


def _load_with(python, payload_dir, result_path, *, isolated):
    """Run the loading side (``_older_probes.py``) with ``python``, from a
    directory of its own: nothing of the samples is importable there."""
    loader_dir = os.path.join(os.path.dirname(result_path), "loader")
    os.makedirs(loader_dir, exist_ok=True)
    loader = shutil.copy(PROBES_PATH, loader_dir)
    run_python(
        [loader, payload_dir, result_path],
        python=python,
        isolated=isolated,
        env=dict(os.environ),
        cwd=payload_dir,
    )
    with open(result_path, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="session")
def oracle_python():
    return _reference_venv.reference_python(ORACLE_VERSION, "CLOUDPICKLE_REFERENCE_PYTHON")


class Older:
    """The payloads of one older release and how they load."""

    def __init__(self, version, manifest, ours, oracle):
        self.version = version
        self.manifest = manifest
        self.ours = ours
        self.oracle = oracle


@pytest.fixture(scope="module", params=OLDER_VERSIONS)
def older(request, oracle_python, tmp_path_factory):
    version = request.param
    python = _reference_venv.reference_python(version)
    tmp = tmp_path_factory.mktemp(f"older-{version}")
    payload_dir = str(tmp / "payloads")
    os.makedirs(payload_dir)
    # The old release pickles its samples as __main__, in isolated mode: only
    # what is installed in its environment is importable.
    run_python([SAMPLES_PATH, PROBES_PATH, payload_dir], python=python, isolated=True)
    with open(os.path.join(payload_dir, "manifest.pkl"), "rb") as f:
        manifest = pickle.load(f)
    assert (manifest["cloudpickle_version"], manifest["python"]) == (version, PYTHON)
    if sys.version_info >= (3, 14) and set(manifest["failures"]) == set(LABELS):
        # Releases before 3.1.1 cannot pickle anything on Python 3.14
        # (RecursionError): there is no payload of theirs to load.
        pytest.skip(
            f"cloudpickle {version} cannot pickle on Python {PYTHON}: "
            f"{manifest['failures'][LABELS[0]]}"
        )

    ours = _load_with(sys.executable, payload_dir, str(tmp / "ours.pkl"), isolated=False)
    oracle = _load_with(oracle_python, payload_dir, str(tmp / "oracle.pkl"), isolated=True)
    return Older(version, manifest, ours, oracle)


# -----------------------------------------------------------------------------
# The payloads of each older release.
# -----------------------------------------------------------------------------


def test_loaded_by_this_package_and_by_the_reference(older):
    assert older.ours["has_engine"], "the payloads were not loaded by this package"
    assert older.ours["cloudpickle_version"] == cloudpickle.__version__
    assert not older.oracle["has_engine"]
    assert older.oracle["cloudpickle_version"] == ORACLE_VERSION
    assert older.manifest["labels"] == LABELS


@pytest.mark.parametrize("label", LABELS)
def test_payload_loads_here(older, label):
    failure = older.manifest["failures"].get(label)
    if failure is not None:
        pytest.skip(f"cloudpickle {older.version} cannot pickle this on Python {PYTHON}: {failure}")
    expected = older.manifest["expected"][label]
    assert "<probe>" not in expected, f"the probe failed on the original: {expected}"
    ours = older.ours["outcomes"][label]
    assert ours == older.oracle["outcomes"][label], "loads differently with the reference"
    if "<load>" in ours:
        versions, why = KNOWN_LOSSES.get((label, "<load>"), ((), ""))
        if versions is None or older.version in versions:
            pytest.xfail(f"{why}; {ours['<load>']}")
        pytest.fail(f"the payload does not load: {ours['<load>']}")

    differences = []
    for check, value in expected.items():
        if ours.get(check) == value:
            continue
        versions, _why = KNOWN_LOSSES.get((label, check), ((), ""))
        if versions is None or older.version in versions:
            continue
        differences.append(f"{check}: original {value!r}, loaded {ours.get(check)!r}")
    assert not differences, "\n".join(differences)


# Checks saying that separate payloads of one class (one enum, one TypeVar)
# load as one object, through its tracker id.
IDENTITY_CHECKS = {
    ("same_class_twice", "same_class"): True,
    ("same_class_twice", "instance_class"): (True, True),
    ("enum", "same_class"): True,
    ("enum", "member_identity"): (True, True, True),
    ("typevar", "same_typevar"): True,
}


def test_same_class_from_several_payloads_is_one_class(older):
    for (label, check), expected in IDENTITY_CHECKS.items():
        if label not in older.manifest["failures"]:
            assert older.ours["outcomes"][label][check] == ("ok", expected), (label, check)


def test_named_globals_resolve_here(older):
    named = [tuple(pair) for pair in older.ours["named"]]
    ours = sorted(pair for pair in named if pair[0].split(".")[0] == "cloudpickle")
    assert ours, "the payloads named no cloudpickle reconstructor"
    modules = {module for module, _ in ours}
    assert modules <= {"cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast"}, modules
    assert {name for _, name in ours} <= set(OLD_PAYLOAD_NAMES)
    for module, name in ours:
        __import__(module)
        assert getattr(sys.modules[module], name) is getattr(cloudpickle.cloudpickle, name)
    # Releases 2.2.x define the state setters (and the file reconstructor) in
    # cloudpickle_fast, and their payloads say so; 3.x name only
    # cloudpickle.cloudpickle.
    fast = {name for module, name in ours if module == "cloudpickle.cloudpickle_fast"}
    if older.version.startswith("2."):
        assert {"_function_setstate", "_class_setstate", "_file_reconstructor"} <= fast
    else:
        assert not fast


# -----------------------------------------------------------------------------
# The old module path, without any older release.
# -----------------------------------------------------------------------------


def _global_opcode(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n."


def _stack_global(module, name):
    def short_unicode(text):
        data = text.encode()
        return b"\x8c" + bytes([len(data)]) + data

    return b"\x80\x04" + short_unicode(module) + short_unicode(name) + b"\x93."


@pytest.mark.parametrize("build", [_global_opcode, _stack_global], ids=["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize("name", OLD_PAYLOAD_NAMES)
def test_old_module_path_names(name, build):
    for module in ("cloudpickle.cloudpickle_fast", "cloudpickle.cloudpickle"):
        assert pickle.loads(build(module, name)) is getattr(cloudpickle.cloudpickle, name)


def test_old_module_path_unknown_name_is_a_clear_error():
    with pytest.raises(AttributeError, match="_no_such_reconstructor"):
        pickle.loads(_global_opcode("cloudpickle.cloudpickle_fast", "_no_such_reconstructor"))


def _old_module_path_payload():
    """A payload of this package's functions and classes whose every
    reconstructor is named under ``cloudpickle.cloudpickle_fast``, as 2.2.x
    names its state setters. Protocol 2 writes names as text lines and has no
    frames, so the module name can be rewritten in place."""
    scale = 3

    class Shape:
        def __init__(self, side):
            self.side = side

        def area(self):
            return self.side * self.side * scale

    class Kind(enum.Enum):
        SQUARE = "sq"

        def label(self):
            return self.value.upper()

    def fact(n):
        return 1 if n < 2 else n * fact(n - 1)

    payload = cloudpickle.dumps((Shape, Shape(2), Kind.SQUARE, fact, lambda: scale), protocol=2)
    old = payload.replace(b"ccloudpickle.cloudpickle\n", b"ccloudpickle.cloudpickle_fast\n")
    assert b"cloudpickle.cloudpickle\n" not in old
    assert old.count(b"ccloudpickle.cloudpickle_fast\n") >= 5
    return old


_OLD_PATH_PROBE = """
def probe(obj):
    shape, square, kind, fact, get_scale = obj
    return (
        type(square) is shape, square.area(), shape(1).area(),
        kind.label(), type(type(kind)).__name__, fact(5), get_scale(),
    )
"""
_OLD_PATH_EXPECTED = (True, 12, 3, "SQ", type(enum.Enum).__name__, 120, 3)


def test_old_module_path_payload_loads():
    exec_globals = {}
    exec(_OLD_PATH_PROBE, exec_globals)
    assert exec_globals["probe"](pickle.loads(_old_module_path_payload())) == _OLD_PATH_EXPECTED


def test_old_module_path_payload_loads_in_a_fresh_process():
    assert load_in_child(_old_module_path_payload(), _OLD_PATH_PROBE) == _OLD_PATH_EXPECTED

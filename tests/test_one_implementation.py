"""One implementation per rule: the private helpers clients import from
``cloudpickle.cloudpickle`` are the engine's own functions (what ``dumps``
runs), the reconstructors payloads name carry the public module's name
(given once, when the bridge is installed), and the engine's function
opcode writer gives the bytes of the reduce tuple its builder makes."""

import ast
import functools
import os
import pathlib
import pickle
import sys
import types
import typing
import xml.etree.ElementTree

import _importable
import cloudpickle
import pytest
from _helpers import PROTOCOLS
from cloudpickle import _engine, _reconstructors
from cloudpickle import cloudpickle as cp

# The names of the reference module that the engine implements: no second
# copy of these rules exists in Python.
ENGINE_RULES = (
    "_should_pickle_by_reference",
    "_lookup_module_and_qualname",
    "_whichmodule",
    "_public_module_name",
    "_getattribute",
    "_is_registered_pickle_by_value",
    "_cell_reduce",
    "_module_reduce",
    "_dynamic_function_reduce",
    "_function_reduce",
    "_function_getnewargs",
    "_function_getstate",
    "_extract_code_globals",
    "_find_imported_submodules",
    "_code_reduce",
    "_copy_str",
    "_copy_tuple",
    "_dynamic_code_filename",
    "_CODE_FIELDS",
    "_DYNAMIC_CODE_FILENAME",
    "_typevar_reduce",
    "_decompose_typevar",
    "_get_bases",
    "_extract_class_dict",
    "_class_getnewargs",
    "_enum_getnewargs",
    "_class_getstate",
    "_enum_getstate",
    "_dynamic_class_reduce",
    "_class_reduce",
    "_classmethod_reduce",
    "_method_reduce",
    "_file_reduce",
    "_logger_reduce",
    "_root_logger_reduce",
    "_memoryview_reduce",
    "_property_reduce",
    "_getset_descriptor_reduce",
    "_mappingproxy_reduce",
    "_weakset_reduce",
    "_dict_keys_reduce",
    "_dict_values_reduce",
    "_dict_items_reduce",
    "_odict_keys_reduce",
    "_odict_values_reduce",
    "_odict_items_reduce",
    "_dataclass_field_base_reduce",
)

# Reconstructors the engine replaces entirely: the names stay importable
# from _reconstructors, bound to the native versions.
NATIVE_RECONSTRUCTORS = (
    "_make_function",
    "_function_setstate",
    "_make_cell",
    "_make_empty_cell",
    "_make_skeleton_class",
    "_class_setstate",
)


@pytest.mark.parametrize("name", ENGINE_RULES)
def test_private_helpers_are_the_engines(name):
    assert getattr(cp, name) is getattr(_engine, name)
    if callable(getattr(cp, name)):
        assert isinstance(getattr(cp, name), type(_engine.dumps))


@pytest.mark.parametrize("name", [n for n in ENGINE_RULES if callable(getattr(cp, n))])
def test_engine_rules_are_pickled_under_the_public_module(name):
    # As the reference's payloads name them (its functions live in
    # cloudpickle.cloudpickle), not under the engine's module.
    func = getattr(cp, name)
    assert func.__module__ == "cloudpickle.cloudpickle"
    payload = cloudpickle.dumps(func, protocol=2)
    assert b"cloudpickle._engine" not in payload
    assert pickle.loads(payload) is func


@pytest.mark.parametrize("name", NATIVE_RECONSTRUCTORS)
def test_replaced_reconstructors_are_native_everywhere(name):
    native = getattr(_engine, name)
    assert getattr(cp, name) is native
    assert getattr(_reconstructors, name) is native
    # The type of the engine's functions: types.BuiltinFunctionType on
    # CPython, cpyext's builtin_function_or_method on PyPy.
    assert isinstance(native, type(_engine.dumps))


def test_reducers_table_holds_the_engines_reducers():
    assert cp._REDUCERS[types.CellType] is _engine._cell_reduce
    assert cp._REDUCERS[types.ModuleType] is _engine._module_reduce
    assert cp._REDUCERS[types.CodeType] is _engine._code_reduce
    assert cp._REDUCERS[typing.TypeVar] is _engine._typevar_reduce
    assert cp.Pickler.dispatch_table[types.ModuleType] is _engine._module_reduce
    assert cp.Pickler.dispatch_table[types.CodeType] is _engine._code_reduce


# ---------------------------------------------------------------------------
# Names payloads use, set once by the bridge install.
# ---------------------------------------------------------------------------


def test_reconstructors_carry_the_public_module_name():
    published = _reconstructors._PUBLIC_MODULE
    assert published == "cloudpickle.cloudpickle"
    for name in _reconstructors.__all__:
        value = getattr(cp, name)
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            # One string object, so that the memo writes it once per payload.
            assert value.__module__ is published, name
    assert cp.dumps.__module__ is published
    assert cp.dump.__module__ is published


def test_class_reconstructors_have_no_python_copy():
    # One implementation: the engine's class reconstructors handle every
    # case themselves, and carry the public module's name.
    for name in ("_make_skeleton_class", "_class_setstate"):
        assert getattr(_reconstructors, name) is getattr(_engine, name)
        assert getattr(cp, name).__module__ == "cloudpickle.cloudpickle"


def test_reconstructors_pickle_by_reference_under_the_public_name():
    for name in ("_make_function", "_make_skeleton_class", "_make_typevar", "subimport"):
        payload = pickle.dumps(getattr(cp, name), protocol=2)
        assert b"cloudpickle.cloudpickle" in payload
        assert pickle.loads(payload) is getattr(cp, name)
    assert pickle.loads(cloudpickle.dumps(cloudpickle.dumps)) is cloudpickle.dumps


def _module_level_statements(tree):
    """The statements a module runs at import (not those of its functions
    and classes)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        for field in ("body", "orelse", "handlers", "finalbody"):
            pending.extend(getattr(node, field, ()))


def test_python_layer_does_not_rewrite_attributes_at_import():
    # At import, the package's modules bind their own names and configure
    # their own objects only: no __module__ is assigned and no attribute of
    # an imported module or object is set; the bridge install sets the
    # __module__ of what payloads name, in one place.
    package = pathlib.Path(cp.__file__).parent
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        statements = list(_module_level_statements(tree))
        imported = set()
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        for node in statements:
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    for target in targets:
                        if not isinstance(target, ast.Attribute):
                            continue
                        where = (path.name, sub.lineno)
                        assert target.attr != "__module__", where
                        assert getattr(target.value, "id", None) not in imported, where
                if isinstance(sub, ast.Call) and getattr(sub.func, "id", None) == "setattr":
                    raise AssertionError((path.name, sub.lineno))


def test_engine_reaches_the_package_through_the_bridge_only():
    # No Rust source imports a module of the package by name at a call
    # site: what the engine uses of it is in the bridge, filled at import.
    import re

    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    if not src.is_dir():
        pytest.skip("the engine's sources are not here")
    by_name = re.compile(r'import\(\s*(pyo3::intern!\(\s*\w+,\s*)?"cloudpickle')
    for path in src.rglob("*.rs"):
        assert not by_name.search(path.read_text()), path


# ---------------------------------------------------------------------------
# The rules, as client code calls them.
# ---------------------------------------------------------------------------


def test_by_value_decision_for_modules():
    assert cp._should_pickle_by_reference(os)
    dynamic = types.ModuleType("_oi_dynamic")
    assert not cp._should_pickle_by_reference(dynamic)
    cloudpickle.register_pickle_by_value(_importable)
    try:
        assert not cp._should_pickle_by_reference(_importable)
        assert cp._is_registered_pickle_by_value(_importable)
    finally:
        cloudpickle.unregister_pickle_by_value(_importable)
    assert cp._should_pickle_by_reference(_importable)


def test_by_value_decision_rejects_other_objects():
    with pytest.raises(TypeError, match="cannot check importability of int instances"):
        cp._should_pickle_by_reference(1)


def test_module_reduce():
    assert cp._module_reduce(os.path) == (cp.subimport, (os.path.__name__,))
    dynamic = types.ModuleType("_oi_dynamic")
    dynamic.x = 1
    dynamic.__builtins__ = {"unpicklable": object()}
    constructor, (name, namespace) = cp._module_reduce(dynamic)
    assert constructor is cp.dynamic_subimport
    assert name == "_oi_dynamic"
    assert namespace["x"] == 1 and "__builtins__" not in namespace
    assert "__builtins__" in vars(dynamic)  # a copy was filtered
    with pytest.raises(TypeError):
        cp._module_reduce(1)


def test_cell_reduce():
    assert cp._cell_reduce(types.CellType(3)) == (cp._make_cell, (3,))
    assert cp._cell_reduce(types.CellType()) == (cp._make_empty_cell, ())
    with pytest.raises(TypeError):
        cp._cell_reduce(3)


ModuleTypeVar = typing.TypeVar("ModuleTypeVar")


def test_typevar_decision():
    assert cp._typevar_reduce(typing.AnyStr) == (getattr, (typing, "AnyStr"))
    local = typing.TypeVar("local", int, str, covariant=True)
    constructor, args = cp._typevar_reduce(local)
    assert constructor is cp._make_typevar
    assert args == cp._decompose_typevar(local)
    assert args == ("local", None, (int, str), True, False, cp._get_or_create_tracker_id(local))
    assert _engine._typevar_by_reference(local) is None
    bounded = typing.TypeVar("bounded", bound=int)
    assert cp._decompose_typevar(bounded)[1] is int


def test_code_reduce():
    def sample(a, b=1):
        return a + b

    code = sample.__code__
    constructor, args = cp._code_reduce(code)
    assert constructor is types.CodeType
    assert len(args) == len(cp._CODE_FIELDS)
    for field, arg in zip(cp._CODE_FIELDS, args):
        if field == "co_filename":
            assert arg == cp._DYNAMIC_CODE_FILENAME == "<dynamic-code>"
        else:
            assert arg == getattr(code, field), field
    # Copies, so that payloads do not depend on what the compiler shared.
    fields = dict(zip(cp._CODE_FIELDS, args))
    assert fields["co_varnames"] is not code.co_varnames
    assert fields["co_name"] is not code.co_name
    if sys.implementation.name == "pypy":
        # PyPy builds a new co_consts tuple at each access.
        assert fields["co_consts"] == code.co_consts
    else:
        assert fields["co_consts"] is code.co_consts
    assert types.CodeType(*args).co_filename == "<dynamic-code>"
    with pytest.raises(TypeError, match="code object"):
        cp._code_reduce(sample)


def test_code_reduction_copies():
    # As "".join(value) and tuple(iter(value)): new objects, except the
    # shared empty and one-character singletons.
    name = "".join(["na", "me"])
    assert cp._copy_str(name) == name and cp._copy_str(name) is not name
    assert cp._copy_str(["a", "bc"]) == "abc"
    for short in ("", "x", "\udc80", "\u20ac", "\udc80abc"):
        assert cp._copy_str(short) == "".join(short)
        assert (cp._copy_str(short) is short) == ("".join(short) is short), short
    items = ("a", "b")
    assert cp._copy_tuple(items) == items and cp._copy_tuple(items) is not items
    assert cp._copy_tuple(()) is tuple(iter(()))
    assert cp._copy_tuple(["x"]) == ("x",)
    first = cp._dynamic_code_filename("a.py")
    second = cp._dynamic_code_filename("a.py")
    assert first == second == "<dynamic-code>" and first is not second
    with pytest.raises(TypeError):
        cp._copy_tuple(1)


def test_getattribute():
    assert cp._getattribute(os, "path.join") is os.path.join
    with pytest.raises(AttributeError):
        cp._getattribute(os, "path.nothing_here")
    with pytest.raises(AttributeError, match="local object"):
        cp._getattribute(os, "f.<locals>.g")


def test_whichmodule_names_private_modules_after_the_public_one():
    # An object without __module__ that a private module of the package
    # holds and the public module exposes too.
    table = cp._BUILTIN_TYPE_NAMES
    assert not hasattr(table, "__module__")
    assert cp._whichmodule(table, "_BUILTIN_TYPE_NAMES") == "cloudpickle.cloudpickle"
    assert (
        cp._public_module_name(table, "_BUILTIN_TYPE_NAMES", "cloudpickle._reconstructors")
        == "cloudpickle.cloudpickle"
    )
    assert cp._public_module_name(table, "nothing", "cloudpickle._reconstructors") == (
        "cloudpickle._reconstructors"
    )
    assert cp._whichmodule(object(), "nothing_holds_this") is None


def test_whichmodule_ignores_probing_errors():
    class Exploding(types.ModuleType):
        def __getattr__(self, name):
            raise RuntimeError("probing must not fail")

    sys.modules["_oi_exploding"] = Exploding("_oi_exploding")
    try:
        sentinel = object()
        assert cp._whichmodule(sentinel, "anything") is None
        assert cp._lookup_module_and_qualname(sentinel, name="anything") is None
    finally:
        del sys.modules["_oi_exploding"]


# ---------------------------------------------------------------------------
# The function opcode writer and the reduce tuple builder give one payload.
# ---------------------------------------------------------------------------

GLOBAL_VALUE = 7


def _function_samples():
    def plain(x, y=2, *, z=3) -> int:
        """Documented."""
        return x + y + z + GLOBAL_VALUE

    plain.attribute = {"a": 1}

    counter = 0

    def closure():
        nonlocal counter
        counter += 1
        return counter

    def recursive(n):
        return 1 if n <= 1 else n * recursive(n - 1)

    def uses_submodule():
        return xml.etree.ElementTree.fromstring("<a/>").tag

    def empty_cell():
        return later  # noqa: F821 - a cell still empty when pickled

    def outer():
        def inner(y):
            return y * GLOBAL_VALUE

        return inner

    samples = [
        plain,
        closure,
        recursive,
        uses_submodule,
        empty_cell,
        outer(),
        lambda: sys.version_info,
        functools.wraps(plain)(lambda *a: plain(*a)),
    ]
    return samples


class _TupleBuilderPickler(cloudpickle.Pickler):
    """Functions by value through the engine's reduce tuple builder
    (``_dynamic_function_reduce``), saved by the generic reduce path,
    instead of the engine's direct opcode writer."""

    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType) and not cp._should_pickle_by_reference(obj):
            return cp._dynamic_function_reduce(obj, self.globals_ref)
        return super().reducer_override(obj)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_function_writer_matches_tuple_builder(protocol):
    import io

    samples = _function_samples()
    for obj in [*samples, samples]:
        written = cloudpickle.dumps(obj, protocol=protocol)
        buffer = io.BytesIO()
        _TupleBuilderPickler(buffer, protocol=protocol).dump(obj)
        assert buffer.getvalue() == written, obj


def test_function_reduction_parts():
    samples = _function_samples()
    plain = samples[0]
    globals_ref = {}
    reduced = cp._dynamic_function_reduce(plain, globals_ref)
    assert reduced[0] is cp._make_function and reduced[5] is cp._function_setstate
    assert cp._function_getnewargs(plain, globals_ref) == reduced[1]
    assert list(globals_ref) == [id(plain.__globals__)]
    attributes, slotstate = cp._function_getstate(plain)
    assert attributes == {"attribute": {"a": 1}}
    assert slotstate["__globals__"] == {"GLOBAL_VALUE": 7}
    assert slotstate["__kwdefaults__"] == {"z": 3}
    assert cp._function_reduce(os.path.join) is NotImplemented
    with pytest.raises(TypeError):
        cp._dynamic_function_reduce(len)
    # Handed to Python code, the reduction's containers are tracked by the
    # garbage collector again (the engine builds them untracked).
    import gc

    if hasattr(gc, "is_tracked"):  # PyPy's collector tracks no containers
        assert gc.is_tracked(reduced) and gc.is_tracked(reduced[2][1])


def test_find_imported_submodules():
    import xml.etree

    def reaches_submodule():
        return xml.etree.ElementTree.parse

    found = cp._find_imported_submodules(reaches_submodule.__code__, [xml, 3, None])
    assert xml.etree in found and xml.etree.ElementTree in found
    # Not packages (empty __package__) or not modules: nothing to reach.
    assert cp._find_imported_submodules(reaches_submodule.__code__, [os, sys, 1]) == []
    # Sees submodules imported after an earlier call.
    name = "xml.etree._oi_later"
    sys.modules[name] = types.ModuleType(name)
    try:

        def reaches_later():
            return xml.etree._oi_later

        assert sys.modules[name] in cp._find_imported_submodules(reaches_later.__code__, [xml])
    finally:
        del sys.modules[name]
    assert cp._find_imported_submodules(reaches_later.__code__, [xml]) == [xml.etree]


# ---------------------------------------------------------------------------
# The class rule: one decision, acted on by the engine's reducer_override
# and by `_class_reduce`.
# ---------------------------------------------------------------------------


def _local_class():
    class Local:
        x = 1

    return Local


class _ClassReducePickler(pickle.Pickler):
    """pickle, with `_class_reduce` for classes and cloudpickle's table."""

    dispatch_table = cp.Pickler.dispatch_table

    def reducer_override(self, obj):
        if isinstance(obj, type):
            return cp._class_reduce(obj)
        return NotImplemented


@pytest.mark.parametrize(
    "cls",
    [type(None), type(Ellipsis), type(NotImplemented), types.CodeType,
     types.CellType, int, _importable.ModuleClass, _local_class()],
    ids=lambda c: c.__qualname__,
)  # fmt: skip
@pytest.mark.parametrize("protocol", [p for p in PROTOCOLS if p >= 2])
def test_class_rule_is_the_same_for_dumps_and_class_reduce(cls, protocol):
    import io

    buf = io.BytesIO()
    _ClassReducePickler(buf, protocol=protocol).dump(cls)
    assert cloudpickle.dumps(cls, protocol=protocol) == buf.getvalue()
    assert pickle.loads(buf.getvalue()) is cls

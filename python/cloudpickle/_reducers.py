"""Pickling-side helpers: deciding how a function or class travels, and the
reducers of the types the standard pickle does not handle.

Everything here is a plain function of the object being pickled (plus, for
functions, the pickler's ``globals_ref`` mapping), so the Rust engine can call
these helpers without a Python ``Pickler`` instance. The names and return
values follow the pure-Python cloudpickle: the reduce tuples reference the
reconstructors of :mod:`cloudpickle._reconstructors` (published as
``cloudpickle.cloudpickle.<name>``), which makes the payloads interchangeable.
"""

import _collections_abc
import abc
import dataclasses
import dis
import enum
import hashlib
import io
import itertools
import logging
import opcode
import pickle
import sys
import threading
import types
import typing
import uuid
import weakref
from collections import OrderedDict

from ._reconstructors import (
    _BUILTIN_TYPE_NAMES,
    _DYNAMIC_CLASS_TRACKER_BY_CLASS,
    _DYNAMIC_CLASS_TRACKER_BY_ID,
    _DYNAMIC_CLASS_TRACKER_LOCK,
    _builtin_type,
    _class_setstate,
    _empty_cell_value,
    _file_reconstructor,
    _function_setstate,
    _get_cell_contents,
    _get_dataclass_field_type_sentinel,
    _make_cell,
    _make_dict_items,
    _make_dict_keys,
    _make_dict_values,
    _make_empty_cell,
    _make_function,
    _make_skeleton_class,
    _make_skeleton_enum,
    _make_typevar,
    dynamic_subimport,
    subimport,
)

__all__ = [
    "EXTENDED_ARG",
    "GLOBAL_OPS",
    "HAVE_ARGUMENT",
    "LOAD_GLOBAL",
    "STORE_GLOBAL",
    "Enum",
    "OrderedDict",
    "builtin_code_type",
    "_getattribute",
    "_pickle_getattribute",
    "is_tornado_coroutine",
    "_REDUCERS",
    "_get_or_create_tracker_id",
    "_cell_reduce",
    "_class_getnewargs",
    "_class_getstate",
    "_class_reduce",
    "_classmethod_reduce",
    "_code_reduce",
    "_dataclass_field_base_reduce",
    "_decompose_typevar",
    "_dict_items_reduce",
    "_dict_keys_reduce",
    "_dict_values_reduce",
    "_dynamic_class_reduce",
    "_dynamic_function_reduce",
    "_enum_getnewargs",
    "_enum_getstate",
    "_extract_class_dict",
    "_extract_code_globals",
    "_extract_code_globals_cache",
    "_file_reduce",
    "_find_imported_submodules",
    "_function_getnewargs",
    "_function_getstate",
    "_function_reduce",
    "_get_bases",
    "_getset_descriptor_reduce",
    "_is_registered_pickle_by_value",
    "_logger_reduce",
    "_lookup_module_and_qualname",
    "_mappingproxy_reduce",
    "_memoryview_reduce",
    "_method_reduce",
    "_module_reduce",
    "_odict_items_reduce",
    "_odict_keys_reduce",
    "_odict_values_reduce",
    "_property_reduce",
    "_public_module_name",
    "_root_logger_reduce",
    "_should_pickle_by_reference",
    "_typevar_reduce",
    "_walk_global_ops",
    "_weakset_reduce",
    "_whichmodule",
]
if "DELETE_GLOBAL" in opcode.opmap:
    __all__.append("DELETE_GLOBAL")


# ---------------------------------------------------------------------------
# By value or by reference?
# ---------------------------------------------------------------------------


# Module constants other code reads from ``cloudpickle.cloudpickle``: the
# opcodes that name globals, and the type of PyPy's builtin code objects
# (None on CPython). Built from what the running interpreter's ``opcode``
# module has: an opcode may disappear in a later CPython (DELETE_GLOBAL is
# slated to), and then neither its constant nor its entry in GLOBAL_OPS
# exists, as with the reference.
STORE_GLOBAL = opcode.opmap["STORE_GLOBAL"]
if "DELETE_GLOBAL" in opcode.opmap:
    DELETE_GLOBAL = opcode.opmap["DELETE_GLOBAL"]
LOAD_GLOBAL = opcode.opmap["LOAD_GLOBAL"]
GLOBAL_OPS = tuple(
    opcode.opmap[name]
    for name in ("STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_GLOBAL")
    if name in opcode.opmap
)
HAVE_ARGUMENT = dis.HAVE_ARGUMENT
EXTENDED_ARG = dis.EXTENDED_ARG
builtin_code_type = type(float.__new__.__code__) if hasattr(float.__new__, "__code__") else None


def is_tornado_coroutine(func):
    """Whether ``func`` is a Tornado coroutine function (False when Tornado
    is not imported, or too old to tell). Deprecated since cloudpickle 3.0,
    with the reference's warning: call ``tornado.gen.is_coroutine_function``
    instead."""
    import warnings

    warnings.warn(
        "is_tornado_coroutine is deprecated in cloudpickle 3.0 and will be "
        "removed in cloudpickle 4.0. Use tornado.gen.is_coroutine_function "
        "directly instead.",
        category=DeprecationWarning,
        # The reference's (default) level: the warning points here, so the
        # default filters hide it outside of tests, as with the reference.
        stacklevel=1,
    )
    gen = sys.modules.get("tornado.gen")
    if gen is None or not hasattr(gen, "is_coroutine_function"):
        return False
    return gen.is_coroutine_function(func)


def _is_registered_pickle_by_value(module):
    """True when ``module``, or a package containing it, was registered with
    ``register_pickle_by_value``."""
    # Imported here: cloudpickle.cloudpickle imports this module.
    from . import cloudpickle as _cp

    registry = _cp._PICKLE_BY_VALUE_MODULES
    if not registry:
        return False
    name = module.__name__
    while True:
        if name in registry:
            return True
        name, dot, _ = name.rpartition(".")
        if not dot:
            return False


def _resolve_dotted(owner, dotted_name):
    """``owner.a.b.c`` for ``dotted_name == "a.b.c"``, as pickle resolves a
    qualified name: AttributeError when a step is missing or is the
    ``<locals>`` of a function (such objects cannot be found by name)."""
    value = owner
    for part in dotted_name.split("."):
        if part == "<locals>":
            raise AttributeError(f"cannot reach a local object through {dotted_name!r}")
        value = getattr(value, part)
    return value


# Names the reference module also defines: pickle's attribute walker, and a
# version of it taking a dotted name.
_pickle_getattribute = getattr(pickle, "_getattribute", None)
_getattribute = _resolve_dotted
Enum = enum.Enum


# The public module of this package, and the modules its contents are
# implemented in (the engine, and the Python helpers it re-exports). Those
# complete their import before the public module does, so they come first in
# ``sys.modules``; an object found there is named after the public module
# when that module holds it too, as the reference (which has no such
# modules) names it.
_PUBLIC_MODULE_NAME = f"{__package__}.cloudpickle"
_IMPLEMENTATION_MODULES = frozenset(
    f"{__package__}.{name}" for name in ("_engine", "_reducers", "_reconstructors")
)


def _public_module_name(obj, name, module_name):
    """``module_name``, or the public module's name when ``module_name`` is
    one of this package's implementation modules and the public module
    holds ``obj`` under ``name`` too."""
    if module_name not in _IMPLEMENTATION_MODULES:
        return module_name
    public = sys.modules.get(_PUBLIC_MODULE_NAME)
    try:
        if public is not None and _resolve_dotted(public, name) is obj:
            return _PUBLIC_MODULE_NAME
    except Exception:  # noqa: BLE001 - probing must never fail pickling
        pass
    return module_name


def _whichmodule(obj, name):
    """The name of the module ``obj`` belongs to, or None.

    ``obj.__module__`` when the object has one (even ``"__main__"``);
    otherwise the first imported module (other than the main one) where
    ``name`` designates ``obj``. Unlike ``pickle.whichmodule`` it never
    defaults to ``"__main__"``, and errors raised while probing modules are
    ignored. An object of this package's implementation modules that the
    public module ``cloudpickle.cloudpickle`` exposes is found under the
    public module's name.
    """
    module_name = getattr(obj, "__module__", None)
    if module_name is not None:
        return module_name
    # Iterate over a snapshot: probing attributes may import modules, and
    # other threads may import concurrently.
    for module_name, module in list(sys.modules.items()):
        if module_name in ("__main__", "__mp_main__"):
            continue
        # Some tools store non-modules (or None) in sys.modules.
        if not isinstance(module, types.ModuleType):
            continue
        try:
            found = _resolve_dotted(module, name) is obj
        except Exception:  # noqa: BLE001, S112 - probing must never fail pickling
            continue
        if found:
            return _public_module_name(obj, name, module_name)
    return None


def _lookup_module_and_qualname(obj, name=None):
    """``(module, qualified name)`` under which ``obj`` can be imported by
    the loading process, or None when it cannot be found that way.

    ``name`` defaults to ``obj.__qualname__`` (then ``obj.__name__``). An
    object is importable when its module is ``sys.modules``-registered
    (and is not ``__main__``) and the name leads back to ``obj`` itself.
    """
    if name is None:
        name = getattr(obj, "__qualname__", None)
    if name is None:
        name = getattr(obj, "__name__", None)

    module_name = _whichmodule(obj, name)
    if module_name is None or module_name == "__main__":
        return None
    # A module missing from sys.modules was created on the fly (or removed):
    # the other side could not import it.
    module = sys.modules.get(module_name)
    if module is None:
        return None
    try:
        found = _resolve_dotted(module, name)
    except AttributeError:
        return None
    if found is not obj:
        return None
    return module, name


def _should_pickle_by_reference(obj, name=None):
    """Whether the function, class or module ``obj`` is pickled by reference
    (re-imported by name when loading) rather than by value.

    Functions and classes go by reference when they can be imported back
    (see :func:`_lookup_module_and_qualname`) from a module that is not
    registered for pickling by value. Modules go by reference when they are
    in ``sys.modules`` and not registered for pickling by value. Any other
    kind of object is a TypeError.
    """
    # issubclass(type(obj), type) rather than isinstance(obj, type): an
    # object lying about its __class__ is not a class.
    if isinstance(obj, types.FunctionType) or issubclass(type(obj), type):
        found = _lookup_module_and_qualname(obj, name=name)
        if found is None:
            return False
        return not _is_registered_pickle_by_value(found[0])
    if isinstance(obj, types.ModuleType):
        if _is_registered_pickle_by_value(obj):
            return False
        return obj.__name__ in sys.modules
    raise TypeError(f"cannot check importability of {type(obj).__name__} instances")


# ---------------------------------------------------------------------------
# Names a code object uses.
# ---------------------------------------------------------------------------

_GLOBAL_OPCODES = frozenset(GLOBAL_OPS)
_LOAD_GLOBAL = LOAD_GLOBAL
_EXTENDED_ARG = opcode.opmap["EXTENDED_ARG"]
# From 3.11 on, the argument of LOAD_GLOBAL is the name index shifted left by
# one (the low bit says whether a NULL is pushed too).
_LOAD_GLOBAL_SHIFT = 1 if sys.version_info >= (3, 11) else 0


def _walk_global_ops_raw(code):
    """Yield, in bytecode order, the name of every global read, written or
    deleted by ``code`` itself (not by the code objects nested in it).

    Reads CPython's word code directly: much faster than ``dis``."""
    raw = code.co_code
    names = code.co_names
    extended = 0
    # Word code: one byte of opcode, one byte of argument; EXTENDED_ARG
    # prefixes supply the higher bytes of the next argument.
    for i in range(0, len(raw), 2):
        op = raw[i]
        arg = raw[i + 1] | extended
        if op == _EXTENDED_ARG:
            extended = arg << 8
            continue
        extended = 0
        if op in _GLOBAL_OPCODES:
            if op == _LOAD_GLOBAL:
                arg >>= _LOAD_GLOBAL_SHIFT
            yield names[arg]


def _walk_global_ops_dis(code):
    """Same as :func:`_walk_global_ops_raw`, through ``dis`` (for
    interpreters whose bytecode layout may differ from CPython's)."""
    for instruction in dis.get_instructions(code):
        if instruction.opcode in _GLOBAL_OPCODES:
            yield instruction.argval


if sys.implementation.name == "cpython":
    _walk_global_ops = _walk_global_ops_raw
else:  # pragma: no cover - exercised on PyPy only
    _walk_global_ops = _walk_global_ops_dis


#: Per code object, the names returned by :func:`_extract_code_globals`.
_extract_code_globals_cache = weakref.WeakKeyDictionary()


def _extract_code_globals(co):
    """The global names used by the code object ``co`` or by any function or
    class body nested in it, as a dict (keys in first-use order, values
    None) so that payloads are deterministic.

    The result is cached per code object; callers must not mutate it.
    """
    names = _extract_code_globals_cache.get(co)
    if names is None:
        names = dict.fromkeys(_walk_global_ops(co))
        for const in co.co_consts:
            if isinstance(const, types.CodeType):
                names.update(_extract_code_globals(const))
        _extract_code_globals_cache[co] = names
    return names


# Which submodules of which packages are imported: (the sys.modules keys it
# was built from, {package name: [names of its submodules, in sys.modules
# order]}), rebuilt whenever those keys change.
_submodule_index = ([], {})


def _imported_submodules_by_package():
    """For every package with imported submodules, the names of those
    submodules (at any depth) in ``sys.modules`` order.

    Scanning ``sys.modules`` for each function pickled is slow, so the
    result is kept and reused as long as the keys of ``sys.modules`` are the
    same (comparing two lists of the same string objects is cheap).
    """
    global _submodule_index
    keys = list(sys.modules)
    known_keys, index = _submodule_index
    if keys != known_keys:
        index = {}
        for name in keys:
            # Some tools put non-string keys (None) in sys.modules.
            if not isinstance(name, str):
                continue
            dot = name.find(".")
            while dot != -1:
                index.setdefault(name[:dot], []).append(name)
                dot = name.find(".", dot + 1)
        # One assignment, so concurrent readers see a consistent pair.
        _submodule_index = (keys, index)
    return index


def _find_imported_submodules(code, top_level_dependencies):
    """The already-imported submodules that ``code`` may reach as attributes
    of the packages among ``top_level_dependencies``.

    ``import xml.etree.ElementTree`` makes the global ``xml`` visible to the
    code, which then uses ``xml.etree.ElementTree.parse``: only ``xml`` is a
    global, yet loading the function must import the submodules too.
    A submodule ``pkg.a.b`` qualifies when every part after the package name
    (``a`` and ``b``) is among the names the code uses. The result follows
    the order of the dependencies, then that of ``sys.modules``.
    """
    found = []
    index = used_names = None
    for dependency in top_level_dependencies:
        if not isinstance(dependency, types.ModuleType):
            continue
        # Only packages (and their submodules) have a non-empty __package__.
        if not getattr(dependency, "__package__", None):
            continue
        if index is None:
            index = _imported_submodules_by_package()
            used_names = set(code.co_names)
        package = dependency.__name__
        start = len(package) + 1
        for name in index.get(package, ()):
            if used_names.issuperset(name[start:].split(".")):
                try:
                    found.append(sys.modules[name])
                except KeyError:  # removed meanwhile by another thread
                    pass
    return found


# ---------------------------------------------------------------------------
# Functions.
# ---------------------------------------------------------------------------


def _function_getstate(func):
    """The state of a function sent by value: ``(attributes, slotstate)``.

    ``attributes`` is a copy of ``func.__dict__``. ``slotstate`` holds what
    :func:`_function_setstate` restores: name, qualified name, annotations,
    defaults, module, docstring, the closure cells, the globals the code
    refers to (only those that exist) and the imported submodules it uses
    (unpickling them imports them).
    """
    code = func.__code__
    namespace = func.__globals__
    closure = func.__closure__

    # "".join(...) makes non-interned copies: whether a string is interned
    # depends on the process history, and the memo works by identity, so
    # copying keeps payloads deterministic.
    slotstate = {
        "__name__": "".join(func.__name__),
        "__qualname__": "".join(func.__qualname__),
        "__annotations__": func.__annotations__,
        "__kwdefaults__": func.__kwdefaults__,
        "__defaults__": func.__defaults__,
        "__module__": func.__module__,
        "__doc__": func.__doc__,
        "__closure__": closure,
    }

    used_globals = {
        name: namespace[name] for name in _extract_code_globals(code) if name in namespace
    }
    closure_values = () if closure is None else [_get_cell_contents(c) for c in closure]
    slotstate["_cloudpickle_submodules"] = _find_imported_submodules(
        code, itertools.chain(used_globals.values(), closure_values)
    )
    slotstate["__globals__"] = used_globals

    attributes = {"".join(key): value for key, value in func.__dict__.items()}
    return attributes, slotstate


# Module attributes a function needs in its namespace to resolve relative
# imports (and to report where it comes from).
_MODULE_IDENTITY_KEYS = ("__package__", "__name__", "__path__", "__file__")


def _function_getnewargs(func, globals_ref):
    """Arguments of :func:`_make_function` for ``func``:
    ``(code, base_globals, None, None, closure)``.

    ``globals_ref`` maps ``id(func.__globals__)`` to the namespace shipped
    for it, so functions that share globals when pickled (by one pickler)
    share them again when loaded. A new namespace starts with the module's
    identity (``__package__``, ``__name__``, ``__path__``, ``__file__``);
    the globals the code uses are added by the state. ``closure`` is a tuple
    of fresh empty cells (filled by the state, which breaks cycles through
    recursive closures) or None.
    """
    code = func.__code__
    namespace = func.__globals__
    base_globals = globals_ref.setdefault(id(namespace), {})
    if not base_globals:
        for key in _MODULE_IDENTITY_KEYS:
            if key in namespace:
                base_globals[key] = namespace[key]

    if func.__closure__ is None:
        closure = None
    else:
        closure = tuple(_make_empty_cell() for _ in code.co_freevars)
    return code, base_globals, None, None, closure


def _dynamic_function_reduce(func, globals_ref):
    """Reduce tuple pickling ``func`` by value:
    ``(_make_function, newargs, state, None, None, _function_setstate)``."""
    newargs = _function_getnewargs(func, globals_ref)
    state = _function_getstate(func)
    return (_make_function, newargs, state, None, None, _function_setstate)


def _function_reduce(func, globals_ref):
    """``NotImplemented`` when ``func`` goes by reference (pickle then saves
    it as a global), otherwise its by-value reduce tuple."""
    if _should_pickle_by_reference(func):
        return NotImplemented
    return _dynamic_function_reduce(func, globals_ref)


# ---------------------------------------------------------------------------
# Code objects, cells, methods, modules.
# ---------------------------------------------------------------------------

# The positional parameters of types.CodeType, per interpreter generation,
# detected by attribute (as the pure-Python cloudpickle does).
if hasattr(types.CodeType, "co_exceptiontable"):  # 3.11+
    _CODE_FIELDS = (
        "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals",
        "co_stacksize", "co_flags", "co_code", "co_consts", "co_names",
        "co_varnames", "co_filename", "co_name", "co_qualname", "co_firstlineno",
        "co_linetable", "co_exceptiontable", "co_freevars", "co_cellvars",
    )  # fmt: skip
elif hasattr(types.CodeType, "co_linetable"):  # 3.10
    _CODE_FIELDS = (
        "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals",
        "co_stacksize", "co_flags", "co_code", "co_consts", "co_names",
        "co_varnames", "co_filename", "co_name", "co_firstlineno",
        "co_linetable", "co_freevars", "co_cellvars",
    )  # fmt: skip
else:  # 3.8, 3.9
    _CODE_FIELDS = (
        "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals",
        "co_stacksize", "co_flags", "co_code", "co_consts", "co_names",
        "co_varnames", "co_filename", "co_name", "co_firstlineno",
        "co_lnotab", "co_freevars", "co_cellvars",
    )  # fmt: skip


def _copy_tuple(value):
    # A new tuple with the same items (tuple(t) would return t itself).
    return tuple(iter(value))


def _copy_str(value):
    # A new, non-interned string with the same characters.
    return "".join(value)


#: The file name every code object pickled by value carries instead of its
#: own (as cloudpickle 3.1.3 does): code objects do not use it to run, and a
#: payload then does not depend on where the script, module or notebook cell
#: defining the code lives.
_DYNAMIC_CODE_FILENAME = "<dynamic-code>"


def _dynamic_code_filename(_value):
    # A new string each time, like the other copies: two code objects of one
    # payload must not share it (the memo would write a reference to the
    # first one, which the reference does not).
    return "".join(_DYNAMIC_CODE_FILENAME)


# Fields copied before pickling so that a payload does not depend on which
# objects the compiler happened to share or intern: the loading side builds
# fresh ones, and re-pickling a loaded function must give the same bytes.
# The file name is replaced (see above).
_CODE_FIELD_COPIERS = {
    "co_filename": _dynamic_code_filename,
    "co_name": _copy_str,
    "co_names": _copy_tuple,
    "co_varnames": _copy_tuple,
    "co_freevars": _copy_tuple,
    "co_cellvars": _copy_tuple,
}


def _code_reduce(obj):
    """``(types.CodeType, args)``: the constructor arguments of the running
    interpreter rebuilding the code object ``obj``, with ``"<dynamic-code>"``
    as its file name. Code objects nested in ``co_consts`` (inner functions,
    lambdas, comprehensions before 3.12) are pickled by this reducer too, so
    they carry that file name as well."""
    args = []
    for field in _CODE_FIELDS:
        value = getattr(obj, field)
        copier = _CODE_FIELD_COPIERS.get(field)
        args.append(value if copier is None else copier(value))
    return types.CodeType, tuple(args)


def _cell_reduce(obj):
    """A cell: ``_make_cell(value)``, or ``_make_empty_cell()`` when empty."""
    value = _get_cell_contents(obj)
    if value is _empty_cell_value:
        return _make_empty_cell, ()
    return _make_cell, (value,)


def _classmethod_reduce(obj):
    """A classmethod or staticmethod (or a subclass): rebuilt by calling its
    type on the wrapped function."""
    return type(obj), (obj.__func__,)


def _method_reduce(obj):
    """A bound method: ``types.MethodType(function, self)``.

    On PyPy, builtin methods (``[].append``, ``dict.fromkeys``) are bound
    methods of functions without bytecode, which cannot travel by value:
    those are looked up again on their object, ``getattr(self, name)``, as
    CPython's builtin methods reduce themselves."""
    func = obj.__func__
    if type(func) is types.FunctionType and type(func.__code__) is not types.CodeType:
        return getattr, (obj.__self__, obj.__name__)
    return types.MethodType, (func, obj.__self__)


def _module_reduce(obj):
    """An importable module goes as ``subimport(name)``; another one (created
    on the fly, or registered for pickling by value) goes with its namespace
    as ``dynamic_subimport(name, namespace)``."""
    if _should_pickle_by_reference(obj):
        return subimport, (obj.__name__,)
    # ``__builtins__`` may hold unpicklable things (some tools replace it);
    # the loading side provides its own builtins instead.
    namespace = {k: v for k, v in obj.__dict__.items() if k != "__builtins__"}
    return dynamic_subimport, (obj.__name__, namespace)


# ---------------------------------------------------------------------------
# Classes (helpers shared with the class reducers).
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Tracker ids of classes (and type variables) pickled by value.
#
# The id is derived from the definition: it is a digest of the canonical
# pickle of the class (sets in sorted order, its own id replaced by a
# placeholder), so the same definition gets the same id in every process
# and under every PYTHONHASHSEED, and payloads are deterministic. Distinct
# live classes with identical pickles (a class factory called twice with the
# same values) get distinct ids: the n-th such class, in the order they are
# first pickled, gets a digest of (digest, n). A definition that only a
# custom pickler can pickle (its own dispatch table or persistent_id) falls
# back to a random id.
# ---------------------------------------------------------------------------

# Classes whose digest this thread is computing: they refer to themselves
# (or to each other) through the placeholder while it runs.
_TRACKER_PENDING = threading.local()
_PLACEHOLDER_TRACKER_ID = "0" * 32


def _definition_digest(class_def):
    """Hex digest of the canonical pickle of ``class_def`` (a random hex
    uuid when the default pickler cannot pickle it)."""
    from . import _engine

    try:
        data = _engine._canonical_dumps(class_def, 5)
    except Exception:
        return uuid.uuid4().hex
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _get_or_create_tracker_id(class_def):
    """Return the tracker id of ``class_def``, minting one from its
    definition (see above) and recording it in both directions if it has
    none yet."""
    with _DYNAMIC_CLASS_TRACKER_LOCK:
        tracker_id = _DYNAMIC_CLASS_TRACKER_BY_CLASS.get(class_def)
    if tracker_id is not None:
        return tracker_id
    pending = getattr(_TRACKER_PENDING, "ids", None)
    if pending is None:
        pending = _TRACKER_PENDING.ids = set()
    if id(class_def) in pending:
        return _PLACEHOLDER_TRACKER_ID
    pending.add(id(class_def))
    try:
        digest = _definition_digest(class_def)
    finally:
        pending.discard(id(class_def))
    with _DYNAMIC_CLASS_TRACKER_LOCK:
        tracker_id = _DYNAMIC_CLASS_TRACKER_BY_CLASS.get(class_def)
        if tracker_id is not None:
            # Minted meanwhile (another thread, or a nested pickle).
            return tracker_id
        tracker_id = digest
        n = 0
        while True:
            known = _DYNAMIC_CLASS_TRACKER_BY_ID.get(tracker_id)
            if known is None or known is class_def:
                break
            n += 1
            tracker_id = hashlib.blake2b(f"{digest}:{n}".encode(), digest_size=16).hexdigest()
        _DYNAMIC_CLASS_TRACKER_BY_CLASS[class_def] = tracker_id
        _DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] = class_def
        return tracker_id


def _get_bases(typ):
    """The bases a class is rebuilt with: ``__orig_bases__`` when the class
    itself defines it (generic subclasses, PEP 560), else ``__bases__``."""
    if "__orig_bases__" in getattr(typ, "__dict__", {}):
        return typ.__orig_bases__
    return typ.__bases__


def _extract_class_dict(cls):
    """A copy of ``cls.__dict__`` (keys sorted, as non-interned copies)
    without the entries that are the very same object in the bases'
    namespaces (what the class merely inherits)."""
    own = cls.__dict__
    class_dict = {"".join(key): own[key] for key in sorted(own)}

    bases = cls.__bases__
    if len(bases) == 1:
        inherited = bases[0].__dict__
    else:
        inherited = {}
        # Earlier bases win, as in the method resolution order.
        for base in reversed(bases):
            inherited.update(base.__dict__)

    _missing = object()
    return {
        key: value for key, value in class_dict.items() if inherited.get(key, _missing) is not value
    }


def _class_getnewargs(obj):
    """Arguments of ``_make_skeleton_class`` for the class ``obj``."""
    type_kwargs = {}
    if "__module__" in obj.__dict__:
        type_kwargs["__module__"] = obj.__module__
    dict_descriptor = obj.__dict__.get("__dict__", None)
    if isinstance(dict_descriptor, property):
        type_kwargs["__dict__"] = dict_descriptor
    return (
        type(obj),
        obj.__name__,
        _get_bases(obj),
        type_kwargs,
        _get_or_create_tracker_id(obj),
        None,
    )


def _enum_getnewargs(obj):
    """Arguments of ``_make_skeleton_enum`` for the enum class ``obj``."""
    members = {member.name: member.value for member in obj}
    return (
        obj.__bases__,
        obj.__name__,
        obj.__qualname__,
        members,
        obj.__module__,
        _get_or_create_tracker_id(obj),
        None,
    )


# Entries of an ABC's namespace that are caches rebuilt by isinstance and
# issubclass checks (pure-Python ``_py_abc`` layout): never shipped.
_ABC_CACHE_KEYS = ("_abc_cache", "_abc_negative_cache", "_abc_negative_cache_version")


def _sorted_classes(classes):
    """Live classes of a weak registry, by qualified name: a set's order
    changes from run to run, and payloads should not."""
    live = [c for c in classes if c is not None]
    return sorted(live, key=lambda c: (str(c.__module__), c.__qualname__))


def _abc_registered_subclasses(cls, class_dict):
    """The classes registered as virtual subclasses of the ABC ``cls``, as a
    list; the ABC bookkeeping entries are removed from ``class_dict``."""
    for key in _ABC_CACHE_KEYS:
        class_dict.pop(key, None)
    registry = class_dict.pop("_abc_registry", None)
    if registry is not None:
        # _py_abc: the registry is a WeakSet of classes.
        return _sorted_classes(registry)
    # The C implementation keeps registry and caches in one opaque
    # ``_abc_impl`` object; abc._get_dump exposes the registry as a set of
    # weak references.
    class_dict.pop("_abc_impl", None)
    weak_registry = abc._get_dump(cls)[0]
    return _sorted_classes(ref() for ref in weak_registry)


def _canonical_repr(value):
    """``repr(value)`` with the items of (frozen)sets sorted by their own
    canonical repr, inside tuples, lists and dicts too."""
    kind = type(value)
    if kind in (set, frozenset) and value:
        body = "{" + ", ".join(sorted(_canonical_repr(v) for v in value)) + "}"
        return body if kind is set else f"frozenset({body})"
    if kind is tuple:
        items = [_canonical_repr(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if kind is list:
        return "[" + ", ".join(_canonical_repr(v) for v in value) + "]"
    if kind is dict:
        pairs = (f"{_canonical_repr(k)}: {_canonical_repr(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return repr(value)


class _CanonicalDefault:
    """A parameter default that prints as its canonical repr."""

    def __init__(self, value):
        self.text = _canonical_repr(value)

    def __repr__(self):
        return self.text


def _canonical_dataclass_doc(cls, doc):
    """The docstring ``dataclasses`` generated for ``cls`` (its name and
    signature) with set-valued defaults written in sorted order, or None
    when ``doc`` is not that generated docstring. The generated text shows
    sets in hash order, which changes with PYTHONHASHSEED."""
    import inspect

    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    if doc != cls.__name__ + str(signature).replace(" -> None", ""):
        return None
    parameters = [
        p if p.default is p.empty else p.replace(default=_CanonicalDefault(p.default))
        for p in signature.parameters.values()
    ]
    text = str(signature.replace(parameters=parameters))
    return cls.__name__ + text.replace(" -> None", "")


def _class_getstate(obj):
    """State of a class sent by value: ``(class_dict, {})``, applied by
    ``_class_setstate`` once the skeleton class exists.

    ``class_dict`` holds the class's own namespace entries (see
    :func:`_extract_class_dict`) minus what the skeleton recreates by itself:
    the ``__dict__``/``__weakref__`` descriptors, the member descriptors of
    ``__slots__``, and ABC caches. For ABCs, ``_abc_impl`` becomes the list of
    registered virtual subclasses, which ``_class_setstate`` registers again.
    """
    class_dict = _extract_class_dict(obj)
    class_dict.pop("__weakref__", None)

    # Python 3.15 generates a dataclass's docstring lazily (a descriptor that
    # replaces itself on first access): it travels as it is, and is computed
    # on the loading side.
    doc = class_dict.get("__doc__")
    if "__dataclass_fields__" in class_dict and isinstance(doc, str) and "{" in doc:
        doc = _canonical_dataclass_doc(obj, class_dict["__doc__"])
        if doc is not None:
            class_dict["__doc__"] = doc

    if issubclass(type(obj), abc.ABCMeta):
        class_dict["_abc_impl"] = _abc_registered_subclasses(obj, class_dict)

    if "__slots__" in class_dict:
        # The skeleton's metaclass creates the member descriptors from the
        # __slots__ entry again: shipping them would be redundant.
        slots = obj.__slots__
        if isinstance(slots, str):
            class_dict.pop(slots)
        else:
            for slot in slots:
                class_dict.pop(slot, None)

    # A getset descriptor, not picklable (and recreated by type()).
    class_dict.pop("__dict__", None)

    if sys.version_info >= (3, 14):
        class_dict = _class_dict_with_annotations(obj, class_dict)

    return class_dict, {}


def _class_dict_with_annotations(obj, class_dict):
    """Python 3.14+ (PEP 649/749): ``class_dict`` with the class's annotations
    evaluated into an ``__annotations__`` entry, in place of the annotate
    function (it closes over the class namespace, and the reference
    cloudpickle drops it, losing the annotations) and of the cache Python
    fills on first access.

    The annotate function is called now (the class is not modified), in the
    FORWARDREF format: a name that cannot be resolved yet becomes an
    ``annotationlib.ForwardRef`` instead of failing. The loading side (this
    package's ``_class_setstate`` or the reference's) assigns
    ``__annotations__``, which Python 3.14 accepts on any class.
    """
    annotate = class_dict.pop("__annotate_func__", None)
    cached = class_dict.pop("__annotations_cache__", None)
    if "__annotations__" in class_dict:
        # Stored eagerly (``from __future__ import annotations``, or assigned
        # in the class body): it travels as it is.
        return class_dict
    if isinstance(cached, dict):
        annotations = cached
    elif callable(annotate):
        import annotationlib

        try:
            annotations = annotationlib.call_annotate_function(
                annotate, annotationlib.Format.FORWARDREF, owner=obj
            )
        except Exception:  # noqa: BLE001 - as the reference: not carried
            return class_dict
        if not isinstance(annotations, dict):
            return class_dict
    else:
        return class_dict
    class_dict["__annotations__"] = _portable_annotations(annotations, annotate, obj)
    # Keys stay sorted, as _extract_class_dict made them.
    return {key: class_dict[key] for key in sorted(class_dict)}


# Slots of annotationlib.ForwardRef that hold evaluation context or caches
# (module globals, cells, compiled code): not carried.
_FORWARD_REF_CONTEXT = frozenset(
    (
        "__globals__",
        "__cell__",
        "__code__",
        "__ast_node__",
        "__stringifier_dict__",
        "__resolved_str_cache__",
    )
)


def _portable_annotations(annotations, annotate, owner):
    """A copy of ``annotations`` whose ``ForwardRef`` objects, at any depth
    of generic aliases and unions, are replaced by ones holding only their
    text, module, owner, class-scope flag and extra names: what makes two of
    them equal when they hold no globals or cells, and what can be pickled
    (the originals may hold module globals, cells and cached code objects).
    A value whose forward references sit in something this cannot rebuild
    becomes a single ``ForwardRef`` of its source text."""
    import annotationlib

    strings = None
    portable = {}
    for key, value in annotations.items():
        new = _portable_annotation(value, annotationlib.ForwardRef)
        if _holds_context(new, annotationlib.ForwardRef):
            if strings is None:
                strings = (
                    annotationlib.call_annotate_function(
                        annotate, annotationlib.Format.STRING, owner=owner
                    )
                    if callable(annotate)
                    else {}
                )
            text = strings.get(key)
            if not isinstance(text, str):
                text = annotationlib.type_repr(value)
            new = annotationlib.ForwardRef(text, module=getattr(owner, "__module__", None))
        portable[key] = new
    return portable


def _portable_annotation(value, forward_ref):
    kind = type(value)
    if kind is forward_ref:
        clean = object.__new__(forward_ref)
        for slot in _forward_ref_slots():
            setattr(clean, slot, None if slot in _FORWARD_REF_CONTEXT else getattr(value, slot))
        return clean
    if kind is list or kind is tuple:
        items = [_portable_annotation(item, forward_ref) for item in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return kind(items)
    args = getattr(value, "__args__", None)
    if not isinstance(args, tuple) or not args:
        return value
    new_args = _portable_annotation(args, forward_ref)
    if new_args is args:
        return value
    try:
        if isinstance(value, types.GenericAlias):
            return kind(value.__origin__, new_args)
        if isinstance(value, types.UnionType) or getattr(value, "__origin__", None) is typing.Union:
            return typing.Union[new_args]
        copy_with = getattr(value, "copy_with", None)
        if copy_with is not None:
            return copy_with(new_args)
    except Exception:  # noqa: BLE001 - left as it is; caught by _holds_context
        pass
    return value


def _forward_ref_slots():
    import annotationlib

    return [slot for slot in annotationlib._SLOTS if slot != "__weakref__"]


def _holds_context(value, forward_ref, depth=0):
    """Whether a ``ForwardRef`` holding evaluation context remains in
    ``value`` (searched through ``__args__``, lists and tuples)."""
    if depth > 50:
        return True
    if type(value) is forward_ref:
        return any(getattr(value, slot, None) is not None for slot in _FORWARD_REF_CONTEXT)
    if type(value) in (list, tuple):
        return any(_holds_context(item, forward_ref, depth + 1) for item in value)
    args = getattr(value, "__args__", None)
    if isinstance(args, tuple):
        return any(_holds_context(item, forward_ref, depth + 1) for item in args)
    return False


# Attributes of an Enum class that its metaclass computes from the members
# given to _make_skeleton_enum.
_ENUM_METACLASS_KEYS = (
    "_generate_next_value_",
    "_member_names_",
    "_member_map_",
    "_member_type_",
    "_value2member_map_",
)


def _enum_getstate(obj):
    """State of an enum class sent by value: that of :func:`_class_getstate`
    without the members and the bookkeeping the enum metaclass rebuilds."""
    class_dict, slotstate = _class_getstate(obj)
    for key in _ENUM_METACLASS_KEYS:
        class_dict.pop(key, None)
    for member in obj:
        class_dict.pop(member.name)
    return class_dict, slotstate


def _dynamic_class_reduce(obj):
    """Reduce tuple pickling the class ``obj`` by value: a skeleton class (or
    enum with its members) filled by ``_class_setstate`` once memoized, so
    the class may refer to itself."""
    if issubclass(obj, enum.Enum):
        return (
            _make_skeleton_enum,
            _enum_getnewargs(obj),
            _enum_getstate(obj),
            None,
            None,
            _class_setstate,
        )
    return (
        _make_skeleton_class,
        _class_getnewargs(obj),
        _class_getstate(obj),
        None,
        None,
        _class_setstate,
    )


_NoneType = type(None)
_EllipsisType = type(Ellipsis)
_NotImplementedType = type(NotImplemented)


def _class_reduce(obj):
    """How the class ``obj`` is pickled.

    The types of ``None``, ``...`` and ``NotImplemented`` are ``type(x)``;
    other classes exposed by :mod:`types` only are ``_builtin_type(name)``;
    classes that cannot be imported back (or belong to a module registered
    for pickling by value) go by value. Everything else returns
    ``NotImplemented``: pickle saves the class as a global.
    """
    if obj is _NoneType:
        return type, (None,)
    if obj is _EllipsisType:
        return type, (Ellipsis,)
    if obj is _NotImplementedType:
        return type, (NotImplemented,)
    name = _BUILTIN_TYPE_NAMES.get(obj)
    if name is not None:
        return _builtin_type, (name,)
    if _should_pickle_by_reference(obj):
        return NotImplemented
    return _dynamic_class_reduce(obj)


# ---------------------------------------------------------------------------
# Type variables.
# ---------------------------------------------------------------------------


def _decompose_typevar(obj):
    """Arguments of ``_make_typevar`` for the type variable ``obj``."""
    return (
        obj.__name__,
        obj.__bound__,
        obj.__constraints__,
        obj.__covariant__,
        obj.__contravariant__,
        _get_or_create_tracker_id(obj),
    )


def _typevar_reduce(obj):
    """A ``typing.TypeVar``: by reference (``getattr(module, name)``) when its
    module has it under its name and is not registered for pickling by
    value, otherwise rebuilt by ``_make_typevar`` (with identity tracking)."""
    found = _lookup_module_and_qualname(obj, name=obj.__name__)
    if found is None or _is_registered_pickle_by_value(found[0]):
        return _make_typevar, _decompose_typevar(obj)
    return getattr, found


# ---------------------------------------------------------------------------
# Other types the standard pickle does not handle (or not the way wanted).
# ---------------------------------------------------------------------------


def _file_reduce(obj):
    """An open text file travels as an ``io.StringIO`` holding its whole
    contents, positioned where the file was; ``sys.stdout`` and
    ``sys.stderr`` travel by reference."""
    if not hasattr(obj, "name") or not hasattr(obj, "mode"):
        raise pickle.PicklingError("Cannot pickle files that do not map to an actual file")
    if obj is sys.stdout:
        return getattr, (sys, "stdout")
    if obj is sys.stderr:
        return getattr, (sys, "stderr")
    if obj is sys.stdin:
        raise pickle.PicklingError("Cannot pickle standard input")
    if obj.closed:
        raise pickle.PicklingError("Cannot pickle closed files")
    if hasattr(obj, "isatty") and obj.isatty():
        raise pickle.PicklingError("Cannot pickle files that map to tty objects")
    if "r" not in obj.mode and "+" not in obj.mode:
        raise pickle.PicklingError(
            f"Cannot pickle files that are not opened for reading: {obj.mode}"
        )

    name = obj.name
    try:
        position = obj.tell()
        obj.seek(0)
        contents = obj.read()
        obj.seek(position)
    except OSError as exc:
        raise pickle.PicklingError(f"Cannot pickle file {name} as it cannot be read") from exc

    copy = io.StringIO()
    copy.write(contents)
    copy.seek(position)
    copy.name = name
    return _file_reconstructor, (copy,)


def _logger_reduce(obj):
    """A logger is looked up again by name."""
    return logging.getLogger, (obj.name,)


def _root_logger_reduce(obj):
    """The root logger: ``logging.getLogger()``."""
    return logging.getLogger, ()


def _memoryview_reduce(obj):
    """A memoryview travels as the bytes it shows."""
    return bytes, (obj.tobytes(),)


def _property_reduce(obj):
    """A property (or abstractproperty): rebuilt from its accessors and doc."""
    return property, (obj.fget, obj.fset, obj.fdel, obj.__doc__)


def _getset_descriptor_reduce(obj):
    """A getset descriptor (``type.__dict__["__dict__"]``...): looked up on
    the class that owns it."""
    return getattr, (obj.__objclass__, obj.__name__)


def _mappingproxy_reduce(obj):
    """A read-only mapping proxy over a copy of the mapping."""
    return types.MappingProxyType, (dict(obj),)


def _weakset_reduce(obj):
    """A WeakSet of the objects alive now."""
    return weakref.WeakSet, (list(obj),)


# Dictionary views: only what the view shows travels (not the whole dict).


def _dict_keys_reduce(obj):
    return _make_dict_keys, (list(obj),)


def _dict_values_reduce(obj):
    return _make_dict_values, (list(obj),)


def _dict_items_reduce(obj):
    return _make_dict_items, (dict(obj),)


def _odict_keys_reduce(obj):
    return _make_dict_keys, (list(obj), True)


def _odict_values_reduce(obj):
    return _make_dict_values, (list(obj), True)


def _odict_items_reduce(obj):
    return _make_dict_items, (dict(obj), True)


def _dataclass_field_base_reduce(obj):
    """The field-type sentinels of :mod:`dataclasses` are compared by
    identity: they travel by name."""
    return _get_dataclass_field_type_sentinel, (obj.name,)


# ---------------------------------------------------------------------------
# The type-specific reducers, by exact type (merged into the Pickler's
# dispatch table). Same keys as the pure-Python cloudpickle's table.
# ---------------------------------------------------------------------------

_REDUCERS = {
    classmethod: _classmethod_reduce,
    io.TextIOWrapper: _file_reduce,
    logging.Logger: _logger_reduce,
    logging.RootLogger: _root_logger_reduce,
    memoryview: _memoryview_reduce,
    property: _property_reduce,
    staticmethod: _classmethod_reduce,
    types.CellType: _cell_reduce,
    types.CodeType: _code_reduce,
    types.GetSetDescriptorType: _getset_descriptor_reduce,
    types.ModuleType: _module_reduce,
    types.MethodType: _method_reduce,
    types.MappingProxyType: _mappingproxy_reduce,
    weakref.WeakSet: _weakset_reduce,
    typing.TypeVar: _typevar_reduce,
    _collections_abc.dict_keys: _dict_keys_reduce,
    _collections_abc.dict_values: _dict_values_reduce,
    _collections_abc.dict_items: _dict_items_reduce,
    type(OrderedDict().keys()): _odict_keys_reduce,
    type(OrderedDict().values()): _odict_values_reduce,
    type(OrderedDict().items()): _odict_items_reduce,
    # A function, not a type: never matches an object's type, but kept so
    # that the table has the same keys as the pure-Python one.
    abc.abstractmethod: _classmethod_reduce,
    dataclasses._FIELD_BASE: _dataclass_field_base_reduce,
}
# Deprecated subclasses of classmethod, staticmethod and property, while
# they exist.
for _legacy, _reducer in (
    ("abstractclassmethod", _classmethod_reduce),
    ("abstractstaticmethod", _classmethod_reduce),
    ("abstractproperty", _property_reduce),
):
    if hasattr(abc, _legacy):
        _REDUCERS[getattr(abc, _legacy)] = _reducer
del _legacy, _reducer

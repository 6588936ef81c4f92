"""Bytecode analysis of code objects pickled by value: which global names
a code object (and the code nested in it) uses, and which imported
submodules its function may reach through them.

The engine's function reduction (src/reduce/function_reduction.rs) calls
``_extract_code_globals`` and ``_find_imported_submodules`` through the
bridge and caches their answers per code object. The opcode constants are
names the reference module defines too.
"""

import dis
import opcode
import sys
import types
import weakref

__all__ = [
    "EXTENDED_ARG",
    "GLOBAL_OPS",
    "HAVE_ARGUMENT",
    "LOAD_GLOBAL",
    "STORE_GLOBAL",
    "builtin_code_type",
    "_extract_code_globals",
    "_extract_code_globals_cache",
    "_find_imported_submodules",
    "_walk_global_ops",
]
if "DELETE_GLOBAL" in opcode.opmap:
    __all__.append("DELETE_GLOBAL")


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

"""Bytecode analysis of code objects pickled by value, under the reference
module's names: the opcodes that name globals (which the engine's own walk
of the bytecode reads from here at the bridge install), ``dis``'s view of
them (``_walk_global_ops``), and the engine's functions that answer which
globals a code object uses (``_extract_code_globals``) and which imported
submodules a function may reach through them
(``_find_imported_submodules``).
"""

import dis
import opcode
import weakref

from . import _engine

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


def _walk_global_ops(code):
    """Yield, in bytecode order, the name of every global read, written or
    deleted by ``code`` itself (not by the code objects nested in it), as
    ``dis`` decodes them (the reference's helper; the engine reads the word
    code itself, in ``_extract_code_globals``)."""
    global_ops = frozenset(GLOBAL_OPS)
    for instruction in dis.get_instructions(code):
        if instruction.opcode in global_ops:
            yield instruction.argval


# The global names a code object and the code nested in it use: the
# engine's bytecode walk (src/reduce/code_globals.rs), with the opcodes
# above, cached per code object in the engine.
_extract_code_globals = _engine._extract_code_globals

#: The reference's cache of ``_extract_code_globals``, kept under its name
#: for code that clears it; the engine keeps its own bounded cache
#: (src/cache.rs), so this one stays empty.
_extract_code_globals_cache = weakref.WeakKeyDictionary()


# The already-imported submodules a function may reach through its globals
# (``import xml.etree.ElementTree`` makes ``xml`` a global the code reads
# ``xml.etree.ElementTree`` through): the engine's
# (src/reduce/submodules.rs), which its function reduction calls directly.
_find_imported_submodules = _engine._find_imported_submodules

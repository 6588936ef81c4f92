"""Pickle Python objects that the standard ``pickle`` cannot, by value.

The pickling itself is done by the Rust engine in :mod:`cloudpickle._engine`:
it walks the object graph, memoizes, frames and writes the opcodes. This module
is its public face: the public API, the :class:`Pickler` class as seen from
Python, and the names of the reference module, gathered from the modules that
implement them (``_by_value``, ``_code_analysis``, ``_determinism``,
``_reconstructors``, ``_registry``, ``_type_reducers``).

Payloads are standard pickles: :func:`loads` *is* :func:`pickle.loads`.
"""

# The standard modules the reference module imports are attributes of it
# (and, through ``from .cloudpickle import *``, of the package): code in the
# wild reads some of them there, so they are imported here too.
import _collections_abc  # noqa: F401
import abc  # noqa: F401
import builtins  # noqa: F401
import copyreg
import dataclasses  # noqa: F401
import dis  # noqa: F401
import gc as _gc
import io  # noqa: F401
import itertools  # noqa: F401
import logging  # noqa: F401
import opcode  # noqa: F401
import pickle
import platform  # noqa: F401
import struct  # noqa: F401
import sys
import threading  # noqa: F401
import types
import typing  # noqa: F401
import uuid  # noqa: F401
import warnings  # noqa: F401
import weakref  # noqa: F401
from collections import ChainMap

from . import _by_value, _engine, _failure_trail, _reconstructors
from ._annotations import _portable_class_annotations  # noqa: F401  (for the bridge)
from ._by_value import *  # noqa: F401,F403  (private helpers clients import)
from ._code_analysis import *  # noqa: F401,F403
from ._determinism import *  # noqa: F401,F403
from ._determinism import _canonical_dataclass_doc  # noqa: F401  (for the bridge)
from ._reconstructors import *  # noqa: F401,F403  (names payloads refer to)
from ._registry import *  # noqa: F401,F403  (register_pickle_by_value...)
from ._registry import _PICKLE_BY_VALUE_LOCK, _PICKLE_BY_VALUE_MODULES  # noqa: F401
from ._type_reducers import *  # noqa: F401,F403
from ._type_reducers import _REDUCERS

# The class reconstructors payloads name are the engine's: they return the
# class already loaded under the same tracker id without building a
# skeleton only to discard it, and create plain skeletons themselves; other
# cases go to the Python versions in _reconstructors (which keep that
# module's name). The bridge install below gives them this module's name.
_make_skeleton_class = _engine._make_skeleton_class
_class_setstate = _engine._class_setstate

# No ``__all__``, as in the reference: ``from cloudpickle.cloudpickle import
# *`` (which the package itself does) gives every public name of the module.

#: Protocol used when none is given: the highest the running Python supports,
#: which favours speed between processes running the same Python version.
DEFAULT_PROTOCOL = pickle.HIGHEST_PROTOCOL

# Loading is plain pickle: the reconstructors referenced by payloads are
# ordinary importable functions.
load, loads = pickle.load, pickle.loads

PYPY = sys.implementation.name == "pypy"

# The reference builds its table of the types of the ``types`` module with a
# loop at module level whose variables, the last item of ``types.__dict__``,
# stay in its namespace (and in the package's, through the star import).
# Same names, same values here.
k, v = next(reversed(list(types.__dict__.items())))

# ---------------------------------------------------------------------------
# The Pickler class.
# ---------------------------------------------------------------------------


class Pickler(pickle.Pickler):
    """A ``pickle.Pickler`` whose ``dump`` is done by the Rust engine.

    Subclasses may override ``reducer_override`` (calling
    ``super().reducer_override(obj)`` for everything they do not handle),
    ``persistent_id``, or set ``self.dispatch_table`` in ``__init__``, exactly
    as with ``pickle.Pickler``. The memo persists across ``dump`` calls on one
    instance.
    """

    # Reducers defined by cloudpickle itself (private); chained in front of
    # copyreg's table so `Pickler.dispatch_table[T] = f` and
    # `copyreg.pickle(T, f)` both take effect.
    _dispatch_table = dict(_REDUCERS)
    dispatch_table = ChainMap(_dispatch_table, copyreg.dispatch_table)
    # Older alias, still mutated by some clients.
    dispatch = dispatch_table

    if PYPY:

        def __new__(cls, *args, **kwargs):
            # PyPy's _pickle.Pickler takes pickle.Pickler's arguments in
            # __new__ too and refuses any other, so a subclass whose
            # __init__ takes its own (loky's `reducers`) could not be built.
            # As with _pickle.c, the arguments are __init__'s alone.
            return super().__new__(cls)

    def __init__(self, file, protocol=None, buffer_callback=None):
        if protocol is None:
            protocol = DEFAULT_PROTOCOL
        # pickle.Pickler validates the file, the protocol and the callback
        # and raises the errors users expect.
        super().__init__(file, protocol=protocol, buffer_callback=buffer_callback)
        # Maps id(func.__globals__) to the globals dict shipped for it, so
        # functions sharing globals share them after loading.
        self.globals_ref = {}
        self.proto = int(protocol)
        write = getattr(file, "write", None)
        if write is None:
            # PyPy's pickle.Pickler does not check the file; _pickle.c does.
            raise TypeError("file must have a 'write' attribute")
        self._cp_write = write
        self._cp_buffer_callback = buffer_callback
        # Engine-side state (memo) that persists across dump() calls.
        self._cp_state = _engine.PicklerState()

    def dump(self, obj):
        """Write the pickled representation of ``obj`` to the file."""
        cls = type(self)
        override = None
        if cls.reducer_override is not Pickler.reducer_override or (
            "reducer_override" in self.__dict__
        ):
            override = self.reducer_override
        persistent_id = getattr(self, "persistent_id", None)
        if persistent_id is not None and _is_default_persistent_id(self):
            persistent_id = None
        return _pickler_dump(
            self._cp_state,
            obj,
            self._cp_write,
            self.proto,
            self._cp_buffer_callback,
            override,
            persistent_id,
            self.dispatch_table,
            self.globals_ref,
            bool(self.fast),
        )

    def clear_memo(self):
        """Forget the objects pickled so far by this instance."""
        self._cp_state.clear_memo()
        super().clear_memo()

    @property
    def memo(self):
        """The objects pickled so far, as pickle.Pickler exposes them: a
        proxy whose ``copy()`` is ``{id(obj): (index, obj)}``."""
        return _MemoProxy(self._cp_state)

    @memo.setter
    def memo(self, value):
        if isinstance(value, _MemoProxy):
            items = value._state.memo_items()
        else:
            if hasattr(value, "copy") and not isinstance(value, dict):
                value = value.copy()
            if not isinstance(value, dict):
                raise TypeError(
                    f"'memo' attribute must be a PicklerMemoProxy object or dict, "
                    f"not {type(value).__name__}"
                )
            items = [(obj, index) for index, obj in value.values()]
        self._cp_state.set_memo(items)

    # The reference's function reducers, as methods (some subclasses call
    # them): the engine's own function reduction. The engine does not call
    # these methods: overriding them does not change what `dump` writes.
    def _dynamic_function_reduce(self, func):
        """The by-value reduce tuple of the function ``func``."""
        return _by_value._dynamic_function_reduce(func, self.globals_ref)

    def _function_reduce(self, obj):
        """``NotImplemented`` when the function ``obj`` goes by reference,
        otherwise its by-value reduce tuple."""
        return _by_value._function_reduce(obj, self.globals_ref)

    def _function_getnewargs(self, func):
        """The arguments of ``_make_function`` for ``func``."""
        return _by_value._function_getnewargs(func, self.globals_ref)

    def reducer_override(self, obj):
        """Type-agnostic reducer consulted before the dispatch table.

        Returns a reduce tuple for objects cloudpickle pickles specially
        (functions and classes that must go by value), ``NotImplemented``
        for everything else so that the regular pickle rules apply.
        """
        return _engine.reducer_override(self, obj)


class _MemoProxy:
    """View of a cloudpickle Pickler's memo (like ``_pickle.PicklerMemoProxy``)."""

    __slots__ = ("_state",)

    def __init__(self, state):
        self._state = state

    def copy(self):
        return {id(obj): (index, obj) for obj, index in self._state.memo_items()}

    def clear(self):
        self._state.clear_memo()

    def __len__(self):
        return self._state.memo_len()


# pickle.Pickler's own default `persistent_id` method (CPython 3.13 added one
# that always returns None), or None. PyPy's is a data descriptor that stores
# what is assigned to the attribute: whatever it gives is the user's.
_DEFAULT_PERSISTENT_ID = getattr(pickle.Pickler, "persistent_id", None)
if hasattr(type(_DEFAULT_PERSISTENT_ID), "__set__"):
    _DEFAULT_PERSISTENT_ID = None


def _is_default_persistent_id(pickler):
    """True when ``pickler.persistent_id`` is pickle.Pickler's own default, not
    a user's (defined on a subclass or assigned on the instance). Decided from
    where the attribute comes from, not from the bound method's type: on PyPy a
    builtin method and a Python method have the same type."""
    if (
        _DEFAULT_PERSISTENT_ID is None
        or "persistent_id" in getattr(pickler, "__dict__", ())
        or getattr(type(pickler), "persistent_id", None) is not _DEFAULT_PERSISTENT_ID
    ):
        return False
    # CPython 3.14+ keeps a value assigned on the instance outside its
    # __dict__: the attribute must still be the default method, bound.
    method = getattr(pickler, "persistent_id", None)
    return type(method) is types.BuiltinMethodType and getattr(method, "__self__", None) is pickler


#: Older name of :class:`Pickler`.
CloudPickler = Pickler


# dumps and dump go straight to the engine: no Pickler object, no BytesIO,
# no Python frame. They behave as `Pickler(file, protocol,
# buffer_callback).dump(obj)` would, with the class-level dispatch table.
dumps = _engine.dumps
dump = _engine.dump
_pickler_dump = _engine.pickler_dump

if PYPY:
    # PyPy's C API emulation converts a tuple argument, and the tuples
    # nested in it, to C structures before the engine runs: a tuple nested
    # too deep raises RecursionError at the call itself, where the engine
    # cannot turn it into the PicklingError it raises for every structure
    # too deep to pickle. The same conversion here (the engine lets no
    # RecursionError out itself).
    _TOO_DEEP = "Could not pickle object as excessively deep recursion required."

    def dumps(obj, protocol=None, buffer_callback=None):
        try:
            return _engine.dumps(obj, protocol, buffer_callback)
        except RecursionError as exc:
            raise pickle.PicklingError(_TOO_DEEP) from exc

    def dump(obj, file, protocol=None, buffer_callback=None):
        try:
            return _engine.dump(obj, file, protocol, buffer_callback)
        except RecursionError as exc:
            raise pickle.PicklingError(_TOO_DEEP) from exc

    def _pickler_dump(*args):
        try:
            return _engine.pickler_dump(*args)
        except RecursionError as exc:
            raise pickle.PicklingError(_TOO_DEEP) from exc

    dumps.__doc__ = _engine.dumps.__doc__
    dump.__doc__ = _engine.dump.__doc__
# The one bridge to the engine: every object of this package it uses (the
# reconstructors payloads name, the Python helpers, the class tracker, the
# wording of failure paths, the Pickler class, its dispatch table and the
# by-value registry), read and
# checked once, here (src/bridge.rs). It also gives the reconstructors and
# `dumps`/`dump` this module's name as `__module__` (the one place where a
# `__module__` is set): payloads name them as the reference does, and
# pickle finds them here.
_engine._install_bridge(
    sys.modules[__name__],
    _reconstructors,
    _failure_trail,
    Pickler,
    Pickler.dispatch_table,
    _PICKLE_BY_VALUE_MODULES,
)

# Cached class reductions hold their classes: let go of them before each
# full collection, so classes the program dropped are freed as usual. PyPy
# has no gc.callbacks, and there the engine keeps no such cache (it cannot
# read type version tags).
if hasattr(_gc, "callbacks"):
    _gc.callbacks.append(_engine._release_class_cache)

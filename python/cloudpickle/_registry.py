"""The modules registered for pickling by value: their functions and classes
(and those of their submodules) travel with their code even though they
could be imported by name. The engine reads the set itself (it is part of
the bridge, src/bridge.rs) when it decides how an object travels
(src/by_value.rs)."""

import sys
import threading
import types

__all__ = [
    "_PICKLE_BY_VALUE_MODULES",
    "list_registry_pickle_by_value",
    "register_pickle_by_value",
    "unregister_pickle_by_value",
]

_PICKLE_BY_VALUE_MODULES = set()
_PICKLE_BY_VALUE_LOCK = threading.Lock()


def register_pickle_by_value(module):
    """Pickle the functions and classes of ``module`` (and of its submodules
    when it is a package) by value instead of by reference."""
    if not isinstance(module, types.ModuleType):
        raise ValueError(f"Input should be a module object, got {str(module)} instead")
    # The module must be imported (in sys.modules) under its own name, so
    # that the name recorded here designates it unambiguously.
    if module.__name__ not in sys.modules:
        raise ValueError(
            f"{module} was not imported correctly, have you used an "
            "`import` statement to access it?"
        )
    with _PICKLE_BY_VALUE_LOCK:
        _PICKLE_BY_VALUE_MODULES.add(module.__name__)


def unregister_pickle_by_value(module):
    """Undo :func:`register_pickle_by_value`."""
    if not isinstance(module, types.ModuleType):
        raise ValueError(f"Input should be a module object, got {str(module)} instead")
    with _PICKLE_BY_VALUE_LOCK:
        if module.__name__ not in _PICKLE_BY_VALUE_MODULES:
            raise ValueError(f"{module} is not registered for pickle by value")
        _PICKLE_BY_VALUE_MODULES.remove(module.__name__)


def list_registry_pickle_by_value():
    """The names of the modules registered for pickling by value."""
    with _PICKLE_BY_VALUE_LOCK:
        return _PICKLE_BY_VALUE_MODULES.copy()

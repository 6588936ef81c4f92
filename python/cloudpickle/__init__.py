"""cloudpickle: pickle Python code and data by value, with a Rust engine.

A drop-in replacement for the pure-Python ``cloudpickle`` package: same names,
same payloads (standard pickles that ``pickle.loads`` reads), faster pickling.
"""

from . import cloudpickle
from ._inspection import (  # noqa: E402
    LargePayloadWarning,
    inspect_payload,
    warn_on_large_payloads,
)
from .cloudpickle import *  # noqa: F401,F403
from .cloudpickle import (  # noqa: F401
    DEFAULT_PROTOCOL,
    CloudPickler,
    Pickler,
    dump,
    dumps,
    list_registry_pickle_by_value,
    load,
    loads,
    register_pickle_by_value,
    unregister_pickle_by_value,
)

__doc__ = cloudpickle.__doc__

__version__ = "3.1.3"

__all__ = [
    "__version__",
    "Pickler",
    "CloudPickler",
    "dumps",
    "loads",
    "dump",
    "load",
    "register_pickle_by_value",
    "unregister_pickle_by_value",
    "inspect_payload",
    "warn_on_large_payloads",
    "LargePayloadWarning",
]

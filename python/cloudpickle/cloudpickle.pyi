"""Type stubs for cloudpickle.cloudpickle (the public API)."""

import pickle
from collections import ChainMap
from types import ModuleType
from typing import IO, Any, Callable, Dict, Optional, Set

DEFAULT_PROTOCOL: int
PYPY: bool

def dumps(
    obj: Any,
    protocol: Optional[int] = None,
    buffer_callback: Optional[Callable[[pickle.PickleBuffer], Any]] = None,
) -> bytes: ...
def dump(
    obj: Any,
    file: IO[bytes],
    protocol: Optional[int] = None,
    buffer_callback: Optional[Callable[[pickle.PickleBuffer], Any]] = None,
) -> None: ...

loads = pickle.loads
load = pickle.load

def register_pickle_by_value(module: ModuleType) -> None: ...
def unregister_pickle_by_value(module: ModuleType) -> None: ...
def list_registry_pickle_by_value() -> Set[str]: ...
def is_tornado_coroutine(func: Any) -> bool: ...  # deprecated, warns

class Pickler(pickle.Pickler):
    _dispatch_table: Dict[type, Callable[[Any], Any]]
    dispatch_table: ChainMap[type, Callable[[Any], Any]]  # type: ignore[assignment]
    dispatch: ChainMap[type, Callable[[Any], Any]]
    globals_ref: Dict[int, Dict[str, Any]]
    proto: int
    def __init__(
        self,
        file: IO[bytes],
        protocol: Optional[int] = None,
        buffer_callback: Optional[Callable[[pickle.PickleBuffer], Any]] = None,
    ) -> None: ...
    def dump(self, obj: Any) -> None: ...
    def clear_memo(self) -> None: ...
    def reducer_override(self, obj: Any) -> Any: ...

CloudPickler = Pickler

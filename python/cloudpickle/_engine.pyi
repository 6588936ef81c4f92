"""Type stubs for the Rust engine of cloudpickle."""

from types import ModuleType
from typing import Any, Callable, Dict, Optional, Protocol, Set

class _Writable(Protocol):
    def write(self, data: Any, /) -> Any: ...

def dumps(
    obj: Any,
    protocol: Optional[int] = None,
    buffer_callback: Optional[Callable[[Any], Any]] = None,
) -> bytes: ...
def dump(
    obj: Any,
    file: _Writable,
    protocol: Optional[int] = None,
    buffer_callback: Optional[Callable[[Any], Any]] = None,
) -> None: ...

class PicklerState:
    def __init__(self) -> None: ...
    def clear_memo(self) -> None: ...
    def memo_len(self) -> int: ...

def pickler_dump(
    state: PicklerState,
    obj: Any,
    write: Callable[[Any], Any],
    protocol: Optional[int],
    buffer_callback: Optional[Callable[[Any], Any]],
    reducer_override: Optional[Callable[[Any], Any]],
    persistent_id: Optional[Callable[[Any], Any]],
    dispatch_table: Any,
    globals_ref: Optional[Dict[int, Dict[str, Any]]],
) -> None: ...
def reducer_override(pickler: Any, obj: Any) -> Any: ...
def _install_bridge(
    public: ModuleType,
    reconstructors: ModuleType,
    pickler_class: type,
    default_table: Any,
    by_value_registry: Set[str],
) -> None: ...
def _set_fast_paths(enabled: bool) -> bool: ...
def _in_pure_region() -> bool: ...
def _canonical_dumps(obj: Any, protocol: int = 5) -> bytes: ...
def _set_large_payload_threshold(
    threshold: Optional[int], callback: Optional[Callable[[Any, int, int], Any]] = None
) -> None: ...
def _release_class_cache(phase: str, info: Dict[str, Any]) -> None: ...

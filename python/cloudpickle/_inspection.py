"""What a payload costs, and what it will do when loaded.

Two views of the same question:

* :func:`inspect_payload` looks at an object *before* it is shipped: which
  functions, classes and modules travel by value, which modules the loading
  side will import, and how many bytes each captured value (global, closure
  variable, default, class attribute) accounts for, largest first;
* :func:`inspect_pickle` (and ``python -m cloudpickle inspect FILE``) reads
  a payload *without loading it*: only the opcodes are decoded, so nothing
  named in the payload is imported or run.

:func:`warn_on_large_payloads` turns on a warning, issued by ``dumps`` when a
payload exceeds a size, that names the largest contributors.
"""

import collections
import dataclasses
import io
import pickletools
import threading
import types
import warnings

from . import _engine
from . import cloudpickle as _cp

__all__ = [
    "LargePayloadWarning",
    "PayloadReport",
    "PickleReport",
    "inspect_payload",
    "inspect_pickle",
    "warn_on_large_payloads",
]

# Modules every cloudpickle payload may name without it being news.
_ALWAYS_ALLOWED = ("cloudpickle", "builtins", "copyreg", "_codecs", "copy_reg", "__builtin__")


def _humanize(n):
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


# ---------------------------------------------------------------------------
# The object side.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class PayloadReport:
    """What pickling an object with cloudpickle ships.

    ``contributors`` lists ``(description, nbytes)`` for every value captured
    by something pickled by value, largest first. ``nbytes`` is the size of
    that value pickled on its own: an estimate, since a value shared by
    several functions (or with the rest of the payload) is counted in each
    place, and ``None`` when the value cannot be pickled (the description
    then names the error).
    """

    total_bytes: int
    by_value: list
    imports: list
    contributors: list

    def __str__(self):
        lines = [f"payload: {_humanize(self.total_bytes)} ({self.total_bytes} bytes)"]
        if self.by_value:
            lines.append("by value:")
            lines.extend(f"  {kind} {name}" for kind, name in self.by_value)
        if self.imports:
            lines.append("imports on loading: " + ", ".join(self.imports))
        if self.contributors:
            lines.append("largest captured values:")
            for description, size in self.contributors[:20]:
                lines.append(f"  {_humanize(size):>10}  {description}")
        return "\n".join(lines)


_BY_VALUE_KINDS = {
    "_make_function": "function",
    "_make_skeleton_class": "class",
    "_make_skeleton_enum": "class",
    "_make_typevar": "typevar",
    "dynamic_subimport": "module",
}


class _Recorder(_cp.Pickler):
    """A pickler that notes what cloudpickle reduces by value."""

    def __init__(self, file, protocol=None):
        super().__init__(file, protocol=protocol)
        self.found = []
        self._seen = set()
        # Modules reach the dispatch table, not reducer_override.
        module_reduce = _cp.Pickler.dispatch_table[types.ModuleType]

        def record_module(module):
            rv = module_reduce(module)
            self._note(module, rv)
            return rv

        self.dispatch_table = collections.ChainMap(
            {types.ModuleType: record_module}, _cp.Pickler.dispatch_table
        )

    def _note(self, obj, rv):
        if isinstance(rv, tuple) and rv:
            kind = _BY_VALUE_KINDS.get(getattr(rv[0], "__name__", None))
            if kind is not None and id(obj) not in self._seen:
                self._seen.add(id(obj))
                self.found.append((kind, obj))

    def reducer_override(self, obj):
        rv = super().reducer_override(obj)
        self._note(obj, rv)
        return rv


def _size_of(value, protocol):
    try:
        return len(_cp.dumps(value, protocol=protocol)), None
    except Exception as exc:  # the value is the problem: say so
        return None, type(exc).__name__


def _name_of(obj):
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))


def _captured_by_function(func):
    """(description, value) for what the function ``func`` captures."""
    name = _name_of(func)
    code = func.__code__
    out = []
    namespace = func.__globals__
    for global_name in _cp._extract_code_globals(code):
        if global_name in namespace:
            value = namespace[global_name]
            if not isinstance(value, types.ModuleType):
                out.append((f"global {global_name!r} of function {name!r}", value))
    for var, cell in zip(code.co_freevars, func.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        out.append((f"closure variable {var!r} of function {name!r}", value))
    defaults = func.__defaults__ or ()
    first = code.co_argcount - len(defaults)
    for i, value in enumerate(defaults):
        out.append((f"default {code.co_varnames[first + i]!r} of function {name!r}", value))
    for key, value in (func.__kwdefaults__ or {}).items():
        out.append((f"default {key!r} of function {name!r}", value))
    for key, value in func.__dict__.items():
        out.append((f"attribute {key!r} of function {name!r}", value))
    return out


def _is_code_like(value):
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return True
    return isinstance(value, (types.FunctionType, type, types.ModuleType))


def _captured_by_namespace(owner_kind, owner_name, namespace):
    out = []
    for key, value in namespace.items():
        if key.startswith("__") and key.endswith("__"):
            continue
        if _is_code_like(value):
            continue  # reported as by-value entries of their own
        out.append((f"{owner_kind} attribute {key!r} of {owner_kind} {owner_name!r}", value))
    return out


def inspect_payload(obj, protocol=None):
    """Report what ``cloudpickle.dumps(obj, protocol)`` ships (see
    :class:`PayloadReport`). Raises what ``dumps`` raises if ``obj`` cannot be
    pickled."""
    buffer = io.BytesIO()
    recorder = _Recorder(buffer, protocol=protocol)
    recorder.dump(obj)
    payload = buffer.getvalue()
    by_value = []
    captured = []
    for kind, found in recorder.found:
        name = _name_of(found)
        by_value.append((kind, name))
        if kind == "function":
            captured.extend(_captured_by_function(found))
        elif kind == "class":
            captured.extend(_captured_by_namespace("class", name, dict(vars(found))))
        elif kind == "module":
            captured.extend(_captured_by_namespace("module", name, dict(vars(found))))
    contributors = []
    for description, value in captured:
        size, error = _size_of(value, protocol)
        if error is not None:
            description = f"{description} (cannot be pickled: {error})"
        contributors.append((description, size))
    contributors.sort(key=lambda item: -1 if item[1] is None else item[1], reverse=True)
    imports = inspect_pickle(payload).imports
    return PayloadReport(
        total_bytes=len(payload), by_value=by_value, imports=imports, contributors=contributors
    )


# ---------------------------------------------------------------------------
# The payload side: decoding opcodes only.
# ---------------------------------------------------------------------------


class PayloadError(ValueError):
    """The data is not a readable pickle."""


@dataclasses.dataclass
class PickleReport:
    """What a payload holds, read from its opcodes without loading it."""

    total_bytes: int
    globals: list  # "module.name", in order of first use
    imports: list  # modules the loader imports (outside cloudpickle's own)
    functions: list  # qualified names of functions carried by value
    classes: list  # names of classes carried by value
    modules: list  # names of modules carried by value
    largest_constants: list  # (opcode, size) of the largest str/bytes constants
    out_of_band_buffers: int

    def disallowed(self, allow=()):
        """Imported modules outside ``allow`` (prefix match on dotted names)
        and cloudpickle's own modules."""
        allowed = tuple(_ALWAYS_ALLOWED) + tuple(allow)
        return [
            module
            for module in self.imports
            if not any(module == a or module.startswith(a + ".") for a in allowed)
        ]

    def as_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        lines = [f"payload: {_humanize(self.total_bytes)} ({self.total_bytes} bytes)"]
        lines.append("imports on loading: " + (", ".join(self.imports) or "(none)"))
        lines.append("globals: " + (", ".join(self.globals) or "(none)"))
        for label, names in (
            ("functions by value", self.functions),
            ("classes by value", self.classes),
            ("modules by value", self.modules),
        ):
            if names:
                lines.append(f"{label} ({len(names)}): " + ", ".join(names))
        if self.largest_constants:
            lines.append("largest constants:")
            for opcode, size in self.largest_constants:
                lines.append(f"  {_humanize(size):>10}  {opcode}")
        if self.out_of_band_buffers:
            lines.append(f"out-of-band buffers: {self.out_of_band_buffers}")
        return "\n".join(lines)


_STRING_OPS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
}
_BLOB_OPS = _STRING_OPS | {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_CLOUDPICKLE_MODULES = ("cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast")


def inspect_pickle(data):
    """Read the payload ``data`` (bytes) without loading it. Raises
    :class:`PayloadError` when it is not a complete pickle."""
    if not data:
        raise PayloadError("empty input: not a pickle")
    # The last pushed value (a string, a global marker or None) and the memo,
    # enough to resolve STACK_GLOBAL's module and name.
    pushed = []  # (position, value) of pushes that may feed STACK_GLOBAL
    memo = {}
    last = None
    globals_seen = []
    consumed = set()
    strings = []  # (position, text)
    markers = []  # (position, reconstructor name)
    blobs = []
    buffers = 0
    stopped = False
    try:
        for opcode, arg, pos in pickletools.genops(data):
            name = opcode.name
            if name == "STOP":
                stopped = True
                break
            if name in _BLOB_OPS and arg is not None:
                blobs.append((name, len(arg)))
            if name in _STRING_OPS:
                text = arg if isinstance(arg, str) else None
                last = ("str", text, pos)
                pushed.append(last)
                if text is not None:
                    strings.append((pos, text))
                continue
            if name == "MEMOIZE":
                memo[len(memo)] = last
                continue
            if name in _MEMO_PUT:
                memo[arg] = last
                continue
            if name in _MEMO_GET:
                value = memo.get(arg)
                if value is not None and value[0] == "str":
                    # The same string again, pushed here.
                    last = ("str", value[1], pos)
                    if value[1] is not None:
                        strings.append((pos, value[1]))
                else:
                    last = value
                    if value is not None and value[0] == "global":
                        markers.append((pos, value[1]))
                pushed.append(last)
                continue
            if name in ("GLOBAL", "INST", "OBJ") and isinstance(arg, str):
                module, _, attr = arg.partition(" ")
                last = ("global", (module, attr), pos)
                globals_seen.append((module, attr))
                markers.append((pos, (module, attr)))
                pushed.append(last)
                continue
            if name == "STACK_GLOBAL":
                if len(pushed) >= 2 and all(p and p[0] == "str" for p in pushed[-2:]):
                    (_, module, mpos), (_, attr, apos) = pushed[-2], pushed[-1]
                    consumed.update((mpos, apos))
                    del pushed[-2:]
                    target = (module, attr)
                else:
                    target = ("?", "?")
                last = ("global", target, pos)
                globals_seen.append(target)
                markers.append((pos, target))
                pushed.append(last)
                continue
            if name == "NEXT_BUFFER":
                buffers += 1
            last = None
            pushed.append(None)
            if len(pushed) > 64:
                del pushed[:-64]
    except Exception as exc:  # genops: ValueError on truncated or unknown opcodes
        raise PayloadError(f"not a readable pickle: {exc}") from None
    if not stopped:
        raise PayloadError("truncated pickle: no STOP opcode")

    free_strings = [(p, s) for p, s in strings if p not in consumed]

    def next_string(after):
        for p, s in free_strings:
            if p > after:
                return s
        return "?"

    functions, classes, modules = [], [], []
    for pos, (module, attr) in markers:
        if module not in _CLOUDPICKLE_MODULES:
            continue
        if attr == "_make_function":
            functions.append(pos)
        elif attr in ("_make_skeleton_class", "_make_skeleton_enum"):
            classes.append(next_string(pos))
        elif attr == "dynamic_subimport":
            modules.append(next_string(pos))
    # A function's qualified name is the value of the "__qualname__" entry
    # of its state, which follows the _make_function call.
    qualnames = [next_string(p) for p, s in free_strings if s == "__qualname__"]
    function_names = qualnames[: len(functions)] + ["?"] * (len(functions) - len(qualnames))

    ordered = []
    for module, attr in globals_seen:
        dotted = f"{module}.{attr}"
        if dotted not in ordered:
            ordered.append(dotted)
    imports = sorted(
        {
            module
            for module, _ in globals_seen
            if module not in _CLOUDPICKLE_MODULES and module not in ("builtins", "copyreg")
        }
    )
    # subimport("name") and dynamic_subimport import modules by name too.
    for pos, (module, attr) in markers:
        if module in _CLOUDPICKLE_MODULES and attr == "subimport":
            target = next_string(pos)
            if target != "?" and target not in imports:
                imports.append(target)
    imports.sort()
    blobs.sort(key=lambda item: item[1], reverse=True)
    return PickleReport(
        total_bytes=len(data),
        globals=ordered,
        imports=imports,
        functions=function_names,
        classes=classes,
        modules=modules,
        largest_constants=blobs[:10],
        out_of_band_buffers=buffers,
    )


# ---------------------------------------------------------------------------
# The opt-in large-payload warning.
# ---------------------------------------------------------------------------


class LargePayloadWarning(UserWarning):
    """A single ``dumps`` produced a payload above the threshold set with
    :func:`warn_on_large_payloads`."""


_threshold = None
_in_callback = threading.local()


def _on_large_payload(obj, nbytes, protocol):
    """Called by the engine after a ``dumps`` whose payload is above the
    threshold."""
    if getattr(_in_callback, "active", False):
        return  # the report below pickles values itself
    _in_callback.active = True
    try:
        try:
            report = inspect_payload(obj, protocol)
            top = ", ".join(
                f"{description} ({_humanize(size)})"
                for description, size in report.contributors[:3]
            )
        except Exception:
            top = ""
        message = f"cloudpickle.dumps produced a {_humanize(nbytes)} payload ({nbytes} bytes)"
        if top:
            message += f"; largest captured values: {top}"
        warnings.warn(LargePayloadWarning(message), stacklevel=2)
    finally:
        _in_callback.active = False


def warn_on_large_payloads(threshold_bytes):
    """Warn (:class:`LargePayloadWarning`) whenever one ``dumps`` call makes a
    payload larger than ``threshold_bytes``, naming the largest captured
    values. ``None`` turns the warning off (the default). Returns the
    previous threshold. When off, ``dumps`` pays one comparison."""
    global _threshold
    if threshold_bytes is not None:
        threshold_bytes = int(threshold_bytes)
        if threshold_bytes < 0:
            raise ValueError("threshold_bytes must be >= 0 or None")
    previous = _threshold
    _engine._set_large_payload_threshold(threshold_bytes, _on_large_payload)
    _threshold = threshold_bytes
    return previous

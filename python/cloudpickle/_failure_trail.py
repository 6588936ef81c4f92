"""Words for the path to an object that could not be pickled.

When pickling fails, the engine collects the steps from the object passed to
``dumps`` down to the failing object (see ``src/pickler/trail.rs``) and calls
:func:`_annotate`, which turns them into lines such as::

    Path to the object that could not be pickled:
      list (the object being pickled)
      -> item 3: function 'process'
      -> closure variable 'client': Client object
      -> attribute '_lock': _thread.lock object

and attaches them to the exception: as a note (``add_note``) on Python 3.11
and later, appended to the message on older versions. The exception keeps
its type, so existing ``except`` clauses still work.
"""

import reprlib
import sys
import types

_HEADER = "Path to the object that could not be pickled:"

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


def _describe(obj):
    """A short description of an object on the path."""
    if isinstance(obj, types.FunctionType):
        return f"function {obj.__qualname__!r}"
    if isinstance(obj, type):
        return f"class {obj.__qualname__!r}"
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__!r}"
    if isinstance(obj, types.CodeType):
        return f"code object {obj.co_name!r}"
    cls = type(obj)
    if cls.__module__ == "builtins":
        if isinstance(obj, (str, bytes, int, float)):
            return f"{cls.__qualname__} {_short.repr(obj)}"
        try:
            n = len(obj)
            size = f" of {n} item{'' if n == 1 else 's'}"
        except Exception:
            size = ""
        return (
            f"{cls.__qualname__}{size}"
            if isinstance(obj, (list, tuple, dict, set))
            else (f"{cls.__qualname__} object")
        )
    return f"{cls.__module__}.{cls.__qualname__} object"


def _key(key):
    return _short.repr(key)


class _Tokens:
    """The steps, outermost first, with look-ahead matching."""

    def __init__(self, steps):
        self.items = list(reversed(steps))
        self.pos = 0

    def done(self):
        return self.pos >= len(self.items)

    def match(self, *pattern):
        """Match kinds (and values where given as (kind, value)) from the
        current position; returns the matched steps or None."""
        end = self.pos + len(pattern)
        if end > len(self.items):
            return None
        found = self.items[self.pos : end]
        for (kind, value), want in zip(found, pattern):
            if isinstance(want, tuple):
                if kind != want[0] or value != want[1]:
                    return None
            elif kind != want:
                return None
        self.pos = end
        return found


def _function_step(func, tokens):
    """An edge below a function pickled by value, in the layout of its
    reduction (``_make_function`` arguments, then ``(__dict__, slotstate)``
    state)."""
    code = getattr(func, "__code__", None)
    slot = ("state", "object", ("item", 1), "object")
    m = tokens.match(*slot, ("value", "__globals__"), "object", "value", "object")
    if m:
        return f"global variable {m[6][1]!r}", m[7][1]
    m = tokens.match(
        *slot,
        ("value", "__closure__"),
        "object",
        "item",
        "object",
        "args",
        "object",
        ("item", 0),
        "object",
    )
    if m:
        index = m[6][1]
        names = code.co_freevars if code is not None else ()
        name = names[index] if index < len(names) else f"#{index}"
        return f"closure variable {name!r}", m[11][1]
    m = tokens.match(*slot, ("value", "__defaults__"), "object", "item", "object")
    if m:
        index = m[6][1]
        label = f"default #{index}"
        if code is not None and func.__defaults__:
            first = code.co_argcount - len(func.__defaults__)
            if 0 <= first + index < code.co_argcount:
                label = f"default of parameter {code.co_varnames[first + index]!r}"
        return label, m[7][1]
    m = tokens.match(*slot, ("value", "__kwdefaults__"), "object", "value", "object")
    if m:
        return f"default of keyword-only parameter {m[6][1]!r}", m[7][1]
    m = tokens.match(*slot, ("value", "__annotations__"), "object", "value", "object")
    if m:
        return f"annotation of {m[6][1]!r}", m[7][1]
    m = tokens.match(*slot, "value", "object")
    if m:
        return f"{m[4][1]}", m[5][1]
    m = tokens.match("state", "object", ("item", 0), "object", "value", "object")
    if m:
        return f"attribute {m[4][1]!r}", m[5][1]
    m = tokens.match("args", "object", ("item", 0), "object")
    if m:
        return "code", m[3][1]
    return None


def _class_step(cls, tokens):
    """An edge below a class pickled by value (``_make_skeleton_class`` or
    ``_make_skeleton_enum`` arguments, then ``(class_dict, {})``)."""
    m = tokens.match("state", "object", ("item", 0), "object", "value", "object")
    if m:
        return f"class attribute {m[4][1]!r}", m[5][1]
    m = tokens.match("args", "object", ("item", 3), "object", "value", "object")
    if m and isinstance(m[3][1], dict):
        return f"value of member {m[4][1]!r}", m[5][1]
    m = tokens.match("args", "object", ("item", 2), "object", "item", "object")
    if m:
        return f"base class #{m[4][1]}", m[5][1]
    return None


def _instance_step(tokens):
    """An edge below an instance: attributes in its state, arguments of its
    reduction."""
    m = tokens.match("state", "object", "value", "object")
    if m and isinstance(m[1][1], dict):
        return f"attribute {m[2][1]!r}", m[3][1]
    if m:
        tokens.pos -= 4
    m = tokens.match("state", "object", "item", "object", "value", "object")
    if m and isinstance(m[1][1], tuple) and isinstance(m[3][1], dict):
        return f"attribute {m[4][1]!r}", m[5][1]
    if m:
        tokens.pos -= 6
    m = tokens.match("args", "object", "item", "object")
    if m:
        return f"argument {m[0][1] + m[2][1]} of its reduction", m[3][1]
    return None


_GENERIC = {
    "set item": "an item",
    "callable": "the class or callable of its reduction",
    "state": "its state",
    "listitems": "an item of its reduction's listitems",
    "dictitems": "an item of its reduction's dictitems",
    "persistent id": "its persistent id",
    "args": "its reduction's arguments",
}


def _generic_step(tokens):
    kind, value = tokens.items[tokens.pos]
    tokens.pos += 1
    if kind == "item":
        label = f"item {value}"
    elif kind == "value":
        label = f"value of key {_key(value)}"
    elif kind == "key":
        label = f"key {_key(value)}"
    elif kind == "omitted":
        return f"... {value} steps omitted ...", None
    else:
        label = _GENERIC.get(kind, kind)
    if not tokens.done() and tokens.items[tokens.pos][0] == "object":
        obj = tokens.items[tokens.pos][1]
        tokens.pos += 1
        return label, obj
    return label, _NOTHING


_NOTHING = object()


def describe_steps(steps):
    """The lines of the path (without header), outermost first."""
    tokens = _Tokens(steps)
    if tokens.done() or tokens.items[0][0] != "object":
        return []
    current = tokens.items[0][1]
    tokens.pos = 1
    lines = [f"  {_describe(current)} (the object being pickled)"]
    while not tokens.done():
        if tokens.items[tokens.pos][0] == "object":
            # An object saved while saving another without a recorded edge
            # (e.g. pickled separately by a reducer).
            current = tokens.items[tokens.pos][1]
            tokens.pos += 1
            lines.append(f"  -> inside it: {_describe(current)}")
            continue
        step = None
        if isinstance(current, types.FunctionType):
            step = _function_step(current, tokens)
        elif isinstance(current, type):
            step = _class_step(current, tokens)
        elif not isinstance(current, (list, tuple, dict, set, frozenset)):
            step = _instance_step(tokens)
        if step is None:
            step = _generic_step(tokens)
        label, obj = step
        if obj is None:
            lines.append(f"  {label}")
            continue
        if obj is _NOTHING:
            lines.append(f"  -> {label}")
            continue
        current = obj
        lines.append(f"  -> {label}: {_describe(obj)}")
    return lines


def _annotate(exc, steps):
    """Attach the path described by ``steps`` (innermost first, as the
    engine collects them) to the exception ``exc``."""
    previous = getattr(exc, "_cloudpickle_steps", None)
    if previous is not None:
        # Already annotated by a pickling call nested in this one (a
        # reducer that pickles part of the object itself): one path.
        steps = list(previous) + list(steps)
    if len(steps) < 2:
        return
    note = "\n".join([_HEADER, *describe_steps(steps)])
    try:
        exc._cloudpickle_steps = steps
    except Exception:
        return
    old_note = getattr(exc, "_cloudpickle_note", None)
    exc._cloudpickle_note = note
    if sys.version_info >= (3, 11):
        notes = getattr(exc, "__notes__", None)
        if old_note is not None and notes and old_note in notes:
            notes.remove(old_note)
        exc.add_note(note)
        return
    original = getattr(exc, "_cloudpickle_args", None)
    if original is None:
        original = exc.args
        exc._cloudpickle_args = original
    if len(original) == 1 and isinstance(original[0], str):
        exc.args = (f"{original[0]}\n{note}",)
    elif not original:
        exc.args = (note,)

"""Class annotations survive pickling by value, on every Python version.

Python 3.14 evaluates annotations lazily (PEP 649/749): a class holds an
annotate function instead of an ``__annotations__`` dict, and the reference
cloudpickle drops that function, so its payloads load with no annotations.
This package evaluates them when pickling, in the FORWARDREF format (names
not defined yet become ``annotationlib.ForwardRef`` objects), and ships the
dict: after loading, ``__annotations__`` equals the original's, forward
references included, and the payload still loads with the reference
cloudpickle (3.1.3, which assigns ``__annotations__`` like any attribute).

Python 3.15 also generates a dataclass's docstring lazily; it must survive
too, computed on the loading side.
"""

import sys

import _reference_venv
import cloudpickle
import pytest
from _child_process import load_in_child

PY314 = sys.version_info >= (3, 14)

# Loaded back by the reference this release (it is what a worker that only
# has the pure-Python cloudpickle runs).
REFERENCE_VERSION = "3.1.3"

# Describes annotations as plain data a child can send back: a class among
# the pickled ones is named, a ForwardRef is its text, module, scope flag and
# owner, anything else its repr. The parent applies the same function to the
# originals.
DESCRIBE = """
def describe_value(value, classes):
    for name, cls in classes.items():
        if value is cls:
            return ("class", name)
    if type(value).__name__ == "ForwardRef":
        owner = getattr(value, "__owner__", None)
        return (
            "forwardref", value.__forward_arg__, value.__forward_module__,
            getattr(value, "__forward_is_class__", None),
            describe_value(owner, classes) if owner is not None else None,
        )
    args = getattr(value, "__args__", None)
    if args is not None and getattr(value, "__origin__", None) is not None:
        return ("generic", repr(value.__origin__), tuple(describe_value(a, classes) for a in args))
    return ("repr", repr(value))


def describe(classes, annotations_of):
    out = {}
    for name, cls in classes.items():
        try:
            ann = annotations_of(cls)
        except Exception as exc:
            out[name] = ("raised", type(exc).__name__)
            continue
        out[name] = {key: describe_value(value, classes) for key, value in ann.items()}
    return out
"""

_describe_ns = {}
exec(DESCRIBE, _describe_ns)
describe = _describe_ns["describe"]


def make_classes():
    import dataclasses
    import typing

    class Plain:
        a: int
        b: "Later"  # noqa: F821 - a string annotation stays a string
        c: "Plain"
        d: list[int]
        e: typing.Optional[str]

    class Movie(typing.TypedDict):
        title: str
        year: int
        sequel: "Movie"

    class Point(typing.NamedTuple):
        x: int
        y: float = 0.0

    @dataclasses.dataclass
    class Record:
        name: str
        tags: set = dataclasses.field(default_factory=set)

    class Unannotated:
        value = 1

    classes = {
        "Plain": Plain,
        "Movie": Movie,
        "Point": Point,
        "Record": Record,
        "Unannotated": Unannotated,
    }
    if PY314:
        classes["SelfRef"] = _make_self_referring_class()
    return classes


def _make_self_referring_class():
    # Python 3.14+ only: evaluated lazily, the name is defined by then (an
    # earlier Python evaluates it in the class body and raises NameError).
    class SelfRef:
        next: SelfRef  # noqa: F821
        others: list[SelfRef]  # noqa: F821

    return SelfRef


PROBE = (
    DESCRIBE
    + """
def probe(obj):
    return describe(obj, lambda cls: cls.__annotations__)
"""
)


def _annotations(cls):
    return cls.__annotations__


def test_annotations_survive_in_a_fresh_process():
    classes = make_classes()
    payload = cloudpickle.dumps(classes)
    expected = describe(classes, _annotations)
    assert expected["Plain"]["c"] in (("class", "Plain"), ("repr", "'Plain'"))
    # Before 3.10 a class without annotations has no `__annotations__`.
    unannotated = {} if sys.version_info >= (3, 10) else ("raised", "AttributeError")
    assert expected["Unannotated"] == unannotated
    assert load_in_child(payload, PROBE) == expected


def test_annotations_survive_several_dumps():
    # The class reduction is cached; the annotations must be there every time.
    classes = make_classes()
    expected = describe(classes, _annotations)
    for _ in range(3):
        assert load_in_child(cloudpickle.dumps(classes), PROBE) == expected


@pytest.fixture(scope="module")
def reference_python():
    return _reference_venv.reference_python(REFERENCE_VERSION)


def test_payload_loads_in_the_reference(reference_python):
    classes = make_classes()
    payload = cloudpickle.dumps(classes)
    check = (
        "import cloudpickle\n"
        f"assert cloudpickle.__version__ == {REFERENCE_VERSION!r}\n"
        "assert not hasattr(cloudpickle.cloudpickle, '_engine')\n"
    )
    result = load_in_child(payload, PROBE, prelude=check, python=reference_python, isolated=True)
    assert result == describe(classes, _annotations)


@pytest.mark.skipif(not PY314, reason="lazy annotations are Python 3.14+")
class TestLazyAnnotations:
    def test_the_annotate_function_is_replaced_by_the_dict(self):
        import cloudpickle.cloudpickle as cp

        classes = make_classes()
        for name in ("Plain", "SelfRef", "Movie", "Point", "Record"):
            cls = classes[name]
            assert "__annotations__" not in cls.__dict__
            class_dict, _ = cp._class_getstate(cls)
            assert "__annotate_func__" not in class_dict, name
            assert "__annotations_cache__" not in class_dict, name
            assert set(class_dict["__annotations__"]) == set(cls.__annotations__), name
            # Pickling did not evaluate them on the original (no cache left).
        fresh = make_classes()["Plain"]
        cp._class_getstate(fresh)
        assert "__annotations_cache__" not in fresh.__dict__

    def test_loading_in_the_same_process_keeps_the_annotate_function(self):
        # The tracker hands back the original class: it keeps its own
        # annotate function, as with the reference (whose public suite
        # checks `__annotate_func__` after two round trips).
        import abc
        import pickle

        import cloudpickle.cloudpickle as cp
        from cloudpickle import _reconstructors

        class Shape(abc.ABC):
            sides: int

        annotate = Shape.__annotate__
        assert callable(annotate)
        once = pickle.loads(cloudpickle.dumps(Shape))
        twice = pickle.loads(cloudpickle.dumps(once))
        assert once is Shape and twice is Shape
        assert Shape.__annotate__ is annotate
        assert hasattr(twice, "__annotate_func__")
        assert Shape.__annotations__ == {"sides": int}
        for setstate in (cp._class_setstate, _reconstructors._class_setstate):
            setstate(Shape, cp._class_getstate(Shape))
            assert Shape.__annotate__ is annotate
            # A class without an annotate function of its own (a fresh
            # skeleton) gets the annotations from the state.
            skeleton = type("Skeleton", (), {})
            setstate(skeleton, ({"__annotations__": {"sides": int}}, {}))
            assert skeleton.__annotations__ == {"sides": int}

    @pytest.mark.parametrize("behaviour", ["raises", "mutates", "not_a_dict", "other_names"])
    def test_hostile_annotate_function_at_load(self, behaviour):
        # Loading in the defining process asks the class's own annotate
        # function which names it gives (to keep it rather than the carried
        # dict). A function that raises, returns something else or changes
        # the class meanwhile must not break the load: the class then gets
        # the carried annotations, or keeps its function when the names agree.
        import pickle

        class Shape:
            sides: int

        payload = cloudpickle.dumps(Shape)
        calls = []

        def annotate(format):
            calls.append(format)
            if behaviour == "raises":
                raise RuntimeError("annotate failed")
            if behaviour == "mutates":
                Shape.seen = len(calls)
                if hasattr(Shape, "sides_doc"):
                    del Shape.sides_doc
                return {"sides": int}
            if behaviour == "not_a_dict":
                return ["sides"]
            return {"corners": int}

        Shape.__annotate__ = annotate
        Shape.sides_doc = "how many"
        loaded = pickle.loads(payload)
        assert loaded is Shape
        assert calls, "the annotate function was not consulted"
        if behaviour == "mutates":
            assert Shape.__annotate__ is annotate
            assert Shape.seen == len(calls)
            assert Shape.__annotations__ == {"sides": int}
        else:
            assert Shape.__annotations__ == {"sides": int}
        # The class still pickles and loads in a fresh process.
        assert pickle.loads(cloudpickle.dumps(Shape)) is Shape

    def test_names_not_defined_yet_become_forward_refs(self):
        import annotationlib

        def make():
            class Early:
                x: NotDefinedAnywhere  # noqa: F821
                y: int
                z: list[AlsoMissing]  # noqa: F821

            return {"Early": Early}

        classes = make()
        with pytest.raises(NameError):
            getattr(classes["Early"], "__annotations__")  # noqa: B009
        payload = cloudpickle.dumps(classes)

        def forwardref(cls):
            return annotationlib.get_annotations(cls, format=annotationlib.Format.FORWARDREF)

        expected = describe(classes, forwardref)
        assert expected["Early"]["x"][:2] == ("forwardref", "NotDefinedAnywhere")
        # Loaded, the dict is there: __annotations__ no longer raises.
        assert load_in_child(payload, PROBE) == expected

    def test_forward_refs_with_a_module_compare_equal(self):
        # typing turns a string annotation of a TypedDict into a ForwardRef
        # holding its module: the loaded one must equal a fresh one.
        probe = """
def probe(obj):
    import annotationlib
    ref = obj.__annotations__["sequel"]
    return (
        type(ref) is annotationlib.ForwardRef,
        ref == annotationlib.ForwardRef("Movie", module=ref.__forward_module__),
        ref.__globals__, ref.__cell__,
    )
"""
        movie = make_classes()["Movie"]
        original = movie.__annotations__["sequel"]
        assert load_in_child(cloudpickle.dumps(movie), probe) == (
            True, original == type(original)("Movie", module=original.__forward_module__),
            None, None,
        )  # fmt: skip


def test_dataclass_docstring_survives():
    # Pickled before anything reads __doc__: on 3.15 it is still the lazy
    # descriptor dataclasses puts there.
    record = make_classes()["Record"]
    payload = cloudpickle.dumps(record)
    probe = """
def probe(obj):
    return obj.__doc__, obj(name="n").tags
"""
    assert load_in_child(payload, probe) == (record.__doc__, set())

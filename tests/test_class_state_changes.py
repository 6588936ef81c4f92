"""Classes pickled by value reflect changes made between dumps calls: the
engine reuses a class's reduction only while the class is unmodified."""

import abc
import pickle

import cloudpickle


def make_class():
    class Config:
        threshold = 1
        tags = ["a"]

        def value(self):
            return self.threshold

    return Config


def loaded_elsewhere(payload):
    """Load ``payload`` in a fresh process and return ``(threshold, tags,
    value())``."""
    import subprocess
    import sys

    code = (
        "import pickle, sys; cls = pickle.loads(sys.stdin.buffer.read()); "
        "print(repr((cls.threshold, cls.tags, cls().value(), "
        "getattr(cls, 'extra', None))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return eval(out.stdout)


def test_attribute_set_after_a_first_dumps_is_shipped():
    cls = make_class()
    first = cloudpickle.dumps(cls)
    assert cloudpickle.dumps(cls) == first
    cls.threshold = 5
    cls.extra = "new"
    second = cloudpickle.dumps(cls)
    assert second != first
    assert loaded_elsewhere(first) == (1, ["a"], 1, None)
    assert loaded_elsewhere(second) == (5, ["a"], 5, "new")


def test_deleted_attribute_and_replaced_method():
    cls = make_class()
    cloudpickle.dumps(cls)
    del cls.tags
    cls.tags = ["b"]
    cls.value = lambda self: 42
    assert loaded_elsewhere(cloudpickle.dumps(cls)) == (1, ["b"], 42, None)


def test_mutated_attribute_value_is_shipped():
    cls = make_class()
    cloudpickle.dumps(cls)
    cls.tags.append("z")
    assert loaded_elsewhere(cloudpickle.dumps(cls)) == (1, ["a", "z"], 1, None)


def test_change_in_a_base_class_is_seen_by_subclasses():
    base = make_class()

    class Child(base):
        pass

    cloudpickle.dumps(Child)
    base.threshold = 9
    payload = cloudpickle.dumps(Child)
    assert loaded_elsewhere(payload) == (9, ["a"], 9, None)


def test_abc_registration_after_a_first_dumps_is_shipped():
    class Shape(abc.ABC):
        @abc.abstractmethod
        def area(self): ...

    class Unrelated:
        pass

    cloudpickle.dumps(Shape)
    Shape.register(Unrelated)
    # Both travel in one payload, so the registration can be checked after
    # loading in this process (the tracker ids map back to these classes).
    shape, unrelated = pickle.loads(cloudpickle.dumps((Shape, Unrelated)))
    assert issubclass(unrelated, shape)
    payload = cloudpickle.dumps(Shape)
    assert b"Unrelated" in payload

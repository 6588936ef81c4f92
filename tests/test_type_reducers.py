"""The reducers of files, loggers, descriptors, methods, mapping proxies,
memoryviews, WeakSets, dictionary views and dataclass field sentinels
(src/reduce/type_reducers.rs), against the rules of cloudpickle 3.1.3
written out below as plain Python: the same reduce tuples, the same bytes
through ``dumps`` as ``pickle`` gives with these rules in its dispatch
table, and the same exceptions."""

import abc
import collections
import dataclasses
import gc
import io
import logging
import pickle
import sys
import types
import weakref

import cloudpickle
import pytest
from _helpers import PROTOCOLS
from cloudpickle import _engine
from cloudpickle import cloudpickle as cp

# ---------------------------------------------------------------------------
# The rules, written out: what each reducer returns for a well-formed object.
# ---------------------------------------------------------------------------

ORACLE = {
    "_classmethod_reduce": lambda obj: (type(obj), (obj.__func__,)),
    "_method_reduce": lambda obj: (types.MethodType, (obj.__func__, obj.__self__)),
    "_logger_reduce": lambda obj: (logging.getLogger, (obj.name,)),
    "_root_logger_reduce": lambda obj: (logging.getLogger, ()),
    "_memoryview_reduce": lambda obj: (bytes, (obj.tobytes(),)),
    "_property_reduce": lambda obj: (property, (obj.fget, obj.fset, obj.fdel, obj.__doc__)),
    "_getset_descriptor_reduce": lambda obj: (getattr, (obj.__objclass__, obj.__name__)),
    "_mappingproxy_reduce": lambda obj: (types.MappingProxyType, (dict(obj),)),
    "_weakset_reduce": lambda obj: (weakref.WeakSet, (list(obj),)),
    "_dict_keys_reduce": lambda obj: (cp._make_dict_keys, (list(obj),)),
    "_dict_values_reduce": lambda obj: (cp._make_dict_values, (list(obj),)),
    "_dict_items_reduce": lambda obj: (cp._make_dict_items, (dict(obj),)),
    "_odict_keys_reduce": lambda obj: (cp._make_dict_keys, (list(obj), True)),
    "_odict_values_reduce": lambda obj: (cp._make_dict_values, (list(obj), True)),
    "_odict_items_reduce": lambda obj: (cp._make_dict_items, (dict(obj), True)),
    "_dataclass_field_base_reduce": lambda obj: (
        cp._get_dataclass_field_type_sentinel,
        (obj.name,),
    ),
}


class Holder:
    pass


def getter(self):
    return 1


def setter(self, value):
    pass


HELD = [Holder(), Holder()]
ORDERED = collections.OrderedDict([("x", 1), ("y", [2, 3])])
PLAIN = {"a": 1, "b": (2, "two")}


def cases():
    """(reducer name, object, whether it is plain data that ``pickle`` can
    write with the written-out rules in its dispatch table)."""
    yield "_classmethod_reduce", classmethod(getter), False
    yield "_classmethod_reduce", staticmethod(getter), False
    if hasattr(abc, "abstractclassmethod"):
        yield "_classmethod_reduce", abc.abstractclassmethod(getter), False
    yield "_method_reduce", collections.Counter().most_common, True
    yield "_logger_reduce", logging.getLogger("type_reducers.test"), True
    yield "_root_logger_reduce", logging.getLogger(), True
    yield "_memoryview_reduce", memoryview(b"abcdef"), True
    yield "_memoryview_reduce", memoryview(bytearray(b"abcdef"))[1:4], True
    yield "_property_reduce", property(getter, setter, None, "doc"), False
    yield "_property_reduce", property(len), True
    yield "_getset_descriptor_reduce", types.FunctionType.__dict__["__code__"], True
    yield "_getset_descriptor_reduce", type.__dict__["__dict__"], True
    yield "_mappingproxy_reduce", types.MappingProxyType(PLAIN), True
    yield "_weakset_reduce", weakref.WeakSet(HELD), False
    yield "_weakset_reduce", weakref.WeakSet(), True
    yield "_dict_keys_reduce", PLAIN.keys(), True
    yield "_dict_values_reduce", PLAIN.values(), True
    yield "_dict_items_reduce", PLAIN.items(), True
    yield "_odict_keys_reduce", ORDERED.keys(), True
    yield "_odict_values_reduce", ORDERED.values(), True
    yield "_odict_items_reduce", ORDERED.items(), True
    for sentinel in (dataclasses._FIELD, dataclasses._FIELD_CLASSVAR, dataclasses._FIELD_INITVAR):
        yield "_dataclass_field_base_reduce", sentinel, True


CASES = list(cases())
IDS = [f"{name}-{type(obj).__name__}-{i}" for i, (name, obj, _) in enumerate(CASES)]


def same_reduction(actual, expected):
    """Equal reduce tuples whose callables are the very same objects."""
    assert type(actual) is tuple and len(actual) == 2
    assert actual[0] is expected[0]
    assert type(actual[1]) is tuple
    assert actual[1] == expected[1]
    for got, want in zip(actual[1], expected[1]):
        assert type(got) is type(want)


@pytest.mark.parametrize("name, obj, plain", CASES, ids=IDS)
def test_reduction_is_the_written_out_rule(name, obj, plain):
    same_reduction(getattr(cp, name)(obj), ORACLE[name](obj))


class OraclePickler(pickle.Pickler):
    """``pickle`` with cloudpickle's rule for the types that builtins does
    not name (``types.MethodType``...): ``_builtin_type(name)``."""

    def reducer_override(self, obj):
        if isinstance(obj, type) and obj in cp._BUILTIN_TYPE_NAMES:
            return cp._builtin_type, (cp._BUILTIN_TYPE_NAMES[obj],)
        return NotImplemented


PLAIN_CASES = [(case, id_) for case, id_ in zip(CASES, IDS) if case[2]]


@pytest.mark.parametrize(
    "name, obj, plain", [case for case, _ in PLAIN_CASES], ids=[id_ for _, id_ in PLAIN_CASES]
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_same_bytes_as_pickle_with_the_written_out_rules(name, obj, plain, protocol):
    buf = io.BytesIO()
    oracle_pickler = OraclePickler(buf, protocol=protocol)
    oracle_pickler.dispatch_table = {type(obj): ORACLE[name]}
    oracle_pickler.dump(obj)
    assert cloudpickle.dumps(obj, protocol=protocol) == buf.getvalue()


def test_the_table_holds_the_engines_reducers():
    for cls, reducer in cp._REDUCERS.items():
        assert reducer is getattr(_engine, reducer.__name__), cls
        assert getattr(cp, reducer.__name__) is reducer


def test_method_reduce_reads_the_bound_method():
    counter = collections.Counter("abca")
    func, (function, owner) = cp._method_reduce(counter.most_common)
    assert func is types.MethodType
    assert function is collections.Counter.most_common and owner is counter


# ---------------------------------------------------------------------------
# Files.
# ---------------------------------------------------------------------------


@pytest.fixture
def text_path(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("hello\nworld\n")
    return path


@pytest.mark.parametrize("mode", ["r", "r+", "a+", "w+"])
def test_file_travels_as_a_string_io_at_its_position(text_path, mode):
    with open(text_path, mode) as f:
        if "w" in mode:
            f.write("hello\nworld\n")
        f.seek(3)
        func, (copy,) = cp._file_reduce(f)
        assert f.tell() == 3  # put back where it was
        assert func is cp._file_reconstructor
        assert type(copy) is io.StringIO
        assert copy.getvalue() == "hello\nworld\n"
        assert copy.tell() == 3 and copy.name == str(text_path)
        for protocol in PROTOCOLS[2:]:
            loaded = pickle.loads(cloudpickle.dumps(f, protocol=protocol))
            assert loaded.read() == "lo\nworld\n"


def test_standard_streams():
    assert cp._file_reduce(sys.stdout) == (getattr, (sys, "stdout"))
    assert cp._file_reduce(sys.stderr) == (getattr, (sys, "stderr"))
    with pytest.raises(pickle.PicklingError, match=r"^Cannot pickle standard input$"):
        cp._file_reduce(sys.stdin)


def test_file_errors(text_path, tmp_path):
    with pytest.raises(
        pickle.PicklingError, match=r"^Cannot pickle files that do not map to an actual file$"
    ):
        cp._file_reduce(io.StringIO("no name, no mode"))
    closed = open(text_path)
    closed.close()
    with pytest.raises(pickle.PicklingError, match=r"^Cannot pickle closed files$"):
        cp._file_reduce(closed)
    with (
        open(tmp_path / "out.txt", "w") as f,
        pytest.raises(
            pickle.PicklingError, match=r"^Cannot pickle files that are not opened for reading: w$"
        ),
    ):
        cp._file_reduce(f)
    with (
        open(tmp_path / "out.txt", "a") as f,
        pytest.raises(
            pickle.PicklingError, match=r"^Cannot pickle files that are not opened for reading: a$"
        ),
    ):
        cloudpickle.dumps(f)


class FakeFile:
    """Duck-typed file: the reducer reads only attributes and methods."""

    def __init__(self, mode="r", tty=False, fail=None):
        self.name = "fake.txt"
        self.mode = mode
        self.closed = False
        self._tty = tty
        self._fail = fail
        self._data = io.StringIO("0123456789")
        self._data.seek(4)

    def isatty(self):
        return self._tty

    def tell(self):
        return self._data.tell()

    def seek(self, pos):
        return self._data.seek(pos)

    def read(self):
        if self._fail is not None:
            raise self._fail
        return self._data.read()


def test_file_tty():
    with pytest.raises(
        pickle.PicklingError, match=r"^Cannot pickle files that map to tty objects$"
    ):
        cp._file_reduce(FakeFile(tty=True))


def test_file_mode_is_formatted_with_percent():
    # "%s" % mode, as the reference words it: a tuple mode gives its item.
    with pytest.raises(
        pickle.PicklingError, match=r"^Cannot pickle files that are not opened for reading: w$"
    ):
        cp._file_reduce(FakeFile(mode=("w",)))


def test_file_os_error_is_chained():
    error = OSError("unreadable")
    with pytest.raises(pickle.PicklingError) as info:
        cp._file_reduce(FakeFile(fail=error))
    assert str(info.value) == "Cannot pickle file fake.txt as it cannot be read"
    assert info.value.__cause__ is error
    assert info.value.__context__ is error
    assert info.value.__suppress_context__


def test_file_other_errors_propagate_unchanged():
    error = ValueError("not an OSError")
    with pytest.raises(ValueError) as info:
        cp._file_reduce(FakeFile(fail=error))
    assert info.value is error


def test_fake_file_reads_whole_contents():
    fake = FakeFile()
    func, (copy,) = cp._file_reduce(fake)
    assert copy.getvalue() == "0123456789" and copy.tell() == 4 and copy.name == "fake.txt"
    assert fake.tell() == 4


# ---------------------------------------------------------------------------
# Python code running inside the reducers, and bad input.
# ---------------------------------------------------------------------------


class DroppingFile(FakeFile):
    """Each method drops the references it can and collects garbage."""

    def tell(self):
        gc.collect()
        return super().tell()

    def read(self):
        data = super().read()
        self.__dict__.pop("name", None)  # the reducer read it already
        gc.collect()
        return data


def test_file_whose_methods_drop_references():
    func, (copy,) = cp._file_reduce(DroppingFile())
    assert copy.name == "fake.txt" and copy.getvalue() == "0123456789"


class RaisingProperty(property):
    @property
    def fset(self):
        raise RuntimeError("fset unavailable")


def test_descriptor_attributes_raising_propagate():
    with pytest.raises(RuntimeError, match="fset unavailable"):
        cp._property_reduce(RaisingProperty(getter))


class Shrinking(dict):
    pass


@pytest.mark.parametrize(
    "name, bad, error",
    [
        ("_classmethod_reduce", 42, AttributeError),
        ("_method_reduce", 42, AttributeError),
        ("_logger_reduce", 42, AttributeError),
        ("_root_logger_reduce", 42, None),
        ("_memoryview_reduce", b"bytes", AttributeError),
        ("_property_reduce", 42, AttributeError),
        ("_getset_descriptor_reduce", 42, AttributeError),
        ("_mappingproxy_reduce", 42, TypeError),
        ("_weakset_reduce", 42, TypeError),
        ("_dict_keys_reduce", 42, TypeError),
        ("_dict_values_reduce", None, TypeError),
        ("_dict_items_reduce", [1, 2], TypeError),
        ("_odict_keys_reduce", 42, TypeError),
        ("_odict_values_reduce", 42, TypeError),
        ("_odict_items_reduce", [(1,)], ValueError),
        ("_dataclass_field_base_reduce", 42, AttributeError),
        ("_file_reduce", 42, pickle.PicklingError),
    ],
)
def test_bad_input_raises(name, bad, error):
    reducer = getattr(cp, name)
    if error is None:
        reducer(bad)  # reads nothing of its argument
        return
    with pytest.raises(error):
        reducer(bad)
    with pytest.raises(TypeError):
        reducer()


def test_released_memoryview():
    view = memoryview(b"abc")
    view.release()
    with pytest.raises(ValueError):
        cp._memoryview_reduce(view)


def test_logger_reduce_names_the_current_get_logger(monkeypatch):
    def replacement(name=None):
        return logging.root

    monkeypatch.setattr(logging, "getLogger", replacement)
    assert cp._logger_reduce(logging.root)[0] is replacement
    assert cp._root_logger_reduce(logging.root)[0] is replacement

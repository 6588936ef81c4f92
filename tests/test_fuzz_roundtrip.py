"""Differential fuzzing of code and classes: generated function sources and
class definitions are executed in a fresh namespace (so they pickle by
value), pickled, loaded, and must behave exactly like the originals. The
``fuzz`` hypothesis profile runs 100,000 cases per test (see conftest)."""

import pickle

import cloudpickle
from hypothesis import given
from hypothesis import strategies as st

NAMES = ("a", "b", "c")
consts = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from(["'s'", "'tt'", "2.5", "None", "True"]),
)


def expressions(depth=2):
    leaf = st.one_of(st.sampled_from(NAMES + ("G", "k")), st.integers(-50, 50).map(str))
    if depth == 0:
        return leaf
    sub = expressions(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(sub, sub).map(lambda t: f"max({t[0]}, {t[1]})"),
        sub.map(lambda e: f"len({{{e}, 1, 2}})"),
        sub.map(lambda e: f"sum(x * {e} for x in range(3))"),
        sub.map(lambda e: f"(1 if {e} in frozenset({{3, 5, 'x'}}) else 0)"),
    )


@st.composite
def function_sources(draw):
    """A factory returning a closure over ``k`` that reads the global ``G``
    and has defaults, and the arguments to call it with."""
    body = draw(expressions())
    default = draw(st.integers(-5, 5))
    k = draw(st.integers(-20, 20))
    g = draw(st.integers(-20, 20))
    source = (
        f"G = {g}\n"
        "def factory(k):\n"
        f"    def f(a, b={default}, *, c=2):\n"
        f"        return {body}\n"
        "    return f\n"
        f"made = factory({k})\n"
    )
    args = draw(st.tuples(st.integers(-9, 9), st.integers(-9, 9), st.integers(-9, 9)))
    return source, args


def outcome(func, *args, **kwargs):
    try:
        return ("ok", func(*args, **kwargs))
    except Exception as exc:
        return ("error", type(exc).__name__)


@given(function_sources())
def test_generated_functions_round_trip(case):
    """Every generated function at every protocol that can carry it (so a
    run of N examples checks N cases per protocol)."""
    source, (a, b, c) = case
    namespace = {"__name__": "fuzzed_module"}
    exec(compile(source, "<fuzzed>", "exec"), namespace)
    func = namespace["made"]
    for protocol in (2, 3, 4, 5):
        payload = cloudpickle.dumps(func, protocol=protocol)
        loaded = pickle.loads(payload)
        assert outcome(loaded, a, b, c=c) == outcome(func, a, b, c=c)
        assert outcome(loaded, a) == outcome(func, a)
        # Deterministic: the same function pickles to the same bytes again.
        assert cloudpickle.dumps(func, protocol=protocol) == payload


attribute_values = st.recursive(
    st.one_of(
        st.integers(), st.text(max_size=5), st.none(), st.booleans(), st.floats(allow_nan=False)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.frozensets(st.integers(), max_size=4),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.text(alphabet="abcdefgh", min_size=1, max_size=4), attribute_values, max_size=5
    ),
    st.integers(-10, 10),
)
def test_generated_classes_round_trip(attributes, offset):
    """Every generated class at every protocol from 2 (so a run of N
    examples checks N cases per protocol)."""
    for protocol in (2, 3, 4, 5):
        check_class_round_trip(attributes, offset, protocol)


def check_class_round_trip(attributes, offset, protocol):
    namespace = {"__name__": "fuzzed_classes"}
    exec(
        "class Base:\n"
        "    def method(self, x):\n"
        f"        return x + {offset}\n"
        "class Made(Base):\n"
        "    __slots__ = ('slot',)\n"
        "    def __init__(self, v):\n"
        "        self.slot = v\n"
        "    @property\n"
        "    def doubled(self):\n"
        "        return self.method(self.slot) * 2\n",
        namespace,
    )
    cls = namespace["Made"]
    for key, value in attributes.items():
        setattr(cls, "attr_" + key, value)
    payload = cloudpickle.dumps(cls, protocol=protocol)
    instance_payload = cloudpickle.dumps(cls(3), protocol=protocol)
    # In this process the class tracker would give back ``cls`` itself:
    # forget it, so that loading rebuilds the class from the payload.
    module = cloudpickle.cloudpickle
    tracker = module._get_or_create_tracker_id(cls)
    with module._DYNAMIC_CLASS_TRACKER_LOCK:
        del module._DYNAMIC_CLASS_TRACKER_BY_ID[tracker]
    loaded = pickle.loads(payload)
    assert loaded is not cls and loaded.__name__ == "Made"
    instance = pickle.loads(instance_payload)
    assert type(instance) is loaded
    assert instance.doubled == cls(3).doubled
    assert loaded(5).method(1) == cls(5).method(1)
    for key, value in attributes.items():
        assert getattr(loaded, "attr_" + key) == value

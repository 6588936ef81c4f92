"""Property tests: random nested builtin data pickles byte-identically to pickle.

The number of examples comes from the Hypothesis profile selected in
``conftest.py`` (``HYPOTHESIS_PROFILE=long`` for a soak run).
"""

import pickle

import cloudpickle
import pytest
from _helpers import PROTOCOLS, assert_same_bytes, describe_difference
from hypothesis import given
from hypothesis import strategies as st

# The repr of the recursive strategies is long; Hypothesis warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

# Leaves: every builtin scalar type, with the awkward values included.
integers = st.one_of(
    st.integers(min_value=-300, max_value=300),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(),
    st.sampled_from([2**31 - 1, -(2**31), 2**63, -(2**63) - 1, 2**64, 65535, 65536]),
)
floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
texts = st.one_of(
    st.text(),
    # Any code point, lone surrogates included (st.text() excludes them).
    st.lists(
        st.one_of(st.integers(0, 0x10FFFF), st.integers(0xD800, 0xDFFF)).map(chr), max_size=12
    ).map("".join),
    st.text(alphabet="\\\n\r\x00\x1au0123456789abcdefABCDEF"),  # escape-prone
    st.sampled_from(["\ud800", "a\udfffb", "\\u0041", "😀", "\x1a"]),
)
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    floats,
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    texts,
    st.binary(),
)
leaves = st.one_of(hashable_leaves, st.binary().map(bytearray))


def _hashables(children):
    return st.one_of(
        st.tuples(children, children),
        st.lists(children, max_size=4).map(tuple),
        st.frozensets(children, max_size=4),
    )


hashable_data = st.recursive(hashable_leaves, _hashables, max_leaves=8)


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=8),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(hashable_data, children, max_size=6),
        st.sets(hashable_data, max_size=6),
        st.frozensets(hashable_data, max_size=6),
    )


nested_data = st.recursive(leaves, _containers, max_leaves=25)


def _check_all_protocols(obj):
    for protocol in PROTOCOLS:
        expected = pickle.dumps(obj, protocol=protocol)
        actual = cloudpickle.dumps(obj, protocol=protocol)
        if actual != expected:
            raise AssertionError(
                f"protocol {protocol}: cloudpickle differs from pickle\n"
                + describe_difference(actual, expected)
            )
    # No protocol given: pickle.HIGHEST_PROTOCOL.
    assert_same_bytes(cloudpickle.dumps(obj), pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


@given(nested_data)
def test_random_nested_data_identical(obj):
    """Random nested builtin data: identical bytes for every protocol 0-5 (and the default)."""
    _check_all_protocols(obj)


@given(hashable_data)
def test_random_hashable_data_identical(obj):
    """Random tuples/frozensets of scalars (hashable data): identical bytes."""
    _check_all_protocols(obj)


@st.composite
def shared_and_cyclic(draw):
    """Containers that point into a pool of shared mutable objects, with cycles.

    The pool holds lists and dicts; the structure references pool members
    several times, and pool members reference each other (possibly themselves).
    """
    pool_size = draw(st.integers(min_value=1, max_value=6))
    pool = []
    for _ in range(pool_size):
        if draw(st.booleans()):
            pool.append(draw(st.lists(leaves, max_size=3)))
        else:
            pool.append(draw(st.dictionaries(hashable_leaves, leaves, max_size=3)))
    # Wire pool members to each other: creates sharing and cycles.
    links = draw(
        st.lists(
            st.tuples(st.integers(0, pool_size - 1), st.integers(0, pool_size - 1)), max_size=8
        )
    )
    for i, (src, dst) in enumerate(links):
        container = pool[src]
        target = pool[dst]
        if draw(st.booleans()):
            target = (target, draw(leaves))  # a tuple on the cycle
        if isinstance(container, list):
            container.append(target)
        else:
            container[f"link{i}"] = target
    picks = draw(st.lists(st.integers(0, pool_size - 1), min_size=1, max_size=10))
    shape = draw(st.sampled_from(["list", "tuple", "dict"]))
    items = [pool[i] for i in picks]
    if shape == "list":
        return items
    if shape == "tuple":
        return tuple(items)
    return {f"k{n}": item for n, item in enumerate(items)}


@given(shared_and_cyclic())
def test_random_shared_and_cyclic_identical(obj):
    """Random graphs with shared references and cycles: identical bytes for every protocol."""
    _check_all_protocols(obj)


@given(st.lists(st.binary(min_size=0, max_size=70_000), max_size=3), st.lists(texts, max_size=3))
def test_random_payload_sizes_identical(blobs, strings):
    """Bytes objects of random sizes up to beyond the 64 KiB frame target."""
    obj = [blobs, strings, [bytearray(b) for b in blobs]]
    for protocol in (0, 3, 4, 5):
        assert_same_bytes(
            cloudpickle.dumps(obj, protocol=protocol), pickle.dumps(obj, protocol=protocol)
        )

"""Shared pytest configuration for the cloudpickle test suite.

Hypothesis profiles
-------------------
* ``ci`` (default): a moderate number of examples so that the whole suite
  stays fast.
* ``long``: many more examples, for soak runs::

      HYPOTHESIS_PROFILE=long python -m pytest tests/test_identity_hypothesis.py

* ``dev``: very few examples, for quick local iterations.
* ``fuzz``: 100,000 examples per test, the differential fuzzing run (byte
  identity with ``pickle.dumps`` for builtin data, round trips of generated
  code and classes)::

      HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_identity_hypothesis.py \
          tests/test_fuzz_roundtrip.py -q

Tests marked ``large`` (gigabyte payloads, a million dumps calls) run only
when ``CLOUDPICKLE_TEST_LARGE=1`` is set.
"""

import os
import sys

import pytest

if sys.implementation.name == "pypy":
    # The oracle must write what CPython's C pickler writes (see
    # _cpython_pickle). cloudpickle is imported first: its Pickler subclasses
    # the interpreter's own.
    import cloudpickle  # noqa: F401
    from _cpython_pickle import install

    install()

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    settings = None

if settings is not None:
    _common = dict(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    settings.register_profile("ci", max_examples=200, **_common)
    settings.register_profile("long", max_examples=20_000, **_common)
    settings.register_profile("dev", max_examples=20, **_common)
    settings.register_profile("fuzz", max_examples=100_000, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "large: gigabyte payloads or very long runs (CLOUDPICKLE_TEST_LARGE=1)"
    )


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CLOUDPICKLE_TEST_LARGE") == "1":
        return
    skip = pytest.mark.skip(reason="large test: set CLOUDPICKLE_TEST_LARGE=1 to run it")
    for item in items:
        # The marker, not a keyword: a parameter id "large" is a keyword too.
        if item.get_closest_marker("large") is not None:
            item.add_marker(skip)


def pytest_report_header(config):
    import pickle
    import sys

    import cloudpickle

    return [
        f"cloudpickle {cloudpickle.__version__} from {os.path.dirname(cloudpickle.__file__)}",
        f"pickle HIGHEST_PROTOCOL={pickle.HIGHEST_PROTOCOL}, python {sys.version.split()[0]}",
        f"hypothesis profile: {os.environ.get('HYPOTHESIS_PROFILE', 'ci')}",
    ]


@pytest.fixture(params=range(0, 6), ids=lambda p: f"proto{p}")
def protocol(request):
    """Every pickle protocol, 0 to 5."""
    return request.param

"""Compatibility alias: payloads of older cloudpickle versions may refer to
names under ``cloudpickle.cloudpickle_fast``; they all live in
``cloudpickle.cloudpickle``."""

from . import cloudpickle


def __getattr__(name):
    return getattr(cloudpickle, name)

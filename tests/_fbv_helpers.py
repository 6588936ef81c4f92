"""Importable objects used by ``test_functions_by_value`` (not a test module).

Everything defined at the top level here can be pickled by reference: the
tests put ``tests/`` on the path of their child processes.
"""

import types


class Base:
    def greet(self):
        return "base"


class Child(Base):
    """A class whose methods need their ``__class__`` cell."""

    def greet(self):
        return "child+" + super().greet()

    def greeter(self):
        """A closure over ``self`` and ``__class__``: it travels by value,
        the class and the instance by reference."""

        def greet_later(suffix):
            return super(__class__, self).greet() + suffix

        return greet_later


def detached_greet():
    """A copy of ``Child.greet`` that cannot be found by name, so it is
    pickled by value; its ``__class__`` cell still designates ``Child``."""
    method = Child.greet
    return types.FunctionType(
        method.__code__, method.__globals__, method.__name__, None, method.__closure__
    )


def orphan():
    """A module-level function whose ``__module__`` was erased: it can only
    be found by scanning the imported modules."""
    return "orphan"


orphan.__module__ = None

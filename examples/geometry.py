"""An ordinary module with an ordinary class, used by ``quickstart.py``.

Because ``Point`` lives in an importable module (not in ``__main__``), it is
pickled *by reference*: the payload names ``geometry.Point`` and carries only
the instance's attributes, exactly as with the standard ``pickle``.
"""


class Point:
    def __init__(self, x, y, label=""):
        self.x = x
        self.y = y
        self.label = label

    def norm(self):
        return (self.x**2 + self.y**2) ** 0.5

    def __eq__(self, other):
        return isinstance(other, Point) and vars(self) == vars(other)

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r}, {self.label!r})"

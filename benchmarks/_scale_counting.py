"""A Conv4 that counts, per process, how many times it is unpickled.

Imported by name by ``scale.py`` and by the dask workers, so that each worker
can report how many times the encoder reached it.
"""

from sklearn_protonet.modules import Conv4

_UNPICKLED = 0


class CountingConv4(Conv4):
    """Conv4 whose every deserialisation increments this process's counter."""

    def __setstate__(self, state):
        global _UNPICKLED
        _UNPICKLED += 1
        super().__setstate__(state)


def unpickled() -> int:
    """How many CountingConv4 this process has unpickled."""
    return _UNPICKLED

"""pneumobench: the Viel & Orhan (2020) pneumothorax segmentation paper as a test suite.

The library is in stage subpackages, each importing only the stages below it:
``core`` -> ``experiment`` -> ``data`` -> ``models`` -> ``training`` -> ``runs`` ->
``judging`` -> ``papers`` -> ``reporting`` -> ``tools``, and the entry points ``cli``,
``session`` and ``pytest_plugin`` on top (``docs/architecture.md``).
"""

from pneumobench import _moved

__version__ = "0.2.0"  # the one source of the version (pyproject.toml reads it)
__all__ = ["__version__"]

_moved.install()

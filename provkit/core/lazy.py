"""Deferred imports of heavy third-party modules: ``torch = lazy_import("torch")``.

Every ``prov`` command imports the whole ``provkit`` package (the CLI imports
each layer at module level, and no provkit import may sit inside a function),
so a module-level ``import torch`` would make ``prov --help`` or ``prov stats``
pay for torch.  A module that uses a heavy library throughout writes instead::

    from provkit.core.lazy import lazy_import

    torch = lazy_import("torch")

and uses ``torch.tensor(...)``, ``torch.Tensor`` (annotations are strings under
``from __future__ import annotations``) exactly as before.  Contract:

* ``lazy_import(name)`` imports nothing and leaves ``sys.modules`` alone; it
  returns the real module when ``name`` is already imported, otherwise a
  stand-in :class:`LazyModule`;
* the first attribute read on the stand-in imports ``name`` (an ordinary
  ``importlib.import_module``: thread-safe, a missing package raises the usual
  ``ModuleNotFoundError`` there) and every read is forwarded to the real
  module, so values are never stale copies;
* a read at module level defeats it: decorators (``@torch.inference_mode()``),
  base classes, default arguments and isinstance checks evaluated at import
  time load the library; keep those inside functions.

Names used in a handful of functions (scikit-learn estimators, transformers
classes) are imported inside those functions instead, and names used only in
annotations under ``if TYPE_CHECKING:``.  Only third-party modules go through
here: provkit's own imports stay at module level, where the layer contract
(``lint-imports``) and ``tests/test_imports.py`` see them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["LazyModule", "lazy_import"]


class LazyModule(types.ModuleType):
    """Stand-in for the module ``name``: imports it on the first attribute read, then forwards every read."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"{name} (imported on first use; see provkit.core.lazy)")

    def _target(self) -> types.ModuleType:
        return sys.modules.get(self.__name__) or importlib.import_module(self.__name__)

    def __getattr__(self, attr: str) -> Any:  # only called for names the stand-in itself lacks
        return getattr(self._target(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._target())

    def __repr__(self) -> str:
        loaded = "loaded" if self.__name__ in sys.modules else "not loaded yet"
        return f"<lazy module {self.__name__!r} ({loaded})>"


def lazy_import(name: str) -> Any:
    """The module ``name`` if it is imported already, else a :class:`LazyModule` that imports it on first use."""
    return sys.modules.get(name) or LazyModule(name)

"""Use sinabs' DynapCNN layout code offline without ever importing the PyPI samna stub.

sinabs.backend.dynapcnn imports samna at module import time. The samna on PyPI is a stub that
pip-installs the real samna from SynSense's index when imported, which fails (or worse) offline.
When the real samna is absent we put an inert placeholder in sys.modules first: layout,
discretization and core mapping (pure Python in sinabs) work, and anything that truly needs
samna raises DeviceError saying how to install it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from ..errors import DeviceError

INSTALL_HINT = (
    "install the real samna from SynSense over PyPI's stub (pip install --force-reinstall --no-deps "
    "samna==<the installed version> --index-url https://gitlab.com/api/v4/projects/27423070/packages/pypi/simple; "
    "hardware_tests/README.md) and connect a Speck2e devkit"
)


def real_samna_installed() -> bool:
    """True only for SynSense's real samna; the PyPI stub is detected by reading, not importing, it."""
    module = sys.modules.get("samna")
    if module is not None:
        return not isinstance(module, _Placeholder)
    spec = importlib.util.find_spec("samna")
    if spec is None or spec.origin is None:
        return False
    origin = Path(spec.origin)
    if origin.suffix != ".py":
        return True  # compiled extension: the real samna
    try:
        return "PYPI_SAMNA" not in origin.read_text(errors="replace")
    except OSError:
        return False


class _Missing:
    """Stands for any samna object; using it (calling it) says how to get the real samna."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, item: str) -> "_Missing":
        if item.startswith("__"):
            raise AttributeError(item)
        return _Missing(f"{self._name}.{item}")

    def __call__(self, *args, **kwargs):
        raise DeviceError(f"{self._name} needs the real samna, which is not installed: {INSTALL_HINT}")

    def __repr__(self) -> str:
        return f"<samna placeholder {self._name}>"


class _Placeholder(types.ModuleType):
    def __getattr__(self, item: str):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Missing(f"{self.__name__}.{item}")


_SUBMODULES = ("samna", "samnagui", "samna.speck2e", "samna.speck2e.configuration",
               "samna.speck2f", "samna.speck2f.configuration", "samna.specksim", "samna.specksim.nodes")


def _install_placeholders() -> None:
    for name in _SUBMODULES:
        if name not in sys.modules:
            module = _Placeholder(name)
            module.__path__ = []  # a package, so "from samna.x import y" resolves through sys.modules
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)


def dynapcnn():
    """Return sinabs.backend.dynapcnn, importable with or without the real samna."""
    if not real_samna_installed():
        _install_placeholders()
    import sinabs.backend.dynapcnn as backend

    return backend


def require_real_samna():
    """Import and return the real samna, or raise DeviceError naming the fix."""
    if not real_samna_installed():
        raise DeviceError(f"the real samna is not installed (found none or the PyPI stub): {INSTALL_HINT}")
    import samna

    return samna

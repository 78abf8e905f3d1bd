"""oicore: Open Images annotations as one compact columnar file with microsecond lookups.

``import oicore`` is cheap: it loads neither pandas nor pyarrow. Each public
function imports what it needs when it first runs, because every DataLoader
worker pays for the imports of its parent.
"""

from oicore._version import __version__
from oicore.errors import (
    CSVError,
    InvalidImageIDError,
    OicoreError,
    OicoreWarning,
    UnknownHeaderError,
)

__all__ = [
    "__version__",
    "read_csv",
    "synth",
    "open",
    "convert",
    "export",
    "Release",
    "set_num_threads",
    "get_num_threads",
    "OicoreError",
    "OicoreWarning",
    "CSVError",
    "UnknownHeaderError",
    "InvalidImageIDError",
]

# Public names served lazily: name -> (module, attribute).
_LAZY = {
    "read_csv": ("oicore.reader", "read_csv"),
    "synth": ("oicore.synthetic", "synth"),
    "open": ("oicore.release", "open"),
    "Release": ("oicore.release", "Release"),
    "convert": ("oicore.converter", "convert"),
    "export": ("oicore.exporter", "export"),
    "set_num_threads": ("oicore.threads", "set_num_threads"),
    "get_num_threads": ("oicore.threads", "get_num_threads"),
}


def __getattr__(name):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'oicore' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

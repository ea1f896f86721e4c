"""Loading a benchmark script (`benchmarks/*.py`, not a package) as a module for its tests."""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType


def loaded_script(path: Path, name: str) -> Iterator[ModuleType]:
    """Yield the script at `path` loaded as module `name`, registered in `sys.modules` while it is in use (its
    dataclasses look their module up while the class is built); for a module-scoped fixture: `yield from`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)

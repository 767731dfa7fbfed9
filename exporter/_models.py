"""The built-in models, always as ``exporter.models``: nothing in the current folder can stand in for them.

A wheel installs the repository's top-level ``models/`` folder as ``exporter/models``
(``package-dir`` in pyproject.toml). In a checkout (``pip install -e .``, or
``PYTHONPATH=.``) there is no ``exporter/models``: the package is loaded from the file path of
``models/`` beside this package, under the name ``exporter.models``. Either way no import
looks the name ``models`` up on ``sys.path``, where ``python -m`` puts the current folder first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

NAME = "exporter.models"


def registry() -> ModuleType:
    """The ``exporter.models`` package (plain data: importing it needs no torch)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    folder = Path(__file__).resolve().parent.parent / "models"
    if not (Path(__file__).resolve().parent / "models").is_dir() and (folder / "__init__.py").is_file():
        spec = importlib.util.spec_from_file_location(
            NAME, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[NAME]
            raise
        return module
    return importlib.import_module(NAME)

"""Where a model comes from: a registry name, ``package.module:Class``, ``file.py:Class``, or a folder
saved by transformers' ``save_pretrained`` (``saved_folder``: its config is data, and no code runs).

Resolving a source needs no torch; building the model (``build``) does. A source is
recorded in the manifest so that ``verify`` can rebuild the same eager model: the
class, the seed its weights were initialised from and, for a model file, the file's
sha256, checked before the file is executed.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifacts.integrity import sha256_bytes
from ..errors import ModelNotFoundError, first_line
from ..interface import InputSpec

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model reference: where its code is, and its inputs when they are known."""

    kind: str  # "registry" | "import" | "file" | "transformers"
    target: str  # "pkg.module:Class" (registry, import) or "Class" (file; transformers: its model class)
    name: str  # default artifact folder name
    inputs: tuple[InputSpec, ...] | None = None  # the example inputs; None: not known yet
    output_names: tuple[str, ...] | None = None  # None: named from what forward returns
    registry_name: str | None = None
    file: Path | None = None
    file_sha256: str | None = None  # a model file's; a transformers folder's config.json's
    config: dict[str, Any] | None = None  # a transformers folder's config.json (data: rebuilds the architecture)
    task: str | None = None  # a transformers folder's --task where it changes the forward (kv_cache.TASK)

    def to_manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "file":
            data.update(file=str(self.file), sha256=self.file_sha256, class_name=self.target)
        elif self.kind == "transformers":
            data.update(folder=str(self.file), class_name=self.target, config=self.config)
            if self.task is not None:
                data["task"] = self.task
        else:
            data["import"] = self.target
        if self.registry_name:
            data["registry"] = self.registry_name
        return data

    @classmethod
    def from_manifest(cls, model: dict[str, Any]) -> ModelSource:
        """Where the manifest says the model's code is (never trusted until ``trusted``)."""
        from ..errors import ManifestError
        from . import saved_folder

        source = model.get("source")
        if not isinstance(source, dict) or source.get("kind") not in ("registry", "import", "file", "transformers"):
            raise ManifestError("manifest.json: model.source must say kind registry, import, file or transformers")
        common = dict(name=str(model.get("name", "model")))
        if source["kind"] == "transformers":
            # Data only: a transformers class by name (checked to be one when built) and its config.
            config, class_name = source.get("config"), str(source.get("class_name", ""))
            if not isinstance(config, dict) or not re.fullmatch(r"[A-Za-z_]\w*", class_name):
                raise ManifestError("manifest.json: a transformers source needs its class_name and config")
            task = source.get("task")
            if task is not None and task not in saved_folder.FORWARD_TASKS:
                raise ManifestError(f"manifest.json: a transformers source's task {task!r} is not one this tool knows")
            return cls(kind="transformers", target=class_name, file=Path(str(source.get("folder", ""))),
                       config=config, task=task, **common)  # fmt: skip
        if source["kind"] == "file":
            digest = str(source.get("sha256") or "")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ManifestError("manifest.json: a file source needs the sha256 of its model file")
            return cls(
                kind="file",
                target=str(source.get("class_name", "")),
                file=Path(str(source.get("file", ""))),
                file_sha256=digest,
                **common,
            )
        if source["kind"] == "registry":
            # Registered models are rebuilt from this package's own registry, never from
            # an import path the manifest supplies.
            entry = _registry_entry(str(source.get("registry", "")))
            if entry is None:
                raise ManifestError(
                    f"manifest.json names registered model {source.get('registry')!r}, "
                    "which this version of exporter does not have"
                )
            return cls(kind="registry", target=entry.target, registry_name=entry.name, **common)
        target = str(source.get("import", ""))
        _check_import_path(target)
        return cls(kind="import", target=target, **common)

    def trusted(self, given: str | Path | None, signed: bool = False) -> ModelSource:
        """This source, once the user has named the code it runs (``--source``), or signed the folder.

        The tool runs no code an artifact names: a registered model comes from this package;
        a model file runs only when the user passes it (and its sha256 matches); an import
        path is imported only when the user passes the same ``package.module:Class``. A folder
        ``signed`` with the user's own key (every export signs its folder) holds the user's own word:
        its recorded model file runs while its sha256 is unchanged, and its recorded class is imported.
        Raises UsageError otherwise, saying which.
        """
        from ..errors import UsageError

        if self.kind in ("registry", "transformers"):
            return self  # this package's own code, or transformers' classes built from a config (data)
        if given is None and signed:
            if self.kind == "file":
                self._check_recorded_file()
            return self
        if self.kind == "file":
            if given is None:
                raise UsageError(
                    f"this artifact was exported from the model file {self.file}; the tool runs no code an "
                    "artifact names, so pass --source FILE (its sha256 is checked before it runs), or sign the "
                    "folder with `exporter trust DIR` once you trust it"
                )
            location, _, class_name = str(given).rpartition(":")
            if location.endswith(".py") and class_name:  # the spelling export takes: file.py:Class
                if class_name != self.target:
                    raise UsageError(f"--source {given}: this artifact was exported from class {self.target}")
                given = location
            return ModelSource(**{**self.__dict__, "file": Path(given)})
        if str(given) != self.target:
            raise UsageError(
                f"this artifact was exported from the class {self.target}; the tool imports no module an artifact "
                f"names, so pass --source {self.target} to import it"
                + (f" (got --source {given})" if given is not None else "")
            )
        return self

    def _check_recorded_file(self) -> None:
        """The model file a signed manifest records must still be there, with the bytes it was exported from."""
        from ..errors import UsageError

        path = Path(self.file) if self.file is not None else None
        if path is None or not path.is_file():
            raise UsageError(
                f"the model file {self.file} this artifact was exported from no longer exists: pass --source FILE "
                "with the file it was exported from"
            )
        digest = sha256_bytes(path.read_bytes())
        if digest != self.file_sha256:
            raise UsageError(
                f"the model file {path} has changed since this artifact was exported from it (sha256 {digest[:12]}... "
                f"now, {str(self.file_sha256)[:12]}... then): pass --source FILE with the file it was exported from, "
                "or re-export"
            )

    def load_class(self) -> type:
        """Import the class. Raises ModelNotFoundError with the reason in one line."""
        if self.kind == "file":
            module = _exec_file(self.file, self.file_sha256)
            class_name = self.target
        else:
            module_name, class_name = self.target.split(":", 1)
            if self.kind == "registry":
                pass  # exporter.models: a package of this one, never looked up on sys.path
            elif os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())  # as `python -m` would: a package in the current folder
            try:
                module = importlib.import_module(module_name)
            except SystemExit as error:
                raise ModelNotFoundError(
                    f"importing {module_name!r} called sys.exit({error.code!r}): a model module must not exit"
                ) from None
            except Exception as error:  # the user's module may raise anything at import
                raise ModelNotFoundError(
                    f"cannot import module {module_name!r} for {self.target}: {first_line(error)}"
                ) from error
        obj: Any = module
        for part in class_name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                where = self.file if self.kind == "file" else module_name
                raise ModelNotFoundError(f"{where} has no class {class_name!r}: check the name after ':'")
        if not isinstance(obj, type):
            raise ModelNotFoundError(f"{self.target} is not a class: name an nn.Module subclass")
        return obj


def _registry_entry(name: str):
    from .. import models

    return models.get(name)


def _check_import_path(target: str) -> None:
    module, _, cls = target.partition(":")
    if not (module and cls and _IDENTIFIER.match(module) and _IDENTIFIER.match(cls)):
        raise ModelNotFoundError(
            f"{target!r} is not a model: give a registered name (see `exporter models`), "
            "package.module:Class or path/to/file.py:Class"
        )


def resolve(
    spec: str, inputs: tuple[InputSpec, ...] | None = None, *, need_shape: bool = True, task: str | None = None
) -> ModelSource:
    """Turn the MODEL argument into a ModelSource. Raises ModelNotFoundError or InputSpecError.

    ``inputs``: the example inputs (``--input``, or ``--input-shape`` as one float input);
    a registered model has its own, a saved transformers folder's are inferred from its config
    (``task``: its model class by task, ``saved_folder.TASKS``). ``need_shape``: a model outside the registry needs them
    (export, predict); False for callers that only build the model (inspect).
    """
    from ..errors import InputSpecError
    from . import saved_folder

    if saved_folder.is_saved_folder(spec):
        return _saved_folder(Path(spec), inputs, task)
    entry = _registry_entry(spec)
    if entry is not None:
        default = (InputSpec(entry.input_name, tuple(entry.input_shape), entry.dtype),)
        return ModelSource(
            kind="registry",
            target=entry.target,
            name=entry.name,
            inputs=inputs or default,
            output_names=tuple(entry.output_names),
            registry_name=entry.name,
        )
    if ":" not in spec:
        from .. import models

        known = ", ".join(sorted(models.REGISTRY))
        raise ModelNotFoundError(
            f"unknown model {spec!r}: registered models are {known}; "
            "or give package.module:Class or path/to/file.py:Class"
        )
    location, _, class_name = spec.rpartition(":")
    if location.endswith(".py"):
        path = Path(location)
        if not path.is_file():
            raise ModelNotFoundError(f"model file {location} does not exist")
        if not class_name or not _IDENTIFIER.match(class_name):
            raise ModelNotFoundError(f"{class_name!r} is not a class name: write {location}:ClassName")
        digest = sha256_bytes(path.read_bytes())
        source = ModelSource(
            kind="file",
            target=class_name,
            name=class_name.split(".")[-1],
            inputs=inputs,
            file=path.resolve(),
            file_sha256=digest,
        )
    else:
        _check_import_path(spec)
        source = ModelSource(kind="import", target=spec, name=class_name.split(".")[-1], inputs=inputs)
    if source.inputs is None and need_shape:
        raise InputSpecError(
            f"{spec} is not a registered model, so its inputs are unknown: pass --input-shape (one float input, "
            "for example --input-shape 1,28,28) or --input NAME:SHAPE[:DTYPE[:LOW..HIGH]] per input"
        )
    return source


def _saved_folder(folder: Path, inputs: tuple[InputSpec, ...] | None, task: str | None) -> ModelSource:
    """A folder transformers' save_pretrained wrote: its class and inputs from config.json (no torch yet)."""
    from . import saved_folder

    config = saved_folder.read_config(folder)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", folder.resolve().name).lstrip(".") or "model"
    return ModelSource(
        kind="transformers",
        target=saved_folder.class_name(config, task, folder),
        name=name,
        inputs=inputs or saved_folder.infer_inputs(config, folder, task),
        file=folder.resolve(),
        file_sha256=sha256_bytes((folder / "config.json").read_bytes()),
        config=config,
        task=task if task in saved_folder.FORWARD_TASKS else None,
    )


def _exec_file(path: Path | None, expected_sha256: str | None) -> types.ModuleType:
    """Execute a model file as a module, after checking its bytes against the recorded hash."""
    if path is None or not Path(path).is_file():
        raise ModelNotFoundError(f"model file {path} does not exist")
    data = Path(path).read_bytes()
    digest = sha256_bytes(data)
    if expected_sha256 and digest != expected_sha256:
        raise ModelNotFoundError(
            f"model file {path} has sha256 {digest[:12]}..., not the {expected_sha256[:12]}... "
            "recorded at export: refusing to run it; re-export or pass the original file"
        )
    # One module per file and content: the same bytes at another path are another module (its
    # messages name its own path, its imports are the ones beside it).
    where = sha256_bytes(f"{Path(path).resolve()}\0{digest}".encode())
    module_name = f"_exporter_model_{where[:16]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    beside = str(Path(path).resolve().parent)  # the file may import modules that sit beside it
    added = beside not in sys.path
    if added:
        sys.path.insert(0, beside)
    try:
        exec(compile(data, str(path), "exec"), module.__dict__)
    except SystemExit as error:
        del sys.modules[module_name]
        raise ModelNotFoundError(
            f"model file {path} called sys.exit({error.code!r}) while it was loaded: a model file must not exit"
        ) from None
    except Exception as error:  # the user's file may raise anything
        del sys.modules[module_name]
        raise ModelNotFoundError(f"model file {path} failed to load: {first_line(error)}") from error
    finally:
        if added and beside in sys.path:
            sys.path.remove(beside)
    return module

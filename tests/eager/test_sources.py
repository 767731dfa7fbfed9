"""Where a model comes from (eager/sources.py): a registry name, ``package.module:Class`` or
``file.py:Class``; how the manifest records it; and that no code an artifact names runs until the
user names it too (``trusted``), a model file only while its sha256 is the one recorded at export."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

from exporter.eager.sources import ModelSource, resolve
from exporter.errors import InputSpecError, ManifestError, ModelNotFoundError, UsageError
from exporter.interface import InputSpec

SHAPE = (InputSpec("input", (1, 4)),)
NET = "from torch import nn\n\nclass Net(nn.Linear):\n    def __init__(self):\n        super().__init__(4, 2)\n"


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


# --- resolve ------------------------------------------------------------------------------------


def test_a_registered_name_resolves_to_this_packages_class_and_its_inputs():
    source = resolve("mlp")
    assert (source.kind, source.target, source.name, source.registry_name) == (
        "registry", "exporter.models.mlp:NeuralNetwork", "mlp", "mlp",
    )  # fmt: skip
    assert source.inputs == (InputSpec("input", (1, 28, 28)),) and source.output_names == ("logits",)
    assert resolve("mlp", SHAPE).inputs == SHAPE  # inputs given replace the registry's


def test_an_import_path_resolves_without_importing_it():
    source = resolve("no_such_package.models:Deep.Net", SHAPE)
    assert (source.kind, source.target, source.name, source.inputs) == (
        "import", "no_such_package.models:Deep.Net", "Net", SHAPE,
    )  # fmt: skip
    assert "no_such_package" not in sys.modules


def test_a_model_file_resolves_with_the_sha256_of_its_bytes(model_file):
    source = resolve(f"{model_file}:Net", SHAPE)
    assert (source.kind, source.target, source.name) == ("file", "Net", "Net")
    assert source.file == model_file.resolve()
    assert source.file_sha256 == hashlib.sha256(model_file.read_bytes()).hexdigest()


def test_a_model_outside_the_registry_needs_its_inputs_unless_only_built(model_file):
    for spec in (f"{model_file}:Net", "pkg.mod:Net"):
        with pytest.raises(InputSpecError, match="is not a registered model, so its inputs are unknown"):
            resolve(spec)
        assert resolve(spec, need_shape=False).inputs is None  # inspect builds it without inputs


def test_an_unknown_name_lists_the_registered_models_and_the_other_forms():
    with pytest.raises(ModelNotFoundError) as caught:
        resolve("resnet")
    assert str(caught.value) == (
        "unknown model 'resnet': registered models are cnn, mlp; or give package.module:Class or path/to/file.py:Class"
    )
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("class_name", ["", "1Net", "Net-2", "Net()"])
def test_a_model_file_with_a_bad_class_name_is_refused(model_file, class_name):
    with pytest.raises(ModelNotFoundError) as caught:
        resolve(f"{model_file}:{class_name}", SHAPE)
    assert str(caught.value) == f"{class_name!r} is not a class name: write {model_file}:ClassName"


@pytest.mark.parametrize("spec", ["pkg.mod:", ":Net", "pkg mod:Net", "pkg..mod:Net", "pkg.mod:Net:x"])
def test_an_import_path_that_is_not_one_is_refused(spec):
    with pytest.raises(ModelNotFoundError, match="is not a model: give a registered name"):
        resolve(spec, SHAPE)


def test_a_model_file_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"^model file .*missing\.py does not exist$"):
        resolve(f"{tmp_path / 'missing.py'}:Net", SHAPE)


# --- load_class ---------------------------------------------------------------------------------


def test_load_class_imports_the_named_class_and_says_why_it_cannot():
    assert resolve("json:JSONDecoder", SHAPE).load_class().__name__ == "JSONDecoder"
    cases = {
        "json:NoSuchThing": "json has no class 'NoSuchThing': check the name after ':'",
        "json:dumps": "json:dumps is not a class: name an nn.Module subclass",
    }
    for spec, message in cases.items():
        with pytest.raises(ModelNotFoundError) as caught:
            resolve(spec, SHAPE).load_class()
        assert str(caught.value) == message
    with pytest.raises(
        ModelNotFoundError, match=r"^cannot import module 'no_such_module_xyz' for no_such_module_xyz:X"
    ):
        resolve("no_such_module_xyz:X", SHAPE).load_class()


def test_a_model_module_or_file_that_exits_is_a_model_error_not_an_exit(tmp_path, monkeypatch):
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"importing 'exits_on_import' called sys.exit\(3\)"):
        resolve("exits_on_import:Net", SHAPE).load_class()
    with pytest.raises(ModelNotFoundError, match=r"called sys.exit\(3\) while it was loaded"):
        resolve(f"{tmp_path / 'exits_on_import.py'}:Net", SHAPE).load_class()


def test_the_same_model_file_at_two_paths_loads_as_two_modules_each_naming_its_own_path(tmp_path):
    text = "from torch import nn\n\nclass Net(nn.Linear):\n    def __init__(self):\n        super().__init__(2, 2)\n"
    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text(text)
    two.write_text(text)
    first, second = (resolve(f"{p}:Net", need_shape=False).load_class() for p in (one, two))
    assert first is not second
    assert first.__init__.__code__.co_filename == str(one) and second.__init__.__code__.co_filename == str(two)
    assert (
        resolve(f"{one}:Net", need_shape=False).load_class() is first
    )  # the same file again: the module already loaded


def test_a_model_file_changed_since_export_is_refused_before_it_runs(model_file, tmp_path):
    recorded = ModelSource.from_manifest({"name": "Net", "source": resolve(f"{model_file}:Net", SHAPE).to_manifest()})
    sentinel = tmp_path / "ran"
    model_file.write_text(NET + f"\nopen({str(sentinel)!r}, 'w').write('ran')\n")  # edited after export
    with pytest.raises(ModelNotFoundError) as caught:
        recorded.trusted(model_file).load_class()
    assert "refusing to run it; re-export or pass the original file" in str(caught.value)
    assert not sentinel.exists()  # the hash was checked before a line of it ran
    model_file.write_text(NET)  # the original bytes again: it runs
    assert recorded.trusted(model_file).load_class().__name__ == "Net"


# --- the manifest's record ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["registry", "import", "file"])
def test_a_source_survives_the_manifest_round_trip(model_file, kind):
    spec = {"registry": "mlp", "import": "pkg.mod:Net", "file": f"{model_file}:Net"}[kind]
    source = resolve(spec, SHAPE)
    back = ModelSource.from_manifest({"name": source.name, "source": source.to_manifest()})
    assert (back.kind, back.target, back.name, back.file, back.file_sha256, back.registry_name) == (
        source.kind, source.target, source.name, source.file, source.file_sha256, source.registry_name,
    )  # fmt: skip


def test_a_registered_model_is_rebuilt_from_this_package_never_from_the_manifests_import_path():
    back = ModelSource.from_manifest({"source": {"kind": "registry", "registry": "cnn", "import": "evil:Payload"}})
    assert back.target == "exporter.models.cnn:ConvNet"


@pytest.mark.parametrize(
    "source, message",
    [
        ({"kind": "pickle"}, "model.source must say kind registry, import, file or transformers"),
        ("exporter.models.mlp:NeuralNetwork", "model.source must say kind registry, import, file or transformers"),
        ({"kind": "transformers", "class_name": "BertModel"}, "a transformers source needs its class_name and config"),
        ({"kind": "transformers", "class_name": "os.system", "config": {}}, "needs its class_name and config"),
        ({"kind": "registry", "registry": "gpt"}, "names registered model 'gpt', which this version"),
        ({"kind": "file", "file": "net.py", "class_name": "Net"}, "needs the sha256 of its model file"),
        ({"kind": "file", "file": "net.py", "class_name": "Net", "sha256": "abc"}, "needs the sha256"),
    ],
    ids=["kind", "not-an-object", "no-config", "dotted-class", "unknown-registry", "no-sha256", "short-sha256"],
)
def test_a_source_the_manifest_cannot_state_is_a_manifest_error(source, message):
    with pytest.raises(ManifestError, match=message):
        ModelSource.from_manifest({"source": source})


def test_an_import_path_from_the_manifest_is_checked_like_one_given_by_hand():
    with pytest.raises(ModelNotFoundError, match="is not a model"):
        ModelSource.from_manifest({"source": {"kind": "import", "import": "os; rm -rf:X"}})


# --- trusted ------------------------------------------------------------------------------------


def _recorded(spec: str) -> ModelSource:
    """The source as verify reads it back from a manifest."""
    return ModelSource.from_manifest({"name": "m", "source": resolve(spec, SHAPE).to_manifest()})


def test_a_registered_model_needs_no_source():
    recorded = _recorded("mlp")
    assert recorded.trusted(None) is recorded


def test_a_model_file_runs_only_once_the_user_passes_it(model_file, tmp_path):
    recorded = _recorded(f"{model_file}:Net")
    with pytest.raises(UsageError, match="pass --source FILE"):
        recorded.trusted(None)
    elsewhere = tmp_path / "copy.py"
    elsewhere.write_text(NET)
    given = recorded.trusted(elsewhere)  # the user's copy: its sha256 is what is checked
    assert given.file == elsewhere and given.file_sha256 == recorded.file_sha256
    assert given.load_class().__name__ == "Net"


def test_a_model_file_may_be_passed_as_export_spells_it_but_only_with_its_class(model_file):
    recorded = _recorded(f"{model_file}:Net")
    assert recorded.trusted(f"{model_file}:Net").file == model_file
    with pytest.raises(
        UsageError, match=re.escape(f"--source {model_file}:Other: this artifact was exported from class Net")
    ):
        recorded.trusted(f"{model_file}:Other")


def test_an_import_path_is_imported_only_when_the_user_passes_exactly_it():
    recorded = _recorded("pkg.mod:Net")
    assert recorded.trusted("pkg.mod:Net") is recorded
    with pytest.raises(UsageError) as caught:
        recorded.trusted(None)
    assert str(caught.value) == (
        "this artifact was exported from the class pkg.mod:Net; the tool imports no module an artifact names, "
        "so pass --source pkg.mod:Net to import it"
    )
    with pytest.raises(UsageError, match=r"pass --source pkg.mod:Net to import it \(got --source pkg.mod:Other\)"):
        recorded.trusted("pkg.mod:Other")

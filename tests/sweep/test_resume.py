"""Resume: the entry digest moves with what decides the export, and only a passing record of it is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.cli.commands import cli
from exporter.sweep.fleet import load
from exporter.sweep.resume import entry_digest, passed_before, record_path, write_record

EXPORT = cli.commands["export"]


def entry(tmp_path: Path, extra: str = "", model: str = "net.py:Net"):
    path = tmp_path / "fleet.toml"
    path.write_text(f'[[entry]]\nname = "a"\nmodel = "{model}"\ninput_shape = "1,4"\n{extra}\n')
    return load(path, EXPORT).entries[0]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "net.py").write_text("class Net: pass\n")
    (tmp_path / "w.pt").write_bytes(b"weights one")
    return tmp_path


def test_the_same_entry_has_the_same_digest(files):
    assert entry_digest(entry(files, 'weights = "w.pt"')) == entry_digest(entry(files, 'weights = "w.pt"'))


def test_the_digest_moves_with_the_code_the_weights_and_the_settings(files):
    before = entry_digest(entry(files, 'weights = "w.pt"'))
    assert entry_digest(entry(files, 'weights = "w.pt"\natol = 1e-6')) != before  # a setting
    (files / "w.pt").write_bytes(b"weights two")
    after_weights = entry_digest(entry(files, 'weights = "w.pt"'))
    assert after_weights != before  # the weights' bytes, not their name
    (files / "net.py").write_text("class Net: pass  # edited\n")
    assert entry_digest(entry(files, 'weights = "w.pt"')) != after_weights  # the model file's bytes


def test_the_timeout_and_memory_limit_are_not_part_of_what_was_exported(files):
    assert entry_digest(entry(files, "timeout = 5\nmemory_mib = 99")) == entry_digest(entry(files))


def test_a_registered_model_is_digested_by_its_module_file(files):
    mlp, cnn = entry(files, model="mlp"), entry(files, model="cnn")
    assert entry_digest(mlp) != entry_digest(cnn)


def test_nothing_is_kept_without_a_passing_record_of_a_folder_that_is_there(files):
    a = entry(files)
    digest = entry_digest(a)
    out = files / "out"
    assert not passed_before(out, a, digest)  # no record
    write_record(out, a, digest, "failed", {"name": "a"})
    assert not passed_before(out, a, digest)  # a failure is run again
    write_record(out, a, digest, "passed", {"name": "a"})
    record = json.loads(record_path(out, "a").read_text())
    assert record["status"] == "failed"  # passed, but OUT/a holds no manifest: never recorded as a pass
    assert not passed_before(out, a, digest)
    record_path(out, "a").write_text("{not json")
    assert not passed_before(out, a, digest)  # a broken record is no record

"""The per-user inspection cache: a second project with the same model bytes is not inspected
again, and whatever sits in the cache folder is either exactly the facts written or ignored."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.image.convert.source import source_digest
from tf2aif.pipeline import inspect_cache, model_inspect
from tf2aif.pipeline.inspect_cache import read_cached_facts, user_cache_dir, write_cached_facts
from tf2aif.pipeline.model_inspect import (
    CACHE_DIR,
    ModelFacts,
    TensorFacts,
    facts_or_why_not,
    inspect_model,
)

DIGEST = "sha256:" + "a" * 64


def facts(digest: str = DIGEST) -> ModelFacts:
    return ModelFacts(
        digest=digest,
        inputs=(TensorFacts(name="tokens", dtype="int32", shape=(-1, 12)),),
        outputs=(TensorFacts(name="output_0", dtype="float32", shape=(-1, 3)),),
        ops=frozenset({"While", "TensorListReserve", "MatMul"}),
    )


def stand_in_model(root: Path) -> Path:
    """A SavedModel folder TensorFlow could not parse: inspecting it for real would fail."""
    model = root / "models" / "m"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"the same bytes in every checkout")
    return model


@pytest.fixture
def user_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "tf2aif" / "inspect"


@pytest.fixture
def no_inspection(monkeypatch):
    """Reading the SavedModel (the TensorFlow import) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was inspected again")

    monkeypatch.setattr(model_inspect, "facts_from_saved_model", refuse)


def test_user_cache_follows_xdg_and_falls_back_to_home_cache():
    assert user_cache_dir({"XDG_CACHE_HOME": "/x/cache", "HOME": "/h"}) == Path(
        "/x/cache/tf2aif/inspect"
    )
    assert user_cache_dir({"HOME": "/h"}) == Path("/h/.cache/tf2aif/inspect")
    # a relative XDG_CACHE_HOME is invalid per the spec: ignored
    assert user_cache_dir({"XDG_CACHE_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.cache/tf2aif/inspect"
    )


def test_a_second_project_with_the_same_model_is_not_inspected_again(
    tmp_path, user_cache, no_inspection
):
    first = stand_in_model(tmp_path / "first")
    digest = source_digest(first)
    # what the first project's inspection left in the per-user cache
    write_cached_facts(user_cache / f"{digest.replace(':', '-')}.json", facts(digest))

    second_root = tmp_path / "second"
    shutil.copytree(first.parent.parent, second_root)
    second = second_root / "models" / "m"
    assert source_digest(second) == digest
    found, why_not = facts_or_why_not(second, digest=digest, cache_root=second_root)
    assert (found, why_not) == (facts(digest), "")
    # and the project now has its own entry
    project_entry = second_root / CACHE_DIR / f"{digest.replace(':', '-')}.json"
    assert read_cached_facts(project_entry, digest=digest) == facts(digest)


def test_without_remember_the_user_cache_is_read_but_nothing_is_written(
    tmp_path, user_cache, no_inspection
):
    write_cached_facts(user_cache / f"{DIGEST.replace(':', '-')}.json", facts())
    model = stand_in_model(tmp_path)
    assert inspect_model(model, digest=DIGEST, cache_root=tmp_path, remember=False) == facts()
    assert not (tmp_path / CACHE_DIR).exists()


def test_the_project_cache_is_consulted_before_the_user_cache(tmp_path, user_cache, no_inspection):
    project_facts = facts()
    user_facts = ModelFacts(**{**vars(facts()), "ops": frozenset({"Conv2D"})})
    write_cached_facts(tmp_path / CACHE_DIR / f"{DIGEST.replace(':', '-')}.json", project_facts)
    write_cached_facts(user_cache / f"{DIGEST.replace(':', '-')}.json", user_facts)
    model = stand_in_model(tmp_path)
    assert inspect_model(model, digest=DIGEST, cache_root=tmp_path) == project_facts


def test_a_fresh_inspection_fills_both_caches_atomically(tmp_path, user_cache, monkeypatch):
    monkeypatch.setattr(model_inspect, "facts_from_saved_model", lambda path, digest: facts(digest))
    model = stand_in_model(tmp_path)
    assert inspect_model(model, digest=DIGEST, cache_root=tmp_path) == facts()
    name = f"{DIGEST.replace(':', '-')}.json"
    for folder in (tmp_path / CACHE_DIR, user_cache):
        assert read_cached_facts(folder / name, digest=DIGEST) == facts()
        assert sorted(p.name for p in folder.iterdir()) == [name]  # no temporary file left


def test_an_unwritable_user_cache_costs_nothing_but_the_cache(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(model_inspect, "facts_from_saved_model", lambda path, digest: facts(digest))
    with caplog.at_level(logging.INFO, logger=inspect_cache.__name__):
        assert inspect_model(stand_in_model(tmp_path), digest=DIGEST, cache_root=tmp_path) == (
            facts()
        )
    assert "not written" in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"\xff\xfe not utf-8",
        b"[]",
        b'{"digest": "sha256:' + b"a" * 64 + b'"}',
        json.dumps({**json.loads(facts().to_json()), "ops": "MatMul"}).encode(),
        json.dumps({**json.loads(facts().to_json()), "digest": "sha256:" + "b" * 64}).encode(),
        json.dumps({**json.loads(facts().to_json()), "extra": 1}).encode(),
    ],
    ids=["empty", "truncated", "binary", "list", "digest-only", "ops-string", "other", "extra"],
)
def test_an_unreadable_entry_is_ignored_with_a_log_line(tmp_path, caplog, content):
    entry = tmp_path / "entry.json"
    entry.write_bytes(content)
    with caplog.at_level(logging.INFO, logger=inspect_cache.__name__):
        assert read_cached_facts(entry, digest=DIGEST) is None
    assert f"ignoring unreadable inspection cache {entry}" in caplog.text


def test_a_missing_entry_is_a_plain_miss(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger=inspect_cache.__name__):
        assert read_cached_facts(tmp_path / "absent.json", digest=DIGEST) is None
    assert caplog.text == ""


# ---- generated inputs -------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12)
tensor_facts = st.builds(
    TensorFacts,
    name=names,
    dtype=st.sampled_from(["float32", "int64", "string", "bool"]),
    shape=st.lists(st.integers(-1, 4096), max_size=4).map(tuple),
)
model_facts = st.builds(
    ModelFacts,
    digest=st.just(DIGEST),
    inputs=st.lists(tensor_facts, max_size=3).map(tuple),
    outputs=st.lists(tensor_facts, max_size=3).map(tuple),
    ops=st.frozensets(names, max_size=8),
    xla_functions=st.frozensets(names, max_size=3),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@pytest.mark.fuzz
@given(written=model_facts)
def test_what_is_written_is_read_back_exactly(tmp_path_factory, written):
    entry = tmp_path_factory.getbasetemp() / "written-entry.json"  # one file: cheap examples
    write_cached_facts(entry, written)
    assert read_cached_facts(entry, digest=DIGEST) == written
    assert read_cached_facts(entry, digest="sha256:" + "0" * 64) is None  # never another model's


@pytest.mark.fuzz
@given(content=st.binary(max_size=300))
def test_garbage_bytes_never_crash_and_never_give_facts(tmp_path_factory, content):
    entry = tmp_path_factory.getbasetemp() / "garbage-entry.json"
    entry.write_bytes(content)
    assert read_cached_facts(entry, digest=DIGEST) is None


@pytest.mark.fuzz
@given(
    written=model_facts,
    path=st.lists(st.text(max_size=8), min_size=1, max_size=3),
    value=json_values,
)
def test_a_damaged_entry_is_ignored_or_still_exactly_the_facts(
    tmp_path_factory, written, path, value
):
    """Replace one field of a valid entry by any JSON: the reader answers None or facts that are
    exactly what the file now says, never a guess (frozenset of a string's letters, floats as
    sizes, another digest)."""
    data = json.loads(written.to_json())
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target
    if isinstance(target, dict):
        target[path[-1]] = value
    entry = tmp_path_factory.getbasetemp() / "damaged-entry.json"
    entry.write_text(json.dumps(data))
    found = read_cached_facts(entry, digest=DIGEST)
    if found is not None:
        listed = {key: sorted(set(data[key])) for key in ("ops", "xla_functions")}
        assert json.loads(found.to_json()) == data | listed
        assert found.digest == DIGEST
        assert all(type(d) is int for t in found.inputs + found.outputs for d in t.shape)


def test_entries_are_written_under_the_digest_name(tmp_path, user_cache, monkeypatch):
    monkeypatch.setattr(model_inspect, "facts_from_saved_model", lambda path, digest: facts(digest))
    inspect_model(stand_in_model(tmp_path), digest=DIGEST, cache_root=tmp_path)
    assert os.listdir(user_cache) == [f"{DIGEST.replace(':', '-')}.json"]

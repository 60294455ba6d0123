"""Shard bake files, shard records and the release check: data in, structure out."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.main import main
from tf2aif.errors import ManifestError
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.plan import make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve
from tf2aif.shards.bake import (
    base_ref,
    build_shard_bake,
    build_shard_bases_bake,
    convert_shard_bake,
)
from tf2aif.shards.bases import base_addresses
from tf2aif.shards.matrix import (
    artifact_ref,
    content_digest,
    conversion_address,
    find_shard,
    plan_shards,
)
from tf2aif.shards.record import (
    ShardConversion,
    ShardImage,
    ShardRecord,
    load_shard_record,
    save_shard_record,
)
from tf2aif.shards.release import ReleaseError, assemble, check_release, index_argv

from projects import BASIC, write_project

REPO = "registry.example.com/team/demo"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("basic")
    manifest, _ = load_manifest(write_project(root, BASIC))
    plan = make_plan(resolve(manifest, load_recipes(env={})), env={})
    return plan, plan_shards(plan)


@pytest.fixture(scope="module")
def records(project) -> tuple[ShardRecord, ...]:
    return tuple(good_records(*project))


def _digest(text: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def good_records(plan, shards) -> list[ShardRecord]:
    """What a complete, successful run of every shard writes."""
    converts = {c.name: c for c in plan.converts}
    serves = {s.name: s for s in plan.serves}
    artifacts = {}
    records = []
    for shard in shards.converts:
        conversions = []
        for name in shard.converts:
            ref = artifact_ref(plan, converts[name])
            digest = _digest(ref)
            artifacts[name] = f"{ref.rsplit(':', 1)[0]}@{digest}"
            conversions.append(
                ShardConversion(
                    target=name,
                    address=conversion_address(plan, converts[name]),
                    status="success",
                    reference=ref,
                    digest=digest,
                    fidelity={"top1_agreement": 1.0},
                    duration=2.0,
                )
            )
        records.append(_record(plan, shards, shard, "convert", conversions=tuple(conversions)))
    for shard in shards.builds:
        images = tuple(
            ShardImage(
                target=name,
                platform=shard.platform,
                content_digest=content_digest(serves[name]),
                status="success",
                digest=_digest(name + shard.platform),
                repository=serves[name].image,
                artifact=artifacts[serves[name].convert],
                duration=3.0,
            )
            for name in shard.serves
        )
        records.append(_record(plan, shards, shard, "build", images=images))
    return records


def _record(plan, shards, shard, stage, **items) -> ShardRecord:
    return ShardRecord(
        name=plan.name,
        plan=shards.fingerprint,
        shard=shard.name,
        stage=stage,
        runner=shard.runner,
        platform=getattr(shard, "platform", ""),
        status="success",
        created="2026-12-06T00:00:00Z",
        tools={"buildx": "0.29.1"},
        **items,
    )


# -- bake files ------------------------------------------------------------------------------


def _bases(plan, shard) -> dict[str, str]:
    return {
        s.base: f"{REPO}-bases@sha256:{'c' * 64}" for s in plan.serves if s.name in shard.serves
    }


def test_build_shard_builds_one_platform_from_registry_artifacts(project):
    plan, shards = project
    shard = find_shard(shards, "build-arm64")
    artifacts = {c: f"{REPO}-artifacts@sha256:{'a' * 64}" for c in shard.converts}
    staging = {s: f"{REPO}:staging-{s}" for s in shard.serves}
    bake = build_shard_bake(
        plan,
        shard,
        artifacts=artifacts,
        bases=_bases(plan, shard),
        staging=staging,
        fidelity={},
        cache=True,
    )
    assert bake["group"] == {"default": {"targets": list(shard.serves)}}
    assert set(bake["target"]) == set(shard.serves)  # no conversion, no base rebuilt here
    serve = bake["target"]["serve-cpu-arm-tflite-fp32"]
    assert serve["platforms"] == ["linux/arm64"]
    assert serve["contexts"]["artifact"] == f"docker-image://{REPO}-artifacts@sha256:{'a' * 64}"
    assert serve["contexts"]["base"] == f"docker-image://{REPO}-bases@sha256:{'c' * 64}"
    assert serve["tags"] == [f"{REPO}:staging-serve-cpu-arm-tflite-fp32"]
    assert serve["output"] == ["type=image,push=true"]
    own = f"{REPO}-cache:serve-cpu-arm-tflite-fp32-arm64"
    assert serve["cache-to"] == [f"type=registry,ref={own},mode=max"]
    # its own cache first, then every other image's of the shard
    others = sorted(
        f"{REPO}-cache:{s}-arm64" for s in shard.serves if s != "serve-cpu-arm-tflite-fp32"
    )
    assert serve["cache-from"] == [f"type=registry,ref={r}" for r in [own, *others]]
    assert len(serve["cache-from"]) == len(shard.serves) > 1


def test_build_shard_pushes_its_runtime_bases_first_without_provenance(project):
    plan, shards = project
    shard = find_shard(shards, "build-arm64")
    names = list(_bases(plan, shard))
    addresses = base_addresses(plan, names)
    assert base_addresses(plan, names) == addresses  # a content address: stable
    refs = {b: base_ref(plan, b, shard.platform, addresses[b]) for b in names}
    hexdigest = addresses["base-serve-tflite"].removeprefix("sha256:")
    assert refs["base-serve-tflite"] == f"{REPO}-bases:base-serve-tflite-arm64-{hexdigest}"
    amd64 = base_ref(plan, "base-serve-tflite", "linux/amd64", addresses["base-serve-tflite"])
    assert amd64 != refs["base-serve-tflite"]  # one image per platform
    bake = build_shard_bases_bake(plan, shard, refs=refs, cache=True)
    assert list(bake["target"]) == list(refs) == bake["group"]["default"]["targets"]
    assert len(refs) > 1
    for name, base in bake["target"].items():
        assert len(refs[name].rsplit(":", 1)[1]) <= 128
        assert base["platforms"] == ["linux/arm64"]
        assert base["output"] == [f"type=image,name={refs[name]},push=true"]
        assert base["attest"] == ["type=provenance,disabled=true"]
        assert base["cache-from"][0] == f"type=registry,ref={REPO}-cache:{name}-arm64"
        assert base["cache-to"] == [f"type=registry,ref={REPO}-cache:{name}-arm64,mode=max"]


@pytest.mark.fuzz
@given(
    names=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=160),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    platforms=st.lists(
        st.sampled_from(["linux/amd64", "linux/arm64", "linux/arm/v7"]), min_size=1, unique=True
    ),
    address=st.binary(min_size=32, max_size=32).map(lambda b: f"sha256:{b.hex()}"),
)
def test_base_refs_are_valid_tags_that_keep_the_whole_content_address(
    project, names, platforms, address
):
    plan, _ = project
    refs = [base_ref(plan, n, p, address) for n in names for p in platforms]
    for ref in refs:
        repository, tag = ref.rsplit(":", 1)
        assert repository == f"{REPO}-bases"
        assert len(tag) <= 128 and tag.endswith(address.removeprefix("sha256:"))
    short = [(n, p) for n in names for p in platforms if len(n) + len(p) < 50]
    # names short enough to be kept whole never collide
    kept = [base_ref(plan, n, p, address) for n, p in short]
    assert len(set(kept)) == len(kept)


def test_build_shard_pushes_by_digest_without_tags_on_other_drivers(project):
    plan, shards = project
    shard = find_shard(shards, "build-amd64")
    artifacts = {c: f"{REPO}-artifacts@sha256:{'b' * 64}" for c in shard.converts}
    bake = build_shard_bake(
        plan,
        shard,
        artifacts=artifacts,
        bases=_bases(plan, shard),
        by_digest=True,
        fidelity={"convert-tflite-fp32": "{}"},
        output_suffix=",rewrite-timestamp=true",
    )
    serve = bake["target"]["serve-cpu-arm-tflite-fp32"]
    assert "tags" not in serve
    assert serve["output"] == [
        f"type=image,name={REPO},push-by-digest=true,name-canonical=true,push=true"
        ",rewrite-timestamp=true"
    ]
    assert serve["labels"]["io.tf2aif.fidelity"] == "{}"
    assert "cache-from" not in serve


def test_convert_shard_runs_locally_then_pushes_the_artifact_for_every_platform(project):
    plan, shards = project
    shard = shards.converts[0]
    local = convert_shard_bake(plan, shard)
    assert local["group"]["default"]["targets"] == list(shard.converts)
    assert local["target"]["convert-tflite-fp32"]["output"] == [
        "type=local,dest=.tf2aif/artifacts/convert-tflite-fp32"
    ]
    assert "base-convert-tf" in local["target"]  # the toolchain, linked
    ref = artifact_ref(plan, plan.converts[0])
    pushed = convert_shard_bake(
        plan,
        shard,
        push={n: ref for n in shard.converts},
        platforms={"convert-tflite-fp32": ("linux/amd64", "linux/arm64")},
        labels={"convert-tflite-fp32": {"io.tf2aif.conversion-address": "sha256:x"}},
    )
    target = pushed["target"]["convert-tflite-fp32"]
    assert target["tags"] == [ref]
    assert target["output"] == ["type=image,push=true"]
    assert target["platforms"] == ["linux/amd64", "linux/arm64"]
    assert target["labels"] == {"io.tf2aif.conversion-address": "sha256:x"}
    # the conversion step itself is the same as in the local phase: a cache hit
    assert target["args"] == local["target"]["convert-tflite-fp32"]["args"]


# -- shard records ---------------------------------------------------------------------------


def test_shard_record_round_trips(project, tmp_path):
    plan, shards = project
    for record in good_records(plan, shards):
        path = save_shard_record(record, tmp_path / f"{record.shard}.json")
        assert load_shard_record(path) == record


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(kind="other"), "kind: expected 'tf2aif-shard', got 'other'"),
        (lambda d: d.update(version=9), "version: expected 1, got 9"),
        (
            lambda d: d["images"][0].update(digest=5),
            "images[0].digest: expected a string or nothing, got int 5",
        ),
        (
            lambda d: d["images"][1].update(status="ok"),
            "images[1].status: expected one of success, failed, aborted, got 'ok'",
        ),
        (lambda d: d.pop("plan"), "(top level): missing required key 'plan'"),
        (lambda d: d.update(stage="deploy"), "stage: expected one of convert, build, got 'deploy'"),
        (lambda d: d.update(extra=1), "unknown key 'extra'"),
    ],
)
def test_a_bad_shard_record_is_located(project, tmp_path, edit, message):
    plan, shards = project
    record = good_records(plan, shards)[1]
    data = record.to_dict()
    edit(data)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(ManifestError) as exc:
        load_shard_record(path)
    assert str(exc.value).startswith(f"{path}: 1 error in this shard record")
    (issue,) = exc.value.issues
    assert issue.location.file == str(path) and issue.location.line is not None
    assert message in str(issue)


def test_a_shard_record_goes_through_the_bounded_loader(project, tmp_path):
    """Size and depth limits are the shared loader's, with a located error, not a traceback."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200 + "]" * 200)
    with pytest.raises(ManifestError, match="nested deeper than 64 levels"):
        load_shard_record(deep)
    big = tmp_path / "big.json"
    big.write_text(" " * (4 * 2**20 + 1))
    with pytest.raises(ManifestError, match="larger than 4194304 bytes"):
        load_shard_record(big)
    broken = tmp_path / "broken.json"
    broken.write_text('{"kind": "tf2aif-shard",\n  "version": 1,\n  "name": [}')
    with pytest.raises(ManifestError, match=r"broken.json:3:\d+"):
        load_shard_record(broken)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@pytest.mark.fuzz
@given(
    key=st.sampled_from(["images", "conversions", "tools", "status", "shard", "platform"]),
    value=JSON,
)
def test_any_record_field_value_loads_or_fails_located(records, tmp_path_factory, key, value):
    data = records[1].to_dict()
    data[key] = value
    path = tmp_path_factory.getbasetemp() / "fuzz-record.json"
    path.write_text(json.dumps(data))
    try:
        record = load_shard_record(path)
    except ManifestError as exc:
        assert str(exc).startswith(f"{path}: ")
        assert all(issue.location.line for issue in exc.issues)
    else:
        assert record.shard == data["shard"] and record.status in ("success", "failed", "aborted")


# -- the release check -----------------------------------------------------------------------


def test_complete_records_give_one_index_per_image_in_platform_order(project):
    plan, shards = project
    release = check_release(plan, shards, good_records(plan, shards))
    assert [i.target for i in release.indexes] == [s.name for s in plan.serves]
    tflite = next(i for i in release.indexes if i.target == "serve-cpu-arm-tflite-fp32")
    assert tflite.sources == (
        f"{REPO}@{_digest('serve-cpu-arm-tflite-fp32linux/amd64')}",
        f"{REPO}@{_digest('serve-cpu-arm-tflite-fp32linux/arm64')}",
    )
    serve = next(s for s in plan.serves if s.name == tflite.target)
    assert tflite.tags == serve.tags
    assert f"index:io.tf2aif.content-digest={content_digest(serve)}" in tflite.annotations
    assert release.fidelity["convert-tflite-fp32"] == {"top1_agreement": 1.0}
    argv = index_argv(tflite)
    assert argv[:6] == ["docker", "buildx", "imagetools", "create", "-t", tflite.staging]
    assert argv[-2:] == list(tflite.sources)
    assert tflite.staging.startswith(f"{REPO}:tf2aif-release-")


def test_missing_failed_or_foreign_shards_refuse_the_release(project):
    plan, shards = project
    records = good_records(plan, shards)
    with pytest.raises(ReleaseError, match="shard build-arm64: no record"):
        check_release(plan, shards, [r for r in records if r.shard != "build-arm64"])
    arm = next(r for r in records if r.shard == "build-arm64")
    broken = replace(
        arm,
        status="failed",
        images=(replace(arm.images[0], status="failed", digest=None, reason="RUN pip: exit 1"),)
        + arm.images[1:],
    )
    with pytest.raises(ReleaseError) as exc:
        check_release(plan, shards, [broken if r is arm else r for r in records])
    assert exc.value.failed == (arm.images[0].target,)
    assert f"shard build-arm64: {arm.images[0].target} (linux/arm64) failed: RUN pip" in str(
        exc.value
    )
    foreign = replace(arm, plan="sha256:" + "0" * 64)
    with pytest.raises(ReleaseError, match="shard build-arm64: made from another plan"):
        check_release(plan, shards, [foreign if r is arm else r for r in records])
    stale = replace(arm, images=(replace(arm.images[0], content_digest="sha256:old"),))
    with pytest.raises(ReleaseError, match="has content address sha256:old, the plan says"):
        check_release(plan, shards, [stale if r is arm else r for r in records])
    with pytest.raises(ReleaseError, match="shard build-arm64: given twice"):
        check_release(plan, shards, [*records, arm])


class _Docker:
    """subprocess.run stand-in for the imagetools edge: records every argv, fails on demand."""

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        failed = bool(self.fail_on) and any(self.fail_on in a for a in argv)
        out = b'{"manifests":[]}' if "--raw" in argv else ""
        return subprocess.CompletedProcess(argv, 1 if failed else 0, out, "boom" if failed else "")


def test_assemble_moves_final_tags_only_after_every_index_exists(project):
    plan, shards = project
    release = check_release(plan, shards, good_records(plan, shards))
    docker = _Docker()
    digests = assemble(release, run=docker, sink=lambda _: None)
    creates = [c for c in docker.calls if c[3] == "create"]
    staged = [c for c in creates if c[5].split(":")[-1].startswith("tf2aif-release-")]
    assert len(staged) == len(plan.serves) == len(digests)
    first_final = next(i for i, c in enumerate(creates) if c not in staged)
    assert all(c in staged for c in creates[:first_final])  # every merge before any final tag
    finals = [c[i + 1] for c in creates[first_final:] for i, a in enumerate(c) if a == "-t"]
    assert {t for s in plan.serves for t in s.tags} <= set(finals)

    failing = _Docker(fail_on="serve-cpu-arm-tflite-int8")
    with pytest.raises(Exception, match="no final tag was created or moved"):
        assemble(release, run=failing, sink=lambda _: None)
    tagged = [c for c in failing.calls if c[3] == "create" and "tf2aif-release-" not in c[5]]
    assert tagged == []


@pytest.mark.fuzz
@given(
    drop=st.sets(st.integers(0, 20), max_size=3),
    fail=st.sets(st.integers(0, 20), max_size=3),
)
def test_release_is_all_or_nothing(project, records, drop, fail):
    plan, shards = project
    kept = []
    for i, record in enumerate(records):
        if i in drop:
            continue
        if i in fail:
            record = replace(record, status="failed")
            record = replace(
                record,
                images=tuple(replace(x, status="failed", digest=None) for x in record.images),
                conversions=tuple(
                    replace(x, status="failed", digest=None) for x in record.conversions
                ),
            )
        kept.append(record)
    complete = not (drop | fail) & set(range(len(records)))
    if complete:
        release = check_release(plan, shards, kept)
        assert len(release.indexes) == len(plan.serves)
    else:
        with pytest.raises(ReleaseError) as exc:
            check_release(plan, shards, kept)
        for i in sorted((drop | fail) & set(range(len(records)))):
            assert f"shard {records[i].shard}:" in str(exc.value)


def test_release_command_refuses_and_writes_a_failed_record(project, tmp_path, capsys):
    plan, shards = project
    manifest = write_project(tmp_path, BASIC)
    records = [r for r in good_records(plan, shards) if r.shard != "build-arm64"]
    folder = tmp_path / "records"
    for record in records:
        save_shard_record(record, folder / f"{record.shard}.json")
    code = main(["release", str(folder), "--manifest", str(manifest)])
    assert code == 3
    err = capsys.readouterr().err
    assert "release refused, no final tag was created or moved" in err
    assert "shard build-arm64: no record" in err
    failed = json.loads((tmp_path / "tf2aif-record.failed.json").read_text())
    statuses = {i["target"]: i["status"] for i in failed["images"]}
    assert set(statuses.values()) == {"aborted"}
    assert not (tmp_path / "tf2aif-record.json").exists()


def test_the_shard_record_schema_names_exactly_the_record_fields():
    from dataclasses import fields

    from tf2aif.pipeline.yamlfile import load_schema
    from tf2aif.shards.record import SCHEMA, ShardConversion, ShardImage, ShardRecord

    schema = load_schema(SCHEMA)
    assert set(schema["properties"]) == {f.name for f in fields(ShardRecord)}
    assert set(schema["$defs"]["image"]["properties"]) == {f.name for f in fields(ShardImage)}
    conversion = schema["$defs"]["conversion"]["properties"]
    assert set(conversion) == {f.name for f in fields(ShardConversion)}

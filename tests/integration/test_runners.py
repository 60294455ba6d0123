"""One release built by several runners: independent Docker engines (scripts/runners.sh, each its
own dockerd, BuildKit and cache) sharing only the registry on 127.0.0.1:5000.

The demo's tflite images (fp32 + int8, each amd64 + arm64) are built as shards from
`tf2aif ci matrix`: the convert shard and the amd64 shard on runner 1, the arm64 shard on
runner 2, then `tf2aif release` merges them. A fresh runner 3 rebuilds the arm64 shard from the
registry cache (every step CACHED, the same image digests; the cold/warm ratio is recorded in
runner-timings.json for docs/gitops.md, not asserted beyond "clearly faster": the machine's load
decides the figure); a shard made to fail leaves every final tag where it was.

    flock /tmp/tf2aif-docker.lock pytest tests/integration/test_runners.py --run-docker
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REGISTRY, REPO, STATE, demo_project, tf2aif

pytestmark = pytest.mark.docker

RUNNERS = REPO / "scripts" / "runners.sh"
SESSION = f"{REGISTRY}/tf2aif-it/shards-{uuid.uuid4().hex[:8]}"
IMAGE = f"{SESSION}/digits"
EPOCH = "1700000000"
TARGETS = """\
targets:
  platforms: [cpu, arm]
  runtimes: [tflite]
  precisions: [fp32, int8]
"""
SERVES = ("serve-cpu-arm-tflite-fp32", "serve-cpu-arm-tflite-int8")
TIMINGS = STATE / "runner-timings.json"


@dataclass(frozen=True, kw_only=True)
class Run:
    proc: subprocess.CompletedProcess
    seconds: float
    record: dict

    @property
    def log(self) -> str:
        return self.proc.stdout + self.proc.stderr


def _runners(*args: str) -> str:
    proc = subprocess.run([str(RUNNERS), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def engines():
    """Runners 1-3, each started empty. Stopped (and their bridges and NAT rules removed)
    afterwards."""
    for n in ("1", "2", "3"):
        _runners("reset", n)
    _runners("up", "3")
    hosts = {n: _runners("host", str(n)) for n in (1, 2, 3)}
    yield hosts
    _runners("down")


@pytest.fixture(scope="module")
def project(tmp_path_factory, digits_model) -> Path:
    root = demo_project(tmp_path_factory.mktemp("shards"), digits_model, SESSION)
    manifest = root / "tf2aif.yaml"
    text = re.sub(r"(?m)^targets:\n(?:  .*\n)+", TARGETS, manifest.read_text())
    manifest.write_text(text)
    return root


def _ci(project: Path, host: str, vendor_map: Path, *args: str, record: Path | None = None) -> Run:
    env = {"DOCKER_HOST": host, "SOURCE_DATE_EPOCH": EPOCH}
    extra = ["--record", str(record)] if record else []
    proc, seconds = tf2aif(
        "ci", "shard", args[0], str(project / "tf2aif.yaml"), "--vendor-map", str(vendor_map),
        "--cache", "registry", *extra, *args[1:], env=env,
    )  # fmt: skip
    path = record or project / ".tf2aif" / "shards" / f"{args[0]}.json"
    logs = STATE / "runner-logs"  # kept for reading after the run: timings, CACHED steps
    logs.mkdir(parents=True, exist_ok=True)
    label = path.relative_to(project).with_suffix("").as_posix().replace("/", "-")
    (logs / f"{label.lstrip('.')}-r{host.split('/r')[-1][0]}.log").write_text(
        proc.stdout + proc.stderr
    )
    return Run(proc=proc, seconds=seconds, record=json.loads(path.read_text()))


@pytest.fixture(scope="module")
def matrix(project, stand_in_map) -> dict:
    proc, _ = tf2aif(
        "ci", "matrix", str(project / "tf2aif.yaml"), "--vendor-map", str(stand_in_map)
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def shards(project, engines, stand_in_map, matrix) -> dict[str, Run]:
    """Convert shard and amd64 shard on runner 1, arm64 shard on runner 2 (both cold)."""
    assert matrix["shards"] == ["convert-tf", "build-amd64", "build-arm64"]
    runs = {"convert-tf": _ci(project, engines[1], stand_in_map, "convert-tf")}
    assert runs["convert-tf"].proc.returncode == 0, runs["convert-tf"].log[-6000:]
    runs["build-amd64"] = _ci(project, engines[1], stand_in_map, "build-amd64")
    runs["build-arm64"] = _ci(project, engines[2], stand_in_map, "build-arm64")
    for name, run in runs.items():
        assert run.proc.returncode == 0, f"{name}:\n{run.log[-6000:]}"
    return runs


@pytest.fixture(scope="module")
def released(project, shards, stand_in_map) -> dict:
    folder = project / ".tf2aif" / "shards"
    proc, _ = tf2aif(
        "release", str(folder), "--manifest", str(project / "tf2aif.yaml"),
        "--vendor-map", str(stand_in_map),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((project / "tf2aif-record.json").read_text())


def _raw(reference: str) -> dict:
    proc = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--raw", reference],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _tag_digests(repository: str) -> dict[str, str]:
    """tag -> manifest digest, straight from the registry API."""
    name = repository.split("/", 1)[1]
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/{name}/tags/list", timeout=10) as r:
        tags = json.load(r).get("tags") or []
    out = {}
    for tag in tags:
        request = urllib.request.Request(
            f"http://{REGISTRY}/v2/{name}/manifests/{tag}",
            method="HEAD",
            headers={
                "Accept": "application/vnd.oci.image.index.v1+json,"
                "application/vnd.docker.distribution.manifest.list.v2+json,"
                "application/vnd.oci.image.manifest.v1+json"
            },
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            out[tag] = r.headers["Docker-Content-Digest"]
    return out


def _final_tags(repository: str) -> dict[str, str]:
    return {
        t: d
        for t, d in _tag_digests(repository).items()
        if not t.startswith(("tf2aif-staging-", "tf2aif-release-"))
    }


def _save_timing(key: str, value) -> None:
    data = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}
    data[key] = value
    TIMINGS.write_text(json.dumps(data, indent=2, sort_keys=True))


def test_each_conversion_ran_once_across_all_runners(shards, matrix):
    converts = matrix["convert"]["include"][0]["targets"].split()
    assert sorted(converts) == ["convert-tflite-fp32", "convert-tflite-int8"]
    record = shards["convert-tf"].record
    assert [c["target"] for c in record["conversions"]] == converts
    # each bake run numbers its steps from #1: count per run
    runs = re.split(r"(?m)^#1 \[internal\] load local bake definitions", shards["convert-tf"].log)[
        1:
    ]
    assert len(runs) == 2  # local (artifact folder, fidelity gate), then push
    ran = []
    for run in runs:
        steps = re.findall(
            r"(?m)^#(\d+) \[[^\]]*\] RUN /opt/tf2aif/venv/bin/python -m tf2aif\.image\.convert", run
        )
        cached = set(re.findall(r"(?m)^#(\d+) CACHED$", run))
        ran.append(sorted({s for s in steps if s not in cached}))
    assert len(ran[0]) == len(converts), runs[0][-4000:]  # each conversion ran once...
    assert ran[1] == []  # ...and the push reused it
    for name in ("build-amd64", "build-arm64"):
        assert "tf2aif.image.convert" not in shards[name].log  # artifacts came from the registry
        artifacts = {i["artifact"] for i in shards[name].record["images"]}
        assert artifacts == {
            f"{c['reference'].rsplit(':', 1)[0]}@{c['digest']}" for c in record["conversions"]
        }


def test_a_conversion_in_the_registry_is_never_run_again(project, engines, stand_in_map, shards):
    again = _ci(project, engines[2], stand_in_map, "convert-tf", record=project / "again.json")
    assert again.proc.returncode == 0, again.log[-3000:]
    assert all(c["reused"] for c in again.record["conversions"])
    assert "docker buildx bake" not in again.log and "tf2aif.image.convert" not in again.log
    first = {c["target"]: c["digest"] for c in shards["convert-tf"].record["conversions"]}
    assert {c["target"]: c["digest"] for c in again.record["conversions"]} == first


def test_shards_push_only_staging_tags(shards):
    for name in ("build-amd64", "build-arm64"):
        for image in shards[name].record["images"]:
            assert image["status"] == "success" and image["manifest"].startswith("sha256:")
    assert _final_tags(IMAGE) == {}  # nothing a deployment could pick up before the release


def test_release_assembles_every_platform_and_moves_the_tags(released, shards):
    images = {i["target"]: i for i in released["images"]}
    assert set(images) == set(SERVES)
    tags = _final_tags(IMAGE)
    for target in SERVES:
        image = images[target]
        assert image["status"] == "success"
        for tag in image["tags"]:
            assert tags[tag.rsplit(":", 1)[1]] == image["digest"]
        index = _raw(f"{IMAGE}@{image['digest']}")
        platforms = {
            (m["platform"]["os"], m["platform"]["architecture"]): m["digest"]
            for m in index["manifests"]
            if "vnd.docker.reference.type" not in (m.get("annotations") or {})
        }
        pushed = {
            tuple(i["platform"].split("/")): i["manifest"]
            for run in shards.values()
            for i in run.record["images"]
            if i["target"] == target
        }
        assert platforms == pushed  # the very per-platform images the shards pushed
        assert (
            index["annotations"]["io.tf2aif.content-digest"]
            == image["labels"]["io.tf2aif.content-digest"]
        )
        assert image["fidelity"]["passed"] is True
        assert image["fidelity"]["metrics"]["top1_agreement"] >= 0.98


@pytest.mark.parametrize(
    ("platform", "machine"), [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")]
)
def test_released_index_pulls_back_by_digest_and_runs_with_its_labels(
    released, engines, platform, machine
):
    image = next(i for i in released["images"] if i["target"] == SERVES[0])
    reference = f"{IMAGE}@{image['digest']}"
    env = {**os.environ, "DOCKER_HOST": engines[1]}  # not runner 3: it must stay fresh
    pull = subprocess.run(
        ["docker", "pull", "--platform", platform, reference],
        capture_output=True,
        text=True,
        env=env,
    )
    assert pull.returncode == 0, pull.stderr
    python = "/opt/tf2aif/venv/bin/python"
    code = "import platform; print(platform.machine())"
    run = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--platform", platform,
         "--entrypoint", python, reference, "-c", code],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == machine, run.stderr
    configs = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", reference, "--format", "{{json .Image}}"],
        capture_output=True,
        text=True,
    )
    assert configs.returncode == 0, configs.stderr
    config = json.loads(configs.stdout)[platform]
    labels = config["config"]["Labels"]
    assert labels["io.tf2aif.content-digest"] == image["labels"]["io.tf2aif.content-digest"]
    assert json.loads(labels["io.tf2aif.fidelity"]) == image["fidelity"]
    assert labels["io.tf2aif.variants"] == "cpu/tflite/fp32,arm/tflite/fp32"


def test_a_failed_shard_moves_no_tag(project, engines, stand_in_map, released, shards):
    before = _final_tags(IMAGE)
    assert before
    folder = project / "failing"
    folder.mkdir()
    broken = _ci(
        project, engines[2], stand_in_map, "build-arm64", "--",
        "--set", f"{SERVES[1]}.dockerfile=missing.Dockerfile",
        record=folder / "build-arm64.json",
    )  # fmt: skip
    assert broken.proc.returncode == 3
    assert broken.record["status"] == "failed"
    for name in ("convert-tf", "build-amd64"):
        (folder / f"{name}.json").write_text(json.dumps(shards[name].record))
    started = time.monotonic()
    proc, _ = tf2aif(
        "release", str(folder), "--manifest", str(project / "tf2aif.yaml"),
        "--vendor-map", str(stand_in_map), "--record", str(folder / "record.json"),
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "release refused, no final tag was created or moved" in proc.stderr
    assert time.monotonic() - started < 120
    failed = json.loads((folder / "record.failed.json").read_text())
    statuses = {i["target"]: (i["status"], i["reason"]) for i in failed["images"]}
    assert statuses[SERVES[1]][0] == "failed"
    assert "shard build-arm64" in statuses[SERVES[1]][1]
    assert not (folder / "record.json").exists()
    assert _final_tags(IMAGE) == before


@pytest.fixture(scope="module")
def warm(project, engines, stand_in_map, shards) -> Run:
    """The arm64 shard again on runner 3, an engine that has never built anything."""
    return _ci(project, engines[3], stand_in_map, "build-arm64", record=project / "warm.json")


def test_a_fresh_runner_rebuilds_an_unchanged_shard_from_the_registry_cache(warm, shards):
    assert warm.proc.returncode == 0, warm.log[-4000:]
    cold = shards["build-arm64"]
    speedup = cold.seconds / warm.seconds
    # the runtime base the cold shard pushed under its content address is taken as it is
    assert "base-serve-tflite: " in warm.log and "not built again" in warm.log
    assert "#1 [internal] load local bake definitions" in warm.log  # the server phase ran
    steps = re.findall(r"(?m)^#(\d+) \[[^\]]*\] (?:RUN|COPY|ADD|WORKDIR) ", warm.log)
    cached = set(re.findall(r"(?m)^#(\d+) CACHED$", warm.log))
    _save_timing(
        "arm64 shard",
        {
            "cold_s": round(cold.seconds, 1),
            "warm_s": round(warm.seconds, 1),
            "ratio": round(speedup, 1),
            "steps": len(set(steps)),
            "cached": len(set(steps) & cached),
        },
    )
    assert "importing cache manifest from" in warm.log
    assert steps, warm.log[-4000:]
    unmarked = sorted(set(steps) - cached, key=int)
    if unmarked:
        # BuildKit may print a cache hit as the pull of its layers, without a CACHED line (seen
        # once: one image's COPY lib-serve). A step that really runs stamps the directories it
        # writes with the time it ran (docs/gitops.md), so its image differs from the cold one:
        # unchanged manifests prove the steps came from the cache
        cold_manifests = {i["target"]: i["manifest"] for i in cold.record["images"]}
        rebuilt = [
            i["target"]
            for i in warm.record["images"]
            if cold_manifests[i["target"]] != i["manifest"]
        ]
        assert not rebuilt, f"steps {unmarked} executed on the fresh runner; {rebuilt} differ"
    # no step ran, so only fixed costs remain; 3x holds on any load, the figure is the record's
    assert speedup >= 3, f"cold {cold.seconds:.1f} s, warm {warm.seconds:.1f} s"


def _blob(repository: str, digest: str) -> bytes:
    name = repository.split("/", 1)[1]
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/{name}/blobs/{digest}", timeout=60) as r:
        return r.read()


def _manifest(repository: str, digest: str) -> dict:
    return _raw(f"{repository}@{digest}")


def _files(layer: bytes) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, sha256 of content): everything but the time."""
    import gzip
    import hashlib
    import io
    import tarfile

    out = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else b""
            out[member.name] = (
                member.type,
                member.mode,
                member.uid,
                member.gid,
                hashlib.sha256(data).hexdigest(),
            )
    return out


def test_two_engines_give_the_same_per_platform_digests(warm, shards):
    """The fresh runner's images are byte for byte the cold runner's: same manifest digests.
    Should they differ, the layers that do are named with what differs in them."""
    cold = {i["target"]: i for i in shards["build-arm64"].record["images"]}
    report = {}
    for image in warm.record["images"]:
        a, b = cold[image["target"]]["manifest"], image["manifest"]
        if a == b:
            report[image["target"]] = "identical"
            continue
        ma, mb = _manifest(IMAGE, a), _manifest(IMAGE, b)
        differing = [
            i
            for i, (la, lb) in enumerate(zip(ma["layers"], mb["layers"], strict=True))
            if la["digest"] != lb["digest"]
        ]
        same_files = all(
            _files(_blob(IMAGE, ma["layers"][i]["digest"]))
            == _files(_blob(IMAGE, mb["layers"][i]["digest"]))
            for i in differing
        )
        report[image["target"]] = f"layers {differing} differ" + (
            " in file times only" if same_files else " in content"
        )
    _save_timing("arm64 digests, runner 2 vs runner 3", report)
    assert set(report.values()) == {"identical"}, report

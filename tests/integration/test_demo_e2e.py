"""The demo end to end on real Docker: `tf2aif bake` of tf2aif.yaml on local stand-ins (tflite
fp32 + int8 as amd64+arm64 images, openvino fp32 and tf fp32 on amd64), then the images are run
(arm64 under qemu), queried over HTTP and compared with native TensorFlow; pushed, pulled back
by digest; a broken fidelity gate publishes nothing; a no-op rebuild is all cache hits; no CA in
any layer; non-root with a HEALTHCHECK.

Slow when cold (base images install TensorFlow/OpenVINO/LiteRT from PyPI, arm64 under qemu);
warm runs reuse BuildKit's cache.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tf2aif.image.plugins import load_function

from .conftest import (
    REGISTRY,
    REPO,
    STATE,
    demo_project,
    free_port_of,
    tf2aif,
    wait_ready,
)

pytestmark = pytest.mark.docker

SESSION_REGISTRY = f"{REGISTRY}/tf2aif-it/e2e-{uuid.uuid4().hex[:8]}"
REPOSITORY = f"{SESSION_REGISTRY}/digits"
SERVES = {  # target -> platforms (the demo manifest's four images)
    "serve-cpu-tf-fp32": ("linux/amd64",),
    "serve-cpu-arm-tflite-fp32": ("linux/amd64", "linux/arm64"),
    "serve-cpu-arm-tflite-int8": ("linux/amd64", "linux/arm64"),
    "serve-cpu-openvino-fp32": ("linux/amd64",),
}
CONVERTS = (
    "convert-tf-fp32",
    "convert-tflite-fp32",
    "convert-tflite-int8",
    "convert-openvino-fp32",
)
# arm64 runs under qemu (scripts/docker-up.sh registers trixie's qemu 10: bookworm's 7.2
# crashes ai-edge-litert 2.3.0 when it creates an Interpreter).
RUNS = [pytest.param(t, p, id=f"{t}-{p[6:]}") for t, platforms in SERVES.items() for p in platforms]
TIMINGS = STATE / "test-timings.json"
APP = REPO / "app"


@dataclass(frozen=True, kw_only=True)
class Build:
    root: Path
    log: str
    seconds: float
    record: dict

    def image(self, target: str) -> dict:
        return next(i for i in self.record["images"] if i["target"] == target)


# one timestamp for every build in this module, as CI sets it from the commit
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def _bake(root: Path, vendor_map: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    manifest = str(root / "tf2aif.yaml")
    return tf2aif("bake", manifest, "--vendor-map", str(vendor_map), *args, env=EPOCH)


def _lock(root: Path, stand_in_map: Path, *args: str) -> subprocess.CompletedProcess:
    proc, _ = tf2aif("lock", str(root / "tf2aif.yaml"), "--vendor-map", str(stand_in_map), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory, digits_model) -> Path:
    return demo_project(tmp_path_factory.mktemp("demo"), digits_model, SESSION_REGISTRY)


@pytest.fixture(scope="module")
def pinned(project, stand_in_map) -> Path:
    """`tf2aif lock`: the lock file, and a vendor map pinning every base to its locked digest."""
    pinned = project.parent / "vendor-pinned.yaml"
    _lock(project, stand_in_map, "--write-vendor-map", str(pinned))
    return pinned


@pytest.fixture(scope="module")
def build(project, pinned) -> Build:
    proc, seconds = _bake(project, pinned)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    record = json.loads((project / "tf2aif-record.json").read_text())
    return Build(root=project, log=proc.stdout, seconds=seconds, record=record)


@pytest.fixture(scope="module")
def reference(digits_model):
    """Native TensorFlow on the held-out digits: the baseline every image is compared with."""
    import tensorflow as tf

    _, _, x_test, y_test = load_function(APP / "digits_data.py", "load_digits_split")()
    x = x_test[:64]
    signature = tf.saved_model.load(str(digits_model)).signatures["serving_default"]
    probabilities = next(iter(signature(image=tf.constant(x)).values())).numpy()
    return x, y_test[:64], probabilities, signature


def test_record_has_every_image_with_a_digest(build):
    images = {i["target"]: i for i in build.record["images"]}
    assert set(images) == set(SERVES)
    for target, platforms in SERVES.items():
        assert images[target]["status"] == "success"
        assert tuple(images[target]["platforms"]) == platforms
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", images[target]["digest"] or "")


def _steps_running(log: str, needle: str) -> dict[str, str]:
    """Step id -> label of the steps whose command contains `needle`."""
    found = {}
    for match in re.finditer(r"^#(\d+) \[([^\]]*)\] (.*)$", log, re.M):
        if needle in match[3]:
            found[match[1]] = match[2]
    return found


@pytest.mark.parametrize("convert", CONVERTS)
def test_each_conversion_ran_once_on_the_build_platform(build, convert):
    bake = json.loads((build.root / ".tf2aif" / "docker-bake.json").read_text())
    spec = bake["target"][convert]["args"]["CONVERT_SPEC"]
    # each bake run (conversions, then servers) numbers its steps from #1
    runs = re.split(r"(?m)^#1 \[internal\] load local bake definitions", build.log)[1:]
    per_run = [_steps_running(run, spec) for run in runs]
    assert per_run[0], f"{convert} did not run in the conversion phase"
    for steps in per_run:
        # one step per run however many platforms consume it, and never a foreign platform
        assert len(steps) <= 1, steps
        assert not any("linux/" in label for label in steps.values()), steps
    # the server phase reuses the conversion: it shows up CACHED, never executed again
    for run, steps in zip(runs[1:], per_run[1:], strict=True):
        for step in steps:
            assert re.search(rf"(?m)^#{step} CACHED$", run), f"{convert} ran again: #{step}"
    artifact = build.root / ".tf2aif" / "artifacts" / convert
    assert (artifact / "tf2aif-artifact.json").is_file()  # one artifact, no per-platform dirs
    assert not list(artifact.glob("linux_*"))


@pytest.fixture(scope="module")
def docker_client():
    import docker

    client = docker.from_env()
    yield client
    client.close()


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    pixels = (np.asarray(image).reshape(8, 8) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").resize((32, 32), Image.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("target", "platform"), RUNS)
def test_image_serves_the_model_like_native_tf(build, docker_client, reference, target, platform):
    import tritonclient.http as httpclient

    image = build.image(target)
    tag = image["tags"][0]
    container = docker_client.containers.run(
        tag,
        detach=True,
        platform=platform,
        ports={"8080/tcp": ("127.0.0.1", None), "8081/tcp": ("127.0.0.1", None)},
    )
    try:
        url = f"http://127.0.0.1:{free_port_of(container)}"
        started = time.monotonic()
        wait_ready(url, container, timeout=300 if platform.endswith("arm64") else 120)
        ready_s = time.monotonic() - started
        client = httpclient.InferenceServerClient(url=url[len("http://") :], network_timeout=120)
        x, labels, expected, signature = reference
        metadata = client.get_model_metadata("digits")
        output = metadata["outputs"][0]["name"]
        got = []
        for i in range(0, len(x), 8):
            inp = httpclient.InferInput("image", [8, 8, 8, 1], "FP32")
            inp.set_data_from_numpy(x[i : i + 8], binary_data=True)
            result = client.infer(
                "digits", [inp], outputs=[httpclient.InferRequestedOutput(output)]
            )
            got.append(result.as_numpy(output))
        got = np.concatenate(got)
        agreement = float(np.mean(got.argmax(1) == expected.argmax(1)))
        max_abs = float(np.max(np.abs(got - expected)))
        print(
            f"{target} {platform}: ready {ready_s:.1f} s, max|diff| {max_abs:.2e}, top1 {agreement}"
        )
        assert agreement >= 0.98
        assert max_abs <= 0.05

        # the gRPC port answers the same, through tritonclient.grpc unchanged
        import tritonclient.grpc as grpcclient

        grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{free_port_of(container, '8081/tcp')}")
        assert grpc.is_server_ready() and grpc.is_model_ready("digits")
        inp = grpcclient.InferInput("image", [8, 8, 8, 1], "FP32")
        inp.set_data_from_numpy(x[:8])
        over_grpc = grpc.infer("digits", [inp], client_timeout=120).as_numpy(output)
        np.testing.assert_allclose(over_grpc, got[:8], atol=1e-6)

        # the raw endpoint runs the demo's pre/post-processing on a real PNG
        preprocess = load_function(APP / "processing.py", "preprocess")
        png = _png(x[0])
        want = int(next(iter(signature(**preprocess(png, "image/png")).values())).numpy().argmax())
        request = urllib.request.Request(
            f"{url}/v2/models/digits/predict",
            data=png,
            headers={"Content-Type": "image/png"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert answer["digit"] == want == labels[0]
    finally:
        container.remove(force=True)


def test_images_run_as_non_root_with_a_healthcheck(build, docker_client):
    for target in SERVES:
        config = docker_client.images.get(build.image(target)["tags"][0]).attrs["Config"]
        assert config["User"] == "10001:10001"
        assert "/v2/health/ready" in " ".join(config["Healthcheck"]["Test"])
        assert config["ExposedPorts"] == {"8080/tcp": {}, "8081/tcp": {}}


def _ca_marker() -> bytes | None:
    """The longest base64 line of the proxy CA: present in a layer only if the CA leaked."""
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if not certs:
        return None
    lines = [ln.strip() for ln in certs[0].read_text().splitlines() if "-----" not in ln]
    return max(lines, key=len).encode()


def _layer_files(blob: bytes):
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    try:
        with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
            for member in layer.getmembers():
                data = layer.extractfile(member).read() if member.isfile() else b""
                yield member.name, data
    except tarfile.ReadError:  # a config or manifest blob
        yield "", blob


def test_no_ca_or_secret_in_any_image_layer(build, docker_client, tmp_path):
    marker = _ca_marker()
    if marker is None:
        pytest.skip("no proxy CA on this machine: nothing that could leak")
    for target in SERVES:
        saved = tmp_path / f"{target}.tar"
        with saved.open("wb") as out:
            for chunk in docker_client.images.get(build.image(target)["tags"][0]).save():
                out.write(chunk)
        with tarfile.open(saved) as archive:
            blobs = [m for m in archive.getmembers() if m.isfile()]
            assert blobs
            for member in blobs:
                for name, data in _layer_files(archive.extractfile(member).read()):
                    assert marker not in data, f"{target}: CA text in {member.name}:{name}"
                    assert not name.endswith(("run/secrets/ca", "run/secrets/pipconf"))
        saved.unlink()


def _step_states(log: str) -> dict[str, list[str]]:
    """(run, RUN step id) -> how it ended (CACHED / DONE / ERROR), per bake run in the log."""
    states = {}
    runs = re.split(r"(?m)^#1 \[internal\] load local bake definitions", log)[1:]
    for n, run in enumerate(runs):
        for step in {m[1] for m in re.finditer(r"^#(\d+) \[[^\]]+\] RUN ", run, re.M)}:
            ends = re.findall(rf"(?m)^#{step} (CACHED|DONE|ERROR)", run)
            states[f"{n}:#{step}"] = sorted(set(ends))
    return states


def test_noop_rebuild_is_all_cache_hits(build, pinned):
    proc, seconds = _bake(build.root, pinned)
    assert proc.returncode == 0, proc.stdout[-3000:]
    states = _step_states(proc.stdout)
    assert states, "no RUN step in the rebuild log"
    executed = {step: s for step, s in states.items() if s != ["CACHED"]}
    assert not executed, f"steps that ran again: {executed}"
    ratio = build.seconds / seconds
    print(f"first build {build.seconds:.1f} s, no-op rebuild {seconds:.1f} s ({ratio:.1f}x)")
    _save_timing({"first_build_s": round(build.seconds, 1), "noop_rebuild_s": round(seconds, 1)})


def _save_timing(values: dict) -> None:
    data = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}
    TIMINGS.write_text(json.dumps(data | values, indent=2, sort_keys=True))


def _registry_tags() -> dict[str, str]:
    """tag -> digest of every tag in the demo repository."""
    name = REPOSITORY.split("/", 1)[1]
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{name}/tags/list", timeout=10) as r:
            tags = json.load(r).get("tags") or []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise
    return {tag: _digest(f"{REPOSITORY}:{tag}") for tag in tags}


def _digest(ref: str) -> str:
    out = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["digest"]


def _raw(ref: str) -> dict:
    """The manifest or index `ref` names, as the registry stores it."""
    raw = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--raw", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(raw)


def _compressed_sizes(ref: str) -> dict[str, int]:
    """platform -> compressed bytes (config + layers) as stored in the registry."""
    sizes = {}
    for entry in _raw(ref).get("manifests", []):
        platform = entry.get("platform", {})
        if platform.get("architecture") in (None, "unknown"):
            continue
        name, _, _ = ref.partition("@")
        manifest = _raw(f"{name}@{entry['digest']}")
        total = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
        sizes[f"{platform['os']}/{platform['architecture']}"] = total
    return sizes


@pytest.fixture(scope="module")
def pushed(build, pinned) -> dict:
    proc, seconds = _bake(build.root, pinned, "--push")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    _save_timing({"push_s": round(seconds, 1)})
    return json.loads((build.root / "tf2aif-record.json").read_text())


def test_push_tags_point_at_the_recorded_digests_and_pull_back(pushed, docker_client):
    tags = _registry_tags()
    sizes = {}
    for image in pushed["images"]:
        digest = image["digest"]
        for tag in image["tags"]:
            assert tags[tag.rpartition(":")[2]] == digest, tag
        ref = f"{REPOSITORY}@{digest}"
        pulled = docker_client.images.pull(ref, platform=image["platforms"][-1])
        labels = pulled.attrs["Config"]["Labels"]
        runtime, precision = image["runtime"], image["precision"]
        assert labels["io.tf2aif.runtime"] == runtime
        assert labels["io.tf2aif.precision"] == precision
        assert labels["io.tf2aif.model.digest"] == pushed["model_digest"]
        assert json.loads(labels["io.tf2aif.fidelity"])  # the measured fidelity rides along
        assert set(_compressed_sizes(ref)) == set(image["platforms"])
        sizes[image["target"]] = _compressed_sizes(ref)
    print(json.dumps(sizes, indent=2))
    _save_timing({"compressed_bytes": sizes})


def test_failed_fidelity_gate_publishes_nothing(pushed, tmp_path, digits_model, pinned):
    root = demo_project(tmp_path / "strict", digits_model, SESSION_REGISTRY)
    manifest = root / "tf2aif.yaml"
    manifest.write_text(re.sub(r"(?m)^  atol: .*$", "  atol: 0", manifest.read_text()))
    before = _registry_tags()
    proc, _ = _bake(root, pinned, "--push", "--only", "cpu/tflite/int8")
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "convert-tflite-int8" in proc.stderr
    assert "cpu/tflite/int8" in proc.stderr
    assert "nothing was published" in proc.stderr
    assert _registry_tags() == before  # no tag created or moved
    assert not (root / "tf2aif-record.json").exists()
    shutil.rmtree(root / ".tf2aif", ignore_errors=True)


def _platform_manifests(index: dict) -> dict[str, str]:
    """platform -> image manifest digest, attestation manifests left out."""
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m.get("annotations", {}).get("vnd.docker.reference.type") != "attestation-manifest"
    }


def test_a_locked_rebuild_elsewhere_gives_the_same_tags_and_image_digests(
    pushed, build, pinned, stand_in_map, tmp_path, digits_model
):
    """A second CI run: a fresh checkout in another folder, `lock --check`, `bake --push`.

    Deterministic: the bake file bytes, every tag, and every platform's image manifest (config
    and layers). Not deterministic: the index digest, because the SLSA provenance attached to
    it records the build's start and finish times and its local context paths; the index
    lists the same image manifests next to a different attestation manifest.
    """
    again = demo_project(tmp_path / "checkout", digits_model, SESSION_REGISTRY)
    shutil.copy(build.root / "tf2aif.lock", again / "tf2aif.lock")
    check = _lock(again, stand_in_map, "--check")
    assert "up to date" in check.stdout + check.stderr
    proc, _ = _bake(again, pinned, "--push")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    first_bake = (build.root / ".tf2aif" / "docker-bake.json").read_bytes()
    assert (again / ".tf2aif" / "docker-bake.json").read_bytes() == first_bake
    second = json.loads((again / "tf2aif-record.json").read_text())
    assert second["source_date_epoch"] == pushed["source_date_epoch"] == EPOCH["SOURCE_DATE_EPOCH"]
    images = {i["target"]: i for i in second["images"]}
    for image in pushed["images"]:
        other = images[image["target"]]
        assert other["tags"] == image["tags"]
        first_index = _raw(f"{REPOSITORY}@{image['digest']}")
        second_index = _raw(f"{REPOSITORY}@{other['digest']}")
        assert _platform_manifests(second_index) == _platform_manifests(first_index)
        assert set(_platform_manifests(first_index)) == set(image["platforms"])
        for tag in image["tags"]:  # the tags now point at the second run's index
            assert _digest(tag) == other["digest"]

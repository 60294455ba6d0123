"""Cluster, apps and profile files: located schema errors, expansion, the fidelity gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tf2aif.errors import ManifestError
from tf2aif.place.inputs import load_apps, load_cluster, load_profiles

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "placement"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_cluster_expands_counts_and_defaults():
    nodes = load_cluster(EXAMPLES / "cluster.yaml")
    assert [n.name for n in nodes] == ["edge-cpu-1", "edge-cpu-2", "edge-arm", "gpu-1", "fpga-1"]
    fpga = nodes[-1]
    assert fpga.accelerator.sharing == "exclusive" and fpga.cap == 0.8
    assert nodes[0].accelerator is None and nodes[0].labels == {"zone": "factory"}


def test_schema_errors_are_located_with_line_column_and_path(tmp_path):
    path = write(
        tmp_path,
        "cluster.yaml",
        "version: 1\n"
        "nodes:\n"
        "  - name: a\n"
        "    platform: cpu\n"
        "    memory_mb: 100\n"
        "  - name: b\n"
        "    platform: tpu\n"
        "    memroy_mb: 100\n",
    )
    with pytest.raises(ManifestError) as caught:
        load_cluster(path)
    text = str(caught.value)
    assert f"{path}: 3 errors" in text
    assert f"{path}:6:5: nodes[1]: missing required key 'memory_mb'" in text
    assert (
        f"{path}:7:15: nodes[1].platform: expected one of cpu, arm, gpu, agx, alveo, got 'tpu' (did you mean \"gpu\"?)"
        in text
    )
    assert (
        f"{path}:8:5: nodes[1].memroy_mb: unknown key 'memroy_mb' (did you mean \"memory_mb\"?)"
        in text
    )


def test_wrong_type_says_what_was_expected(tmp_path):
    path = write(
        tmp_path,
        "cluster.yaml",
        "version: 1\nnodes:\n  - {name: a, platform: cpu, memory_mb: lots}\n",
    )
    with pytest.raises(
        ManifestError, match=r":3:41: nodes\[0\]\.memory_mb: expected a number, got str 'lots'"
    ):
        load_cluster(path)


def test_duplicate_node_names_are_rejected(tmp_path):
    path = write(
        tmp_path,
        "cluster.yaml",
        "version: 1\nnodes:\n  - {name: a, platform: cpu, memory_mb: 1}\n  - {name: a, platform: arm, memory_mb: 1}\n",
    )
    with pytest.raises(ManifestError, match=r":4:5: nodes\[1\]: duplicate node name 'a'"):
        load_cluster(path)


def test_yaml_syntax_error_is_located(tmp_path):
    path = write(tmp_path, "cluster.yaml", "version: 1\nnodes: [\n")
    with pytest.raises(ManifestError, match=r"cluster.yaml:3:1: \(top level\): invalid YAML"):
        load_cluster(path)


def test_profiles_convert_milliseconds_and_default_to_deterministic(tmp_path):
    model, profiles = load_profiles(EXAMPLES / "resnet50.profiles.json")
    assert model == "resnet50"
    fpga = profiles["alveo/vitis-ai/int8"]
    assert fpga.service == pytest.approx(0.002) and fpga.switch == pytest.approx(0.020)
    path = write(
        tmp_path,
        "p.json",
        json.dumps(
            {
                "version": 1,
                "model": "m",
                "profiles": [{"variant": "cpu/tf/fp32", "service_ms": 4, "memory_mb": 9}],
            }
        ),
    )
    _, (only,) = load_profiles(path)[0], load_profiles(path)[1].values()
    assert only.service_m2 == pytest.approx(0.004**2)


def copy_examples(tmp_path: Path) -> Path:
    for item in EXAMPLES.iterdir():
        shutil.copy(item, tmp_path / item.name)
    return tmp_path


def test_int8_needs_a_passed_fidelity_check_in_the_record(tmp_path):
    folder = copy_examples(tmp_path)
    record = json.loads((folder / "digits.record.json").read_text())
    record["images"][1]["fidelity"] = {"passed": False, "top1_agreement": 0.91}
    (folder / "digits.record.json").write_text(json.dumps(record))
    _, models = load_apps(folder / "apps.yaml")
    digits = models["digits"]
    assert "cpu/tflite/int8" not in digits.profiles
    assert (
        digits.excluded["cpu/tflite/int8"]
        == "int8 without a passed fidelity check in the build record"
    )
    assert digits.images["cpu/tflite/fp32"].startswith("127.0.0.1:5000/tf2aif/digits@sha256:4f2a")


def test_failed_builds_and_unbuilt_variants_are_not_placeable(tmp_path):
    folder = copy_examples(tmp_path)
    record = json.loads((folder / "digits.record.json").read_text())
    record["images"][0]["status"] = "failed"
    record["images"][0]["reason"] = "convert-tflite-fp32 failed"
    record["images"] = record["images"][:1]
    (folder / "digits.record.json").write_text(json.dumps(record))
    _, models = load_apps(folder / "apps.yaml")
    excluded = models["digits"].excluded
    assert excluded["cpu/tflite/fp32"] == "build did not succeed (convert-tflite-fp32 failed)"
    assert excluded["arm/tflite/int8"] == "not in the build record"


def test_unknown_model_in_apps_is_located_with_a_suggestion(tmp_path):
    folder = copy_examples(tmp_path)
    text = (
        (folder / "apps.yaml")
        .read_text()
        .replace("model: resnet50, rate: 20", "model: resnet-50, rate: 20")
    )
    (folder / "apps.yaml").write_text(text)
    with pytest.raises(
        ManifestError,
        match=r"apps.yaml:16:32: apps\[4\].model: unknown model 'resnet-50' \(did you mean \"resnet50\"\?\)",
    ):
        load_apps(folder / "apps.yaml")

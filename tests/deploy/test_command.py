"""`tf2aif deploy k8s` through the real CLI: files, stable bytes, errors and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tf2aif.cli.main import main


def test_writes_one_file_per_variant_and_a_kustomization(record_path: Path, tmp_path: Path):
    out = tmp_path / "k8s"
    code = main(
        ["deploy", "k8s", "--record", str(record_path), "--out", str(out), "--replicas", "3"]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "digits-agx-tensorrt-int8.yaml",
        "digits-alveo-vitis-ai-int8.yaml",
        "digits-arm-tflite-fp32.yaml",
        "digits-cpu-tf-fp32.yaml",
        "digits-cpu-tflite-fp32.yaml",
        "digits-gpu-tensorrt-fp16.yaml",
        "kustomization.yaml",
    ]
    documents = list(yaml.safe_load_all((out / "digits-gpu-tensorrt-fp16.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["Deployment", "Service"]
    assert documents[0]["spec"]["replicas"] == 3
    for document in documents:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert len(kustomization["resources"]) == 6


def test_output_is_byte_identical_across_runs(record_path: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["deploy", "k8s", "--record", str(record_path), "--out", str(out)]) == 0
    for path in first.iterdir():
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name


def test_failed_variants_are_reported_on_stderr(record_path: Path, tmp_path: Path, capsys):
    assert main(["deploy", "k8s", "--record", str(record_path), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "skipped cpu/openvino/int8: image serve-cpu-openvino-int8 has status failed" in err


def test_print_writes_nothing(record_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "none"
    code = main(["deploy", "k8s", "--record", str(record_path), "--out", str(out), "--print",
                 "--only", "arm/*", "--namespace", "edge"])  # fmt: skip
    assert code == 0
    assert not out.exists()
    printed = capsys.readouterr().out
    assert printed.startswith("# digits-arm-tflite-fp32.yaml\n---\napiVersion: apps/v1\n")
    assert "# kustomization.yaml\napiVersion: kustomize.config.k8s.io/v1beta1\n" in printed
    assert "namespace: edge" in printed


def test_missing_record_exits_1_with_a_hint(tmp_path: Path, capsys) -> None:
    code = main(["deploy", "k8s", "--record", str(tmp_path / "nope.json")])
    assert code == 1
    assert "build record not found; run `tf2aif bake` first" in capsys.readouterr().err


def test_not_a_record_exits_1(tmp_path: Path, capsys) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"name": "x"}))
    assert main(["deploy", "k8s", "--record", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: 6 errors in this build record" in err
    assert f"{path}:1:1: (top level): missing required key 'images'" in err


def test_zero_replicas_is_a_usage_error(record_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["deploy", "k8s", "--record", str(record_path), "--replicas", "0"])
    assert exc.value.code == 2


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_output(record_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    assert main(["deploy", "k8s", "--record", str(record_path), "--out", str(out),
                 "--namespace", "ml"]) == 0  # fmt: skip
    built = subprocess.run(
        ["kubectl", "kustomize", str(out)], check=True, capture_output=True, text=True
    ).stdout
    documents = list(yaml.safe_load_all(built))
    assert sorted((d["kind"], d["metadata"]["name"]) for d in documents)[:2] == [
        ("Deployment", "digits-agx-tensorrt-int8"),
        ("Deployment", "digits-alveo-vitis-ai-int8"),
    ]
    assert len(documents) == 12
    assert {d["metadata"]["namespace"] for d in documents} == {"ml"}


def test_a_record_written_by_the_build_stage_deploys(tmp_path: Path) -> None:
    """The record contract end to end: plan -> make_record/save_record -> deploy k8s."""
    from tf2aif.pipeline.build import Result, Status
    from tf2aif.pipeline.manifest import load_manifest
    from tf2aif.pipeline.plan import make_plan
    from tf2aif.pipeline.recipes import load_recipes
    from tf2aif.pipeline.record import make_record, save_record
    from tf2aif.pipeline.resolve import resolve

    root = tmp_path / "p"
    (root / "models" / "m").mkdir(parents=True)
    (root / "models" / "m" / "saved_model.pb").write_bytes(b"stand-in")
    (root / "tf2aif.yaml").write_text(
        "version: 1\nname: digits\nmodel: {path: models/m}\nregistry: 127.0.0.1:5000/team\n"
        "targets: {platforms: [cpu, arm], runtimes: [tflite, openvino], precisions: [fp32]}\n"
    )
    manifest, _ = load_manifest(root / "tf2aif.yaml")
    plan = make_plan(resolve(manifest, load_recipes(env={})), env={})
    digest = "sha256:" + "7" * 64
    results = [Result(target=c.name, status=Status.SUCCESS) for c in plan.converts]
    for serve in plan.serves:
        ok = serve.runtime == "tflite"
        results.append(
            Result(
                target=serve.name,
                status=Status.SUCCESS if ok else Status.FAILED,
                digest=digest if ok else None,
                reason="" if ok else "server stage failed",
            )
        )
    record = save_record(
        make_record(plan, results, fidelity={}, tools={}), root / "tf2aif-record.json"
    )
    out = tmp_path / "k8s"
    assert main(["deploy", "k8s", "--record", str(record), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "digits-arm-tflite-fp32.yaml",
        "digits-cpu-tflite-fp32.yaml",
        "kustomization.yaml",
    ]
    deployment = next(yaml.safe_load_all((out / "digits-arm-tflite-fp32.yaml").read_text()))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"127.0.0.1:5000/team/digits@{digest}"
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64"}


def test_a_platform_added_by_a_recipe_folder_deploys_on_its_arch(
    write_record, record_data: dict, tmp_path: Path, monkeypatch, capsys
) -> None:
    folder = tmp_path / "more-recipes"
    folder.mkdir()
    (folder / "platforms.yaml").write_text("platforms:\n  rpi5: {arch: arm64}\n")
    entry = dict(record_data["images"][0])
    entry.update(target="serve-rpi5-tflite-int8", variants=["rpi5/tflite/int8"],
                 platforms=["linux/amd64", "linux/arm64"])  # fmt: skip
    path = write_record({**record_data, "images": [entry]})
    argv = ["deploy", "k8s", "--record", str(path), "--print"]
    assert main(argv) == 1  # a multi-arch image of an unknown platform cannot be placed
    assert "platform 'rpi5' is defined by no recipe" in capsys.readouterr().err
    monkeypatch.setenv("TF2AIF_RECIPE_PATH", str(folder))
    assert main(argv) == 0
    deployment = next(yaml.safe_load_all(capsys.readouterr().out))
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert selector == {"kubernetes.io/arch": "arm64"}

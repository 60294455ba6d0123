"""`tf2aif deploy k8s` on generated build records: every successful variant gets exactly one
Deployment and one Service with a distinct valid name, whatever the model and variant names."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.deploy.k8s import manifest_files, workloads_from_record
from tf2aif.errors import Tf2aifError
from tf2aif.pipeline.record import read_record

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
PLATFORMS = ("cpu", "arm", "gpu", "agx", "alveo")
# runtimes that sanitise to the same label ("tf-lite", "tf_lite", "TF.lite") or run long
RUNTIMES = ("tflite", "tf-lite", "tf_lite", "TF.lite", "openvino", "r" * 40)
PRECISIONS = ("fp32", "fp16", "int8")


def image(target: str, variant: str, runtime: str, precision: str, status: str) -> dict:
    arch = "arm64" if variant.split("/")[0] in ("arm", "agx") else "amd64"
    return {
        "target": target,
        "variants": [variant],
        "runtime": runtime,
        "precision": precision,
        "platforms": [f"linux/{arch}"],
        "image": "127.0.0.1:5000/tf2aif/m",
        "tags": [f"127.0.0.1:5000/tf2aif/m:{target}-c0ffee"],
        "digest": "sha256:" + "1" * 64 if status == "success" else None,
        "status": status,
        "reason": "" if status == "success" else "failed in the test",
        "convert_target": f"convert-{target}",
        "fidelity": {},
        "durations": {},
        "base_images": {},
    }


@st.composite
def records(draw) -> dict:
    variants = draw(
        st.lists(
            st.tuples(
                st.sampled_from(PLATFORMS), st.sampled_from(RUNTIMES), st.sampled_from(PRECISIONS)
            ),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    images = []
    for i, (platform, runtime, precision) in enumerate(variants):
        status = draw(st.sampled_from(["success", "success", "failed"]))
        images.append(
            image(
                f"serve-{i}",
                f"{platform}/{runtime}/{precision}",
                runtime,
                precision,
                status=status,
            )
        )
    # valid image names (the record schema refuses others) that are awkward Kubernetes names
    name = draw(st.sampled_from(["digits", "3d-unet", "m" * 63, "a-b", "0"]))
    return {
        "version": 1,
        "manifest": "tf2aif.yaml",
        "name": name,
        "model_digest": "sha256:" + "a" * 64,
        "registry": "127.0.0.1:5000/tf2aif",
        "created": "2026-11-23T15:00:00Z",
        "tools": {},
        "images": images,
    }


@pytest.mark.fuzz
@given(records())
def test_every_successful_variant_has_one_deployment_and_one_service(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("record") / "tf2aif-record.json"
    path.write_text(json.dumps(data))
    workloads, skipped = workloads_from_record(read_record(path))
    wanted = {v for i in data["images"] if i["status"] == "success" for v in i["variants"]}
    assert {w.variant for w in workloads} == wanted
    assert len(skipped) == sum(i["status"] != "success" for i in data["images"])
    if not wanted:
        with pytest.raises(Tf2aifError, match="nothing to deploy"):
            manifest_files(workloads)
        return
    files = manifest_files(workloads)
    names = [w.name for w in workloads]
    assert len(set(names)) == len(names)
    assert all(DNS_1035.fullmatch(n) and len(n) <= 63 for n in names)
    assert set(files) == {f"{n}.yaml" for n in names} | {"kustomization.yaml"}
    for workload in workloads:
        kinds = [(d["kind"], d["metadata"]["name"]) for d in files[f"{workload.name}.yaml"]]
        assert kinds == [("Deployment", workload.name), ("Service", workload.name)]
    assert files["kustomization.yaml"][0]["resources"] == sorted(f"{n}.yaml" for n in names)

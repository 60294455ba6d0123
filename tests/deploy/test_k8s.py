"""Kubernetes objects from a build record: placement per platform, security, probes, validity."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest

from tf2aif.deploy.k8s import (
    CACHE_DIR,
    Resources,
    Workload,
    deployment_for,
    manifest_files,
    service_for,
    workload_name,
    workloads_from_record,
)
from tf2aif.deploy.platforms import DEFAULT_FPGA_RESOURCE, profile_for
from tf2aif.errors import Tf2aifError
from tf2aif.pipeline.record import read_record

K8S_VERSION = kubernetes_validate.latest_version()
DIGEST = "sha256:" + "1" * 64


def by_name(record_path: Path, **kwargs) -> dict[str, Workload]:
    workloads, _ = workloads_from_record(read_record(record_path), **kwargs)
    return {w.name: w for w in workloads}


def pod_spec(workload: Workload) -> dict:
    return deployment_for(workload)["spec"]["template"]["spec"]


def container(workload: Workload) -> dict:
    return pod_spec(workload)["containers"][0]


def test_every_document_is_valid_against_the_kubernetes_schemas(record_path: Path) -> None:
    workloads, _ = workloads_from_record(read_record(record_path), namespace="ml", replicas=2)
    pinned = Workload(
        name="digits-pinned", model="digits", variant="cpu/tflite/fp32",
        image="r/x@" + DIGEST, profile=profile_for("cpu"), node="worker-3",
    )  # fmt: skip
    documents = [doc for w in (*workloads, pinned) for doc in (deployment_for(w), service_for(w))]
    assert len(documents) == 14
    for document in documents:
        # strict: unknown fields (a typo such as `readinesProbe`) are errors too
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_schema_validation_catches_a_broken_document(record_path: Path) -> None:
    workload = by_name(record_path)["digits-cpu-tflite-fp32"]
    broken = deployment_for(workload)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_one_workload_per_successful_variant_and_failed_images_are_reported(
    record_path: Path,
) -> None:
    workloads, skipped = workloads_from_record(read_record(record_path))
    assert [w.name for w in workloads] == [
        "digits-agx-tensorrt-int8",
        "digits-alveo-vitis-ai-int8",
        "digits-arm-tflite-fp32",
        "digits-cpu-tf-fp32",
        "digits-cpu-tflite-fp32",
        "digits-gpu-tensorrt-fp16",
    ]
    assert skipped == ("cpu/openvino/int8: image serve-cpu-openvino-int8 has status failed",)


@pytest.mark.parametrize(
    ("name", "selector", "device"),
    [
        ("digits-cpu-tflite-fp32", {"kubernetes.io/arch": "amd64"}, None),
        ("digits-arm-tflite-fp32", {"kubernetes.io/arch": "arm64"}, None),
        (
            "digits-gpu-tensorrt-fp16",
            {"kubernetes.io/arch": "amd64", "nvidia.com/gpu.present": "true"},
            "nvidia.com/gpu",
        ),
        (
            "digits-agx-tensorrt-int8",
            {
                "kubernetes.io/arch": "arm64",
                "feature.node.kubernetes.io/cpu-model.vendor_id": "NVIDIA",
            },
            "nvidia.com/gpu",
        ),
        (
            "digits-alveo-vitis-ai-int8",
            {"kubernetes.io/arch": "amd64", "feature.node.kubernetes.io/pci-10ee.present": "true"},
            DEFAULT_FPGA_RESOURCE,
        ),
    ],
)
def test_placement_per_platform(record_path: Path, name: str, selector: dict, device: str | None):
    workload = by_name(record_path)[name]
    spec = pod_spec(workload)
    assert spec["nodeSelector"] == selector
    resources = container(workload)["resources"]
    if device is None:
        assert resources == {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        }
        assert "tolerations" not in spec
    else:
        assert resources["limits"][device] == 1
        assert resources["requests"][device] == 1
    if device == "nvidia.com/gpu":
        assert spec["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]


def test_fpga_resource_is_overridable(record_path: Path) -> None:
    resource = "amd.com/xilinx_u55c_gen3x16_xdma_base_3-0"
    workload = by_name(record_path, fpga_resource=resource)["digits-alveo-vitis-ai-int8"]
    assert container(workload)["resources"]["limits"][resource] == 1
    assert DEFAULT_FPGA_RESOURCE not in container(workload)["resources"]["limits"]


def test_image_by_digest_else_by_content_tag(record_path: Path) -> None:
    workloads = by_name(record_path)
    assert container(workloads["digits-cpu-tflite-fp32"])["image"] == (
        "127.0.0.1:5000/tf2aif/digits@" + DIGEST
    )
    assert container(workloads["digits-cpu-tf-fp32"])["image"] == (
        "127.0.0.1:5000/tf2aif/digits:tf-fp32-c0ffee"
    )


def test_probes_port_metrics_and_security(record_path: Path) -> None:
    workload = by_name(record_path)["digits-cpu-tflite-fp32"]
    deployment = deployment_for(workload)
    box = container(workload)
    assert box["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert box["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert box["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
        "tf2aif.io/variant": "cpu/tflite/fp32",
    }
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert box["securityContext"]["runAsUser"] == 10001
    assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
    assert box["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    service = service_for(workload)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8080


def test_grpc_readiness_probe_asks_the_grpc_health_service(record_path: Path) -> None:
    workloads = by_name(record_path, probes="grpc")
    for workload in workloads.values():
        box = container(workload)
        assert box["readinessProbe"] == {
            "grpc": {"port": 8081, "service": ""},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        }
        # a long load (TensorRT engine build) must not look dead: liveness stays on HTTP
        assert box["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        assert box["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        kubernetes_validate.validate(deployment_for(workload), K8S_VERSION, strict=True)
    http = by_name(record_path)["digits-cpu-tflite-fp32"]
    assert "grpc" not in container(http)["readinessProbe"]
    with pytest.raises(Tf2aifError, match="probes 'tcp': choose one of http, grpc"):
        deployment_for(Workload(**{**vars(http), "probes": "tcp"}))


def test_tensorrt_gets_a_writable_engine_cache(record_path: Path) -> None:
    for name in ("digits-gpu-tensorrt-fp16", "digits-agx-tensorrt-int8"):
        workload = by_name(record_path)[name]
        assert {"name": "engine-cache", "mountPath": CACHE_DIR} in container(workload)[
            "volumeMounts"
        ]
        assert {"name": "engine-cache", "emptyDir": {"sizeLimit": "2Gi"}} in pod_spec(workload)[
            "volumes"
        ]
    other = by_name(record_path)["digits-alveo-vitis-ai-int8"]
    assert all(v["name"] != "engine-cache" for v in pod_spec(other)["volumes"])


def test_deployment_pinned_to_a_node_keeps_the_platform_selector() -> None:
    workload = Workload(
        name="shop-gpu-tensorrt-fp16",
        model="shop",
        variant="gpu/tensorrt/fp16",
        image="r/shop@" + DIGEST,
        profile=profile_for("gpu"),
        node="gpu-node-7",
        resources=Resources(cpu_request="2", memory_request="1Gi", cpu_limit="2"),
        extra_labels={"tf2aif.io/app": "checkout"},
    )
    spec = pod_spec(workload)
    assert spec["affinity"] == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["gpu-node-7"],
                            }
                        ]
                    }
                ]
            }
        }
    }
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert container(workload)["resources"]["limits"] == {
        "memory": "2Gi",
        "cpu": "2",
        "nvidia.com/gpu": 1,
    }
    assert deployment_for(workload)["metadata"]["labels"]["tf2aif.io/app"] == "checkout"


def test_only_patterns_select_variants(record_path: Path) -> None:
    workloads, skipped = workloads_from_record(read_record(record_path), only=["*/tflite/*"])
    assert [w.variant for w in workloads] == ["arm/tflite/fp32", "cpu/tflite/fp32"]
    assert skipped == ()


def test_manifest_files_and_kustomization(record_path: Path) -> None:
    workloads, _ = workloads_from_record(read_record(record_path), only=["cpu/*"], namespace="ml")
    files = manifest_files(workloads, namespace="ml")
    assert list(files) == [
        "digits-cpu-tf-fp32.yaml",
        "digits-cpu-tflite-fp32.yaml",
        "kustomization.yaml",
    ]
    assert files["kustomization.yaml"] == [
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": "ml",
            "resources": ["digits-cpu-tf-fp32.yaml", "digits-cpu-tflite-fp32.yaml"],
        }
    ]
    assert [d["kind"] for d in files["digits-cpu-tf-fp32.yaml"]] == ["Deployment", "Service"]
    service = files["digits-cpu-tf-fp32.yaml"][1]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("http", 8080, "http"),
        ("grpc", 8081, "grpc"),
    ]


def test_nothing_to_deploy_is_an_error(record_path: Path) -> None:
    workloads, _ = workloads_from_record(read_record(record_path), only=["tpu/*"])
    with pytest.raises(Tf2aifError, match="nothing to deploy"):
        manifest_files(workloads)


@pytest.mark.parametrize(
    ("model", "variant", "expected"),
    [
        ("digits", "cpu/openvino/fp32", "digits-cpu-openvino-fp32"),
        ("My_Model.v2", "alveo/vitis-ai/int8", "my-model-v2-alveo-vitis-ai-int8"),
        ("3d-unet", "cpu/tf/fp32", "m-3d-unet-cpu-tf-fp32"),
        ("a" * 70, "cpu/tf/fp32", "a" * 63),
    ],
)
def test_workload_names_are_dns_labels(model: str, variant: str, expected: str) -> None:
    assert workload_name(model, variant) == expected


def test_unknown_platform_uses_its_single_arch_image() -> None:
    assert profile_for("rpi", image_platforms=("linux/arm64",)).node_selector == {
        "kubernetes.io/arch": "arm64"
    }
    with pytest.raises(Tf2aifError, match=r"platform 'rpi' is defined by no recipe"):
        profile_for("rpi", image_platforms=("linux/amd64", "linux/arm64"))


def test_variants_sharing_a_name_get_distinct_names(write_record, record_data: dict) -> None:
    record_data["images"][0]["variants"] = ["cpu/tflite/fp32", "cpu/tflite_/fp32"]
    workloads, _ = workloads_from_record(read_record(write_record(record_data)))
    names = {w.variant: w.name for w in workloads}
    assert names["cpu/tflite/fp32"] != names["cpu/tflite_/fp32"]
    for variant in ("cpu/tflite/fp32", "cpu/tflite_/fp32"):
        assert re.fullmatch(r"digits-cpu-tflite-fp32-[0-9a-f]{8}", names[variant])
    files = manifest_files(workloads)
    assert len(files) == len(workloads) + 1
    assert {f"{w.name}.yaml" for w in workloads} == set(files) - {"kustomization.yaml"}


def test_a_variant_listed_twice_is_an_error(write_record, record_data: dict) -> None:
    record_data["images"][1]["variants"] = ["cpu/tflite/fp32"]
    with pytest.raises(Tf2aifError, match="both list variant 'cpu/tflite/fp32'"):
        workloads_from_record(read_record(write_record(record_data)))


def test_an_incomplete_set_of_manifests_is_refused(record_path: Path) -> None:
    from tf2aif.deploy.k8s import check_complete

    workloads, _ = workloads_from_record(read_record(record_path))
    files = manifest_files(workloads)
    first = f"{workloads[0].name}.yaml"
    with pytest.raises(Tf2aifError, match="has no single Deployment and Service"):
        check_complete(workloads, {**files, first: files[first][:1]})
    second = f"{workloads[1].name}.yaml"
    with pytest.raises(Tf2aifError, match="written 2 times"):
        check_complete(workloads, {**files, second: files[first]})


def test_malformed_variant_is_an_error(write_record, record_data: dict) -> None:
    record_data["images"][0]["variants"] = ["cpu-tflite-fp32"]
    with pytest.raises(Tf2aifError, match="is not <platform>/<runtime>/<precision>"):
        workloads_from_record(read_record(write_record(record_data)))


def test_workload_for_pins_one_record_variant_to_a_node(record_path: Path) -> None:
    from tf2aif.deploy import workload_for

    record = read_record(record_path)
    image = next(i for i in record.images if i.target == "serve-cpu-arm-tflite-fp32")
    workload = workload_for(record.name, image, "arm/tflite/fp32", node="pi-3", replicas=2)
    deployment = deployment_for(workload)
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["metadata"]["name"] == "digits-arm-tflite-fp32"
    assert deployment["spec"]["replicas"] == 2
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["pi-3"]
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    with pytest.raises(Tf2aifError, match="does not serve 'gpu/tflite/fp32'"):
        workload_for(record.name, image, "gpu/tflite/fp32")

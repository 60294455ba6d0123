"""Kubernetes manifests of a placement are valid and carry pinning, probes, image, scraping."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf2aif.place.inputs import load_apps, load_cluster
from tf2aif.place.k8s import manifests
from tf2aif.place.policy import place

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "placement"

kubernetes_validate = pytest.importorskip("kubernetes_validate")


@pytest.fixture(scope="module")
def files():
    nodes = load_cluster(EXAMPLES / "cluster.yaml")
    apps, models = load_apps(EXAMPLES / "apps.yaml")
    placement = place(apps, models, nodes)
    return placement, manifests(placement, {n.name: n for n in nodes})


def test_every_document_is_a_valid_kubernetes_object(files):
    _, docs_by_file = files
    version = kubernetes_validate.latest_version()
    count = 0
    for docs in docs_by_file.values():
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
            count += 1
    assert count >= 4


def test_deployment_is_pinned_probed_scraped_and_uses_the_record_image(files):
    placement, docs_by_file = files
    digits = next(a for a in placement.assignments if a.app == "mail-sorter")
    deployment, *services = docs_by_file[f"{digits.instance}.yaml"]
    spec = deployment["spec"]["template"]["spec"]
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]
    assert term["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [digits.node]}
    ]
    (container,) = spec["containers"]
    assert container["image"] == digits.image and "@sha256:" in container["image"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["resources"]["requests"]["memory"] == "62Mi"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    apps = deployment["metadata"]["annotations"]["tf2aif.io/apps"]
    assert apps == "mail-sorter,form-reader,meter-reader"
    assert {s["metadata"]["name"] for s in services} == {
        "mail-sorter",
        "form-reader",
        "meter-reader",
    }
    assert all(
        s["spec"]["selector"] == {"app.kubernetes.io/instance": digits.instance} for s in services
    )


def test_gpu_servers_request_the_device(files):
    placement, docs_by_file = files
    shelf = next(a for a in placement.assignments if a.app == "shelf-camera")
    deployment = docs_by_file[f"{shelf.instance}.yaml"][0]
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1

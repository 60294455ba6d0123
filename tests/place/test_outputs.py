"""What `tf2aif place` writes is complete: one Deployment per server instance, one Service per
placed app, no two files or objects sharing a name -- for the cases that once lost files and
for generated clusters and apps. Generated placements are also judged by the simulator."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tf2aif.errors import Tf2aifError
from tf2aif.place.inputs import Accelerator, App, ModelSpec, Node, Profile
from tf2aif.place.judge import judge
from tf2aif.place.k8s import check_complete, manifests
from tf2aif.place.names import LABEL_LIMIT, InstanceKey, instance_names
from tf2aif.place.policy import POLICIES, place
from tf2aif.place.predict import capacity_violation, evaluate, memory_violation

LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def model(name: str, variant: str, service_ms: float, memory: float = 100.0, **extra) -> ModelSpec:
    s = service_ms / 1e3
    profile = Profile(variant=variant, service=s, service_m2=s * s, memory_mb=memory, **extra)
    return ModelSpec(name=name, profiles={variant: profile}, images={variant: f"r/{name}:1"})


def objects(files) -> list[tuple[str, str]]:
    return [(d["kind"], d["metadata"]["name"]) for docs in files.values() for d in docs]


def check_outputs(placement, nodes) -> dict:
    """The invariants of every placement's outputs; returns the manifest files."""
    files = manifests(placement, {n.name: n for n in nodes})
    servers = list(placement.servers())
    names = [name for _, name, _ in servers]
    assert len(set(names)) == len(names), "instance names must be unique"
    assert all(LABEL.fullmatch(n) and len(n) <= LABEL_LIMIT for n in names)
    assert set(files) == {f"{n}.yaml" for n in names}
    found = objects(files)
    assert len(set(found)) == len(found), "no object may be written twice"
    deployments = sorted(name for kind, name in found if kind == "Deployment")
    assert deployments == sorted(names), "exactly one Deployment per placed instance"
    services = {
        d["metadata"]["name"]: d for docs in files.values() for d in docs if d["kind"] == "Service"
    }
    assert sorted(services) == sorted(a.app for a in placement.assignments)
    for a in placement.assignments:
        assert services[a.app]["spec"]["selector"] == {"app.kubernetes.io/instance": a.instance}
        assert a.instance in names
    placed = {app.name for _, _, instance in servers for app in instance.apps}
    assert placed == {a.app for a in placement.assignments}
    assert placed.isdisjoint(app for app, _ in placement.unplaced)
    return files


def test_two_servers_of_one_model_and_variant_on_one_node_get_their_own_files():
    # one server cannot take both apps (120 req/s x 10 ms), two servers on four cores can
    node = Node(name="n", platform="cpu", memory_mb=4096, cores=4)
    apps = [App(name=f"app-{i}", model="m", rate=60, slo=0.05) for i in range(2)]
    placement = place(apps, {"m": model("m", "cpu/tflite/fp32", 10.0)}, [node])
    assert not placement.unplaced
    assert len(placement.instances["n"]) == 2
    files = check_outputs(placement, [node])
    assert sorted(files) == ["m-cpu-tflite-fp32-n-2.yaml", "m-cpu-tflite-fp32-n.yaml"]


def test_node_names_that_make_the_same_label_do_not_share_files():
    # room for one server per node, and one server cannot take both apps
    nodes = [Node(name=name, platform="cpu", memory_mb=150, cores=1) for name in ("a.b", "a-b")]
    apps = [App(name=f"app-{i}", model="m", rate=60, slo=0.05) for i in range(2)]
    placement = place(apps, {"m": model("m", "cpu/tflite/fp32", 10.0)}, nodes)
    assert {a.node for a in placement.assignments} == {"a.b", "a-b"}
    files = check_outputs(placement, nodes)
    assert len(files) == 2


def test_an_incomplete_set_of_files_is_refused():
    node = Node(name="n", platform="cpu", memory_mb=4096, cores=4)
    apps = [App(name=f"app-{i}", model="m", rate=60, slo=0.05) for i in range(2)]
    placement = place(apps, {"m": model("m", "cpu/tflite/fp32", 10.0)}, [node])
    files = manifests(placement, {"n": node})
    first, second = sorted(files)
    with pytest.raises(Tf2aifError, match="nothing was written.*no single Deployment"):
        check_complete(placement, {first: files[first]})
    with pytest.raises(Tf2aifError, match="written 2 times"):
        check_complete(placement, {first: files[first], second: files[first]})


def test_a_new_placement_replaces_the_files_of_an_earlier_one(tmp_path):
    from tf2aif.place.k8s import write_manifests

    node = Node(name="n", platform="cpu", memory_mb=4096, cores=4)
    models = {"m": model("m", "cpu/tflite/fp32", 10.0), "k": model("k", "cpu/tflite/fp32", 10.0)}
    first = place([App(name="a", model="m", rate=1, slo=0.5)], models, [node])
    second = place([App(name="b", model="k", rate=1, slo=0.5)], models, [node])
    folder = tmp_path / "k8s"
    write_manifests(folder, manifests(first, {"n": node}))
    files = manifests(second, {"n": node})
    write_manifests(folder, files)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files) == ["k-cpu-tflite-fp32-n.yaml"]
    (folder / "mine.yaml").write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(Tf2aifError, match="files tf2aif did not write .mine.yaml"):
        write_manifests(folder, manifests(first, {"n": node}))
    assert (folder / "mine.yaml").is_file() and (folder / "k-cpu-tflite-fp32-n.yaml").is_file()


@pytest.mark.parametrize("name", ["1st-app", "a" * 64])
def test_an_app_name_that_cannot_name_a_service_is_refused(name):
    node = Node(name="n", platform="cpu", memory_mb=4096, cores=4)
    placement = place(
        [App(name=name, model="m", rate=1, slo=0.5)],
        {"m": model("m", "cpu/tflite/fp32", 10.0)},
        [node],
    )
    with pytest.raises(Tf2aifError, match="cannot name a Kubernetes Service"):
        manifests(placement, {"n": node})


@pytest.mark.parametrize("headroom", [-0.1, 1.0, math.nan, math.inf])
def test_place_refuses_a_headroom_outside_0_to_1(headroom):
    with pytest.raises(ValueError, match="headroom"):
        place([], {}, [], headroom=headroom)


def test_headroom_changes_what_fits():
    # M/D/1 with 10 ms service at 30 req/s: mean 12.1 ms; the SLO is 12.5 ms
    node = Node(name="n", platform="cpu", memory_mb=4096, cores=1)
    apps = [App(name="a", model="m", rate=30, slo=0.0125)]
    models = {"m": model("m", "cpu/tflite/fp32", 10.0)}
    assert not place(apps, models, [node], headroom=0.0).unplaced
    assert place(apps, models, [node], headroom=0.1).unplaced


# -- generated names ---------------------------------------------------------------------------

names_text = st.text(alphabet="ab.-_9Z", min_size=1, max_size=70)


@pytest.mark.fuzz
@given(
    st.lists(
        st.builds(
            InstanceKey,
            model=names_text,
            variant=st.sampled_from(["cpu/tflite/fp32", "cpu/tflite_/fp32", "gpu/tensorrt/fp16"]),
            node=names_text,
            ordinal=st.integers(0, 3),
        ),
        max_size=12,
        unique=True,
    )
)
def test_instance_names_are_distinct_dns_labels(keys):
    names = instance_names(keys)
    assert len(names) == len(keys) == len(set(names))
    assert all(LABEL.fullmatch(n) and len(n) <= LABEL_LIMIT for n in names)
    assert instance_names(keys) == names  # deterministic


# -- generated clusters and apps ---------------------------------------------------------------

VARIANTS = {
    "cpu": ("cpu/tflite/fp32", "cpu/openvino/fp32"),
    "gpu": ("gpu/tensorrt/fp16",),
    "alveo": ("alveo/vitis-ai/int8",),
}


@st.composite
def nodes(draw) -> list[Node]:
    count = draw(st.integers(1, 4))
    out = []
    for i in range(count):
        platform = draw(st.sampled_from(sorted(VARIANTS)))
        accelerator = None
        if platform != "cpu":
            sharing = "exclusive" if platform == "alveo" else "time"
            accelerator = Accelerator(sharing=sharing, units=draw(st.integers(1, 2)))
        # names that clash once made labels: dots, dashes, one name a prefix of another
        name = draw(st.sampled_from(["n", "n-2", "n.2", "m"])) + f"-{i}" * draw(st.booleans())
        out.append(
            Node(
                name=name,
                platform=platform,
                memory_mb=draw(st.sampled_from([150.0, 400.0, 4096.0])),
                cores=draw(st.integers(1, 4)),
                accelerator=accelerator,
                cap=draw(st.sampled_from([0.5, 0.8, 1.0])),
                labels={"zone": draw(st.sampled_from(["a", "b"]))},
            )
        )
    assume(len({n.name for n in out}) == len(out))
    return out


@st.composite
def catalogue(draw) -> dict[str, ModelSpec]:
    models = {}
    for name in draw(
        st.lists(st.sampled_from(["m", "m-cpu", "k"]), min_size=1, max_size=2, unique=True)
    ):
        profiles, images = {}, {}
        for platform, variants in VARIANTS.items():
            for variant in variants:
                if draw(st.booleans()):
                    s = draw(st.floats(0.5, 30.0)) / 1e3
                    scv = draw(st.sampled_from([0.0, 0.3, 1.0]))
                    profiles[variant] = Profile(
                        variant=variant,
                        service=s,
                        service_m2=s * s * (1 + scv),
                        memory_mb=draw(st.sampled_from([60.0, 100.0, 300.0])),
                        processing=draw(st.sampled_from([0.0, 0.5e-3]))
                        if platform != "cpu"
                        else 0.0,
                        switch=0.005 if platform == "alveo" else 0.0,
                    )
                    images[variant] = f"r/{name}:{variant.replace('/', '-')}"
        models[name] = ModelSpec(name=name, profiles=profiles, images=images)
    return models


@st.composite
def workloads(draw):
    cluster = draw(nodes())
    models = draw(catalogue())
    count = draw(st.integers(1, 8))
    apps = [
        App(
            name=f"app-{i}",
            model=draw(st.sampled_from(sorted(models))),
            rate=draw(st.floats(0.5, 150.0)),
            slo=draw(st.floats(2.0, 300.0)) / 1e3,
            p99_slo=draw(st.one_of(st.none(), st.floats(20.0, 1000.0).map(lambda ms: ms / 1e3))),
            variants=draw(st.sampled_from([(), ("cpu/*",), ("*/fp16", "*/int8")])),
            node_selector=draw(st.sampled_from([{}, {"zone": "a"}])),
        )
        for i in range(count)
    ]
    return cluster, models, apps


@pytest.mark.fuzz
@given(
    workloads(),
    st.sampled_from(POLICIES),
    st.sampled_from(["online", "batch"]),
    st.sampled_from([0.0, 0.1, 0.3]),
)
def test_generated_placements_keep_their_promises(case, policy, mode, headroom):
    cluster, models, apps = case
    placement = place(apps, models, cluster, policy=policy, mode=mode, headroom=headroom)
    assert len(placement.assignments) + len(placement.unplaced) == len(apps)
    check_outputs(placement, cluster)
    by_name = {n.name: n for n in cluster}
    for node_name, instances in placement.instances.items():
        node = by_name[node_name]
        view = evaluate(node, instances)
        assert memory_violation(node, instances, view) == ""
        if policy != "knapsack-memory":  # the memory-only baseline ignores utilisation caps
            assert capacity_violation(node, instances, view) == ""
            assert view.cpu_utilisation <= node.cap + 1e-9
            assert view.accelerator_utilisation <= node.cap + 1e-9
    app_of = {app.name: app for app in apps}
    for a in placement.assignments:
        app = app_of[a.app]
        node = by_name[a.node]
        assert a.variant.split("/")[0] == node.platform
        assert app.allows(a.variant)
        assert all(node.labels.get(k) == v for k, v in app.node_selector.items())
        if policy not in ("knapsack", "knapsack-memory"):
            assert a.mean <= (1 - headroom) * app.slo * (1 + 1e-9)  # what was promised


@pytest.mark.fuzz
@given(workloads(), st.sampled_from(["first-fit", "best-fit", "spread"]))
def test_the_simulator_agrees_with_what_was_promised(case, policy):
    """Every app a model-driven policy placed under (1 - 0.3) x its target meets the target in
    a simulation of its node, within the simulation's own error and the models' stated error."""
    cluster, models, apps = case
    placement = place(apps, models, cluster, policy=policy, headroom=0.3)
    assume(placement.assignments)
    verdict = judge(cluster, placement.instances, min_requests=200, max_requests=4000)
    assert verdict.apps == len(placement.assignments)
    for app, (mean, half_width, slo) in verdict.details.items():
        # 0.3 headroom covers the models' error (docs/placement.md); 3 half-widths the noise
        assert mean - 3 * half_width <= slo, (app, mean, half_width, slo)

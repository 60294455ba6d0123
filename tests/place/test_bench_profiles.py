"""`tf2aif bench --profile` documents as placement profiles: the conversion and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tf2aif.errors import ManifestError
from tf2aif.place.inputs import load_apps, load_profiles

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "placement"


def bench_entry(variant="cpu/tflite/fp32", **changes) -> dict:
    """One measured variant as `tf2aif bench --profile` writes it (an artifact target)."""
    entry = {
        "variant": variant,
        "model": "digits",
        "target_kind": "artifact",
        "target": "out/cpu-tflite-fp32",
        "request_kind": "infer-binary",
        "service_time": {
            "requests": 500,
            "errors": 0,
            "mean_s": 0.002,
            "second_moment_s2": 0.002**2 + 0.0005**2,  # Var(L) = (0.5 ms)^2
            "scv": 0.0625,
            "p50_s": 0.0019,
            "p99_s": 0.004,
            "server_cpu_s": 0.0012,
            "processing_s": 0.0002,
        },
        "capacity": {"sweep": [], "peak_rps": 800.0, "peak_concurrency": 2},
        "sustainable_rate_rps": 560.0,
        "rate_checks": [],
        "memory": {"rss_bytes": 96 * 2**20, "source": "proc"},
    }
    for key, value in changes.items():
        if isinstance(value, dict):
            entry[key] = {**entry[key], **value}
        else:
            entry[key] = value
    return entry


def bench_document(*entries) -> dict:
    return {
        "schema": "tf2aif-bench-profile",
        "version": 1,
        "created": "2026-11-23T15:00:00Z",
        "tool": {"tf2aif": "0"},
        "settings": {},
        "profiles": list(entries),
    }


def write_json(tmp_path: Path, data: dict, name: str = "tf2aif-profile.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def test_server_cpu_is_the_service_and_the_latency_spread_is_kept(tmp_path):
    model, profiles = load_profiles(write_json(tmp_path, bench_document(bench_entry())))
    assert model == "digits"
    p = profiles["cpu/tflite/fp32"]
    # T = server CPU 1.2 ms; P = 0.2 ms of it is pre/post-processing; S = T - P
    assert p.service == pytest.approx(0.0010)
    assert p.service_m2 == pytest.approx(0.0010**2 + 0.0005**2)
    assert p.processing == pytest.approx(0.0002) and p.processing_m2 == pytest.approx(0.0002**2)
    assert p.max_rate == 560.0 and p.memory_mb == pytest.approx(96.0)
    # on cpu the two form one service again: mean T, second moment T^2 + Var(L)
    combined_m2 = p.service_m2 + 2 * p.service * p.processing + p.processing_m2
    assert combined_m2 == pytest.approx(0.0012**2 + 0.0005**2)


def test_without_server_cpu_the_latency_moments_are_used_as_measured(tmp_path):
    entry = bench_entry(service_time={"server_cpu_s": None, "processing_s": None})
    _, profiles = load_profiles(write_json(tmp_path, bench_document(entry)))
    p = profiles["cpu/tflite/fp32"]
    assert p.service == pytest.approx(0.002)
    assert p.service_m2 == pytest.approx(0.002**2 + 0.0005**2)
    assert p.processing == 0.0


def test_an_older_document_without_the_cpu_fields_still_converts(tmp_path):
    entry = bench_entry()
    del entry["service_time"]["server_cpu_s"], entry["service_time"]["processing_s"]
    _, profiles = load_profiles(write_json(tmp_path, bench_document(entry)))
    assert profiles["cpu/tflite/fp32"].service == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("variant", "cpu", "expected"),
    [
        ("gpu/tensorrt/fp16", 0.0012, 0.002 - 0.0002),  # device time is not CPU time
        ("cpu/tflite/fp32", 0.003, 0.002 - 0.0002),  # CPU above latency: several cores
    ],
)
def test_latency_stands_when_server_cpu_does_not_measure_the_service(
    tmp_path, variant, cpu, expected
):
    entry = bench_entry(variant, service_time={"server_cpu_s": cpu})
    _, profiles = load_profiles(write_json(tmp_path, bench_document(entry)))
    assert profiles[variant].service == pytest.approx(expected)


def test_what_placement_needs_and_a_bench_profile_lacks_is_located(tmp_path):
    document = bench_document(
        bench_entry("http://10.0.0.7:8080", target_kind="url"),
        bench_entry("cpu/tflite/int8", sustainable_rate_rps=None),
        bench_entry("cpu/tf/fp32", memory={"rss_bytes": None, "source": None}, target_kind="url"),
        bench_entry("cpu/onnxruntime/fp32", service_time={"requests": 0, "mean_s": None}),
    )
    path = write_json(tmp_path, document)
    with pytest.raises(ManifestError) as caught:
        load_profiles(path)
    text = str(caught.value)
    assert f"{path}: 4 errors" in text
    assert (
        f"{path}:11:15: profiles[0].variant: expected a variant id <platform>/<runtime>/<precision>"
        " such as 'cpu/tflite/fp32', got 'http://10.0.0.7:8080' (label --url and --image runs"
        " with `tf2aif bench --variant`)" in text
    )
    assert (
        f"{path}:61:28: profiles[1].sustainable_rate_rps: expected the highest sustainable rate"
        " (placement's max_rate), but no checked rate was sustainable (see rate_checks);"
        " measure again on a quieter machine" in text
    )
    assert (
        f"{path}:93:18: profiles[2].memory.rss_bytes: expected the server's resident memory"
        " (placement's memory_mb), but none was measured (url target); bench the --artifact or"
        " --image, which tf2aif starts and can inspect" in text
    )
    assert (
        f"{path}:106:15: profiles[3].service_time.mean_s: expected the mean of the isolated requests, but none"
        " was answered (0 answered, 0 errors)" in text
    )


def test_a_bench_profile_is_schema_checked_like_any_input(tmp_path):
    entry = bench_entry()
    del entry["capacity"]
    path = write_json(tmp_path, bench_document(entry))
    with pytest.raises(ManifestError, match=r"profiles\[0\]: missing required key 'capacity'"):
        load_profiles(path)


def test_one_file_holds_one_model_and_one_entry_per_variant(tmp_path):
    other = bench_entry("cpu/tflite/int8", model="resnet50")
    path = write_json(tmp_path, bench_document(bench_entry(), other))
    with pytest.raises(
        ManifestError,
        match=r"profiles\[1\]\.model: is for model 'resnet50', but profiles\[0\] is for 'digits':"
        " one profile file holds one model",
    ):
        load_profiles(path)
    path = write_json(tmp_path, bench_document(bench_entry(), bench_entry()))
    with pytest.raises(ManifestError, match=r"profiles\[1\]: duplicate variant 'cpu/tflite/fp32'"):
        load_profiles(path)


def test_apps_file_takes_bench_profiles_and_names_the_model_when_they_do_not(tmp_path):
    for name in ("apps.yaml", "digits.profiles.json", "digits.record.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    shutil.copy(EXAMPLES / "resnet50.profiles.json", tmp_path / "resnet50.profiles.json")
    shutil.copy(EXAMPLES / "resnet50.record.json", tmp_path / "resnet50.record.json")
    unnamed = bench_entry(model="")
    write_json(tmp_path, bench_document(unnamed), "digits.profiles.json")
    _, models = load_apps(tmp_path / "apps.yaml")
    assert set(models["digits"].profiles) == {"cpu/tflite/fp32"}
    assert models["digits"].profiles["cpu/tflite/fp32"].max_rate == 560.0
    assert models["resnet50"].profiles  # the shipped format next to it, unchanged

    write_json(tmp_path, bench_document(bench_entry(model="mnist")), "digits.profiles.json")
    with pytest.raises(
        ManifestError, match=r"apps.yaml:\d+:\d+: models.digits.profiles: is for model 'mnist'"
    ):
        load_apps(tmp_path / "apps.yaml")


def _cold(extra_s=0.002, tau_s=0.01) -> dict:
    points = [{"gap_s": g, "server_cpu_s": 0.0012 + extra_s * (1 - 2.718281828 ** (-g / tau_s))}
              for g in (0.005, 0.02, 0.08)]  # fmt: skip
    return {"points": points, "extra_s": extra_s, "tau_s": tau_s}


def test_measured_cold_starts_reach_the_profile_with_the_server_cpu(tmp_path):
    entry = bench_entry(service_time={"cold": _cold()})
    _, profiles = load_profiles(write_json(tmp_path, bench_document(entry)))
    p = profiles["cpu/tflite/fp32"]
    assert (p.cold_extra, p.cold_tau) == (pytest.approx(0.002), pytest.approx(0.01))
    # without the server's CPU the service is the latency, which already holds the cold part
    entry = bench_entry(service_time={"cold": _cold(), "server_cpu_s": None})
    _, profiles = load_profiles(write_json(tmp_path, bench_document(entry), "b.json"))
    assert profiles["cpu/tflite/fp32"].cold_extra == 0.0


def test_cold_starts_raise_the_prediction_on_a_cpu_node_only(tmp_path):
    from dataclasses import replace

    from tf2aif.place.inputs import Accelerator, App, Node
    from tf2aif.place.predict import Instance, evaluate

    _, profiles = load_profiles(write_json(tmp_path, bench_document(bench_entry())))
    warm = profiles["cpu/tflite/fp32"]
    cold = replace(warm, cold_extra=0.002, cold_tau=0.01)
    cpu = Node(name="n", platform="cpu", memory_mb=4096, cores=1)

    def mean(node, profile):
        app = App(name="a", model="m", rate=100.0, slo=1.0)
        instance = Instance(model="m", variant=profile.variant, profile=profile, apps=(app,))
        return evaluate(node, [instance]).predictions[0].mean

    assert mean(cpu, cold) > mean(cpu, warm) * 1.05
    gpu = Node(name="g", platform="gpu", memory_mb=4096, cores=2,
               accelerator=Accelerator(sharing="time", units=1, memory_mb=16000))  # fmt: skip
    assert mean(gpu, cold) == pytest.approx(mean(gpu, warm))


def test_placement_profile_files_carry_cold_starts_in_ms(tmp_path):
    data = {"version": 1, "model": "m", "profiles": [
        {"variant": "cpu/tflite/fp32", "service_ms": 5, "memory_mb": 100,
         "cold_extra_ms": 2, "cold_tau_ms": 10}]}  # fmt: skip
    _, profiles = load_profiles(write_json(tmp_path, data, "p.json"))
    p = profiles["cpu/tflite/fp32"]
    assert (p.cold_extra, p.cold_tau) == (pytest.approx(0.002), pytest.approx(0.01))

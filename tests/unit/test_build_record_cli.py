"""bake argv, failure attribution, the build record, and the CLI's exit codes and output."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.main import main
from tf2aif.errors import PlanError
from tf2aif.pipeline.build import (
    DEFAULT_SBOM_GENERATOR,
    BuildOptions,
    Buildx,
    Result,
    Status,
    bake_argv,
    failing_targets,
    parse_buildx_version,
    parse_driver,
    probe_buildx,
    run_build,
    sbom_generator,
)
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.plan import make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.record import load_record, make_record, save_record
from tf2aif.pipeline.resolve import resolve
from tf2aif.pipeline.select import select_serves

from projects import BASIC, write_project

BUILDX = Buildx(version=(0, 20, 0), driver="docker")


@pytest.fixture
def plan(tmp_path):
    manifest, _ = load_manifest(write_project(tmp_path, BASIC))
    return make_plan(resolve(manifest, load_recipes(env={})), env={})


def test_bake_argv_is_exact():
    options = BuildOptions(
        builder="edge", set_values=("*.no-cache=true",), extra_args=("--provenance=mode=max",)
    )
    argv = bake_argv(
        ".tf2aif/docker-bake.json",
        ["serve-a", "serve-b"],
        metadata_file="m.json",
        options=options,
        buildx=BUILDX,
        set_values=["serve-a.output=type=docker"],
    )
    assert argv == [
        "docker", "buildx", "bake", "-f", ".tf2aif/docker-bake.json", "--metadata-file", "m.json",
        "--progress", "plain", "--builder", "edge",
        "--set", "serve-a.output=type=docker", "--set", "*.no-cache=true",
        "--provenance=mode=max", "serve-a", "serve-b",
    ]  # fmt: skip


def test_ca_is_a_secret_for_every_target():
    options = BuildOptions(ca_file="/tmp/ca/ca.pem")
    argv = bake_argv("f.json", ["serve-x"], metadata_file="m.json", options=options, buildx=BUILDX)
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["*.secrets=id=ca,src=/tmp/ca/ca.pem"]
    assert argv[argv.index("--allow") + 1] == "fs.read=/tmp/ca"
    old = Buildx(version=(0, 18, 9), driver="docker")  # no entitlement to ask for before 0.19
    argv = bake_argv("f.json", ["serve-x"], metadata_file="m.json", options=options, buildx=old)
    assert "--allow" not in argv and "*.secrets=id=ca,src=/tmp/ca/ca.pem" in argv


def test_buildx_answers_are_parsed():
    assert parse_buildx_version("github.com/docker/buildx v0.19.3 48d6a39\n") == (0, 19, 3)
    assert parse_buildx_version("buildx 0.30.1") == (0, 30, 1)
    assert parse_buildx_version("") == (0,)
    inspect = "Name:          default\nDriver:        docker-container\nNodes:\n"
    assert parse_driver(inspect) == "docker-container"
    assert parse_driver("error: no builder") is None


def test_buildx_is_probed_once_per_run_not_once_per_bake(plan, monkeypatch):
    """Two phases, two builds, one `docker buildx version` and one `docker buildx inspect`."""
    import subprocess

    asked = []

    def fake_subprocess_run(argv, **kwargs):
        asked.append(tuple(argv[:3]))
        out = "github.com/docker/buildx v0.19.3 abc" if argv[2] == "version" else "Driver: docker"
        return subprocess.CompletedProcess(argv, 0, out, "")

    bakes = []
    monkeypatch.setattr(subprocess, "run", fake_subprocess_run)
    monkeypatch.setattr(
        "tf2aif.pipeline.build._run", lambda argv, **kw: (bakes.append(argv), (0, []))[1]
    )
    probe_buildx.cache_clear()
    try:
        options = BuildOptions(ca_file="/tmp/ca/ca.pem", load=False)
        for _ in range(2):
            assert all(run_build(plan, options, sink=lambda line: None))
    finally:
        probe_buildx.cache_clear()
    assert len(bakes) == 4  # convert + serve, twice
    assert all("fs.read=/tmp/ca" in argv for argv in bakes)  # 0.19.3 needs the entitlement
    assert sorted(asked) == [("docker", "buildx", "inspect"), ("docker", "buildx", "version")]


def test_failing_target_is_named_with_its_stage():
    log = [
        "#12 [convert-tflite-int8 convert 5/5] RUN /opt/tf2aif/venv/bin/python -m tf2aif.image.convert",
        "#12 1.234 FidelityError: tflite-int8: top-1 agreement 0.91 < 0.99",
        "#12 ERROR: process did not complete successfully: exit code: 1",
        "------",
        " > [convert-tflite-int8 convert 5/5] RUN /opt/tf2aif/venv/bin/python -m tf2aif.image.convert --spec ...:",
        "1.234 FidelityError: tflite-int8: top-1 agreement 0.91 < 0.99",
        "ERROR: failed to solve: process did not complete successfully: exit code: 1",
    ]
    found = failing_targets(log, ["convert-tflite-int8", "convert-tflite-fp32"])
    assert list(found) == ["convert-tflite-int8"]
    assert found["convert-tflite-int8"] == (
        "convert 5/5: 1.234 FidelityError: tflite-int8: top-1 agreement 0.91 < 0.99"
    )


def test_a_single_target_bake_names_no_target_in_its_steps():
    """bake leaves the target out of step labels when it builds one: the failure is still its."""
    log = [
        '#8 [linux/amd64 2/2] RUN test "1" != 1',
        '#8 ERROR: process "/bin/sh -c test" did not complete successfully: exit code: 1',
        "------",
        ' > [linux/amd64 2/2] RUN test "1" != 1:',
        "ERROR: failed to solve: process did not complete successfully: exit code: 1",
    ]
    assert failing_targets(log, ["b"]) == {
        "b": "linux/amd64 2/2: ERROR: failed to solve: process did not complete successfully: "
        "exit code: 1"
    }
    assert failing_targets(log, ["a", "b"]) == {}  # not a target name: nobody is blamed wrongly


def test_a_failed_linked_base_is_named_for_the_targets_it_stopped():
    log = [" > [base-serve-tf linux/arm64 3/4] RUN sh install.sh:", "ERROR: exit code: 1"]
    found = failing_targets(log, ["serve-a", "serve-b"])
    assert found == {"base-serve-tf": "linux/arm64 3/4: ERROR: exit code: 1"}


def test_only_selects_by_variant_or_target(plan):
    assert [s.name for s in select_serves(plan, ["arm/*"])] == [
        "serve-cpu-arm-tflite-fp32", "serve-cpu-arm-tflite-int8", "serve-arm-openvino-fp32", "serve-arm-openvino-int8",
    ]  # fmt: skip
    assert [s.name for s in select_serves(plan, ["*-int8"])] == [
        "serve-cpu-arm-tflite-int8",
        "serve-cpu-openvino-int8",
        "serve-arm-openvino-int8",
    ]
    with pytest.raises(PlanError, match="selects nothing"):
        select_serves(plan, ["gpu/*"])


def test_record_round_trip(plan, tmp_path):
    results = [
        Result(target="convert-tflite-fp32", status=Status.SUCCESS, duration=3.2),
        Result(
            target="serve-cpu-arm-tflite-fp32",
            status=Status.SUCCESS,
            duration=10.0,
            digest="sha256:" + "a" * 64,
        ),
        Result(
            target="serve-cpu-arm-tflite-int8",
            status=Status.ABORTED,
            reason="its conversion convert-tflite-int8 failed",
        ),
    ]
    record = make_record(
        plan,
        results,
        fidelity={"convert-tflite-fp32": {"top1_agreement": 1.0}},
        tools={"buildx": "v0.13"},
    )
    path = save_record(record, tmp_path / "tf2aif-record.json")
    loaded = load_record(path)
    assert loaded == record
    first = loaded.images[0]
    assert first.platforms == ("linux/amd64", "linux/arm64")
    assert first.fidelity == {"top1_agreement": 1.0}
    assert first.durations == {"convert": 3.2, "serve": 10.0}
    assert loaded.images[1].status == "aborted"
    assert json.loads(path.read_text())["version"] == 1


def test_cli_plan_json(tmp_path, capsys):
    file = write_project(tmp_path, BASIC)
    assert main(["plan", str(file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [i["target"] for i in data["images"]][:2] == [
        "serve-cpu-arm-tflite-fp32",
        "serve-cpu-arm-tflite-int8",
    ]
    assert data["skipped"] == []


def test_cli_plan_table_lists_skipped_cells(tmp_path, capsys):
    file = write_project(tmp_path, BASIC.replace("[tflite, openvino]", "[tflite, tensorrt]"))
    assert main(["plan", str(file)]) == 0
    out = capsys.readouterr().out
    assert "cpu/tensorrt/fp32" in out and "no recipe serves tensorrt on cpu" in out
    assert "tflite-fp32-c" in out  # the tag column (folded at 80 columns)


def test_cli_bake_print_needs_no_docker(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    file = write_project(tmp_path, BASIC)
    assert main(["bake", str(file), "--print"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "serve-cpu-arm-tflite-int8" in data["target"]
    assert not (tmp_path / ".tf2aif").exists()  # --print has no side effects


def test_cli_bake_without_docker_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    file = write_project(tmp_path, BASIC)
    assert main(["bake", str(file)]) == 3
    assert "docker is not installed" in capsys.readouterr().err


def test_cli_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["plan", "--no-such-flag"])
    assert info.value.code == 2
    assert main([]) == 2


def test_cli_init_writes_a_valid_starter(tmp_path, capsys):
    target = tmp_path / "tf2aif.yaml"
    assert main(["init", str(target)]) == 0
    assert main(["init", str(target)]) == 1  # refuses to overwrite
    (tmp_path / "models" / "my-model").mkdir(parents=True)
    (tmp_path / "models" / "my-model" / "saved_model.pb").write_bytes(b"x")
    assert main(["validate", str(target)]) == 0, capsys.readouterr().err


def test_vendor_map_file(tmp_path, capsys):
    file = write_project(tmp_path, BASIC)
    mapping = tmp_path / "vendor.yaml"
    mapping.write_text("python:3.11-slim-bookworm: 127.0.0.1:5000/stand-in/python:3.11\n")
    assert main(["plan", str(file), "--json", "--vendor-map", str(mapping)]) == 0
    bases = {b["target"]: b["vendor"] for b in json.loads(capsys.readouterr().out)["bases"]}
    assert bases["base-serve-tflite"] == "127.0.0.1:5000/stand-in/python:3.11"
    assert main(["plan", str(file), "--vendor-map", str(tmp_path / "none.yaml")]) == 1


def test_changed_skips_images_already_published(plan):
    published = {plan.serves[0].tags[0]: "sha256:" + "b" * 64}
    from tf2aif.pipeline.build import split_unchanged

    changed, unchanged = split_unchanged(plan.serves, published.get)
    assert [s.name for s in changed] == [s.name for s in plan.serves[1:]]
    assert unchanged[0].target == plan.serves[0].name
    assert unchanged[0].digest == "sha256:" + "b" * 64
    assert "already published" in unchanged[0].reason


def test_every_bake_flag_reaches_the_build_options(tmp_path, monkeypatch):
    """Parse a full bake command line and stop at the build: every option lands where it should."""
    argv = ["--only", "cpu/*", "--push", "--changed", "--sbom", "--no-load", "--set", "a.b=c"]
    argv += ["--builder", "k8s", "--ca-cert", "/ca.pem", "--", "--provenance=mode=max"]
    options = _bake_options(tmp_path, monkeypatch, *argv)
    assert options.only == ("cpu/*",) and options.push and options.changed and options.sbom
    assert options.sbom_generator == DEFAULT_SBOM_GENERATOR
    assert not options.load
    assert (
        options.set_values == ("a.b=c",)
        and options.builder == "k8s"
        and options.ca_file == "/ca.pem"
    )
    assert options.extra_args == ("--provenance=mode=max",)


def test_push_asks_for_provenance():
    argv = bake_argv(
        "f.json",
        ["serve-x"],
        metadata_file="m.json",
        options=BuildOptions(push=True, sbom=True),
        buildx=BUILDX,
    )
    assert "--provenance=mode=max" in argv
    sbom = "serve-x.attest=type=sbom,generator=docker/buildkit-syft-scanner:stable-1"
    assert argv[argv.index(sbom) - 1] == "--set"
    assert "--provenance=mode=max" not in bake_argv(
        "f.json", ["serve-x"], metadata_file="m.json", options=BuildOptions(), buildx=BUILDX
    )


def test_sbom_generator_precedence():
    local = "127.0.0.1:5000/tf2aif/sbom-scanner:abc"
    mapped = {DEFAULT_SBOM_GENERATOR: local, "python:3.11": "mirror/python:3.11"}
    assert sbom_generator(explicit=None, env={}, vendor_map={}) == DEFAULT_SBOM_GENERATOR
    assert sbom_generator(explicit=None, env={}, vendor_map=mapped) == local
    env = {"TF2AIF_SBOM_GENERATOR": "env/scanner:1"}
    assert sbom_generator(explicit=None, env=env, vendor_map=mapped) == "env/scanner:1"
    assert sbom_generator(explicit="cli/scanner:2", env=env, vendor_map=mapped) == "cli/scanner:2"


def _bake_options(tmp_path, monkeypatch, *argv, env=None):
    seen = {}

    def fake_run(plan, options, args, buildx):
        seen["options"] = options
        return ()

    monkeypatch.setattr("tf2aif.pipeline.build.check_tools", lambda: "buildx v0")
    monkeypatch.setattr("tf2aif.cli.pipeline._run_and_record", fake_run)
    for key in ("TF2AIF_VENDOR_MAP", "TF2AIF_SBOM_GENERATOR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    assert main(["bake", str(write_project(tmp_path, BASIC)), *argv]) == 0
    return seen["options"]


def test_sbom_generator_comes_from_the_vendor_map_the_flag_or_the_env(tmp_path, monkeypatch):
    vendor_map = tmp_path / "vendor-map.yaml"
    vendor_map.write_text(f'"{DEFAULT_SBOM_GENERATOR}": "127.0.0.1:5000/tf2aif/sbom-scanner:k"\n')
    options = _bake_options(tmp_path, monkeypatch, "--sbom", "--vendor-map", str(vendor_map))
    assert options.sbom and options.sbom_generator == "127.0.0.1:5000/tf2aif/sbom-scanner:k"
    options = _bake_options(
        tmp_path, monkeypatch, "--sbom", env={"TF2AIF_VENDOR_MAP": str(vendor_map)}
    )
    assert options.sbom_generator == "127.0.0.1:5000/tf2aif/sbom-scanner:k"
    options = _bake_options(tmp_path, monkeypatch, "--sbom-generator", "reg/scan:1")
    assert options.sbom and options.sbom_generator == "reg/scan:1"  # the flag implies --sbom
    options = _bake_options(tmp_path, monkeypatch, env={"TF2AIF_SBOM_GENERATOR": "reg/scan:2"})
    assert not options.sbom and options.sbom_generator == "reg/scan:2"


def test_sbom_is_asked_for_server_images_only(plan, monkeypatch, tmp_path):
    """Conversions export an artifact folder: no SBOM there, one on every server image."""
    calls = []

    def fake_run(argv, *, cwd, sink, env):
        calls.append(argv)
        return 0, []

    monkeypatch.setattr("tf2aif.pipeline.build._run", fake_run)
    options = BuildOptions(sbom=True, sbom_generator="reg/scan:1", load=False)
    results = run_build(plan, options, sink=lambda line: None, buildx=BUILDX)
    assert results and all(results)
    convert, serve = calls
    assert not any("attest" in a for a in convert)
    attests = [a for a in serve if ".attest=" in a]
    assert attests == [f"{s.name}.attest=type=sbom,generator=reg/scan:1" for s in plan.serves]


@pytest.mark.fuzz
@given(
    log=st.lists(
        st.one_of(
            st.text(max_size=60),
            st.builds(
                lambda label, rest: f" > [{label}] {rest}",
                st.text(alphabet=st.characters(blacklist_characters="]\n"), max_size=30),
                st.text(max_size=20),
            ),
        ),
        max_size=12,
    ),
    targets=st.lists(
        st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), min_size=1, max_size=3
    ),
)
def test_failures_are_blamed_on_target_names_only(log, targets):
    """Any log: every blamed name is a bake target name; a single-target bake blames only it."""
    found = failing_targets(log, targets)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", name) for name in found)
    if len(targets) == 1:
        assert set(found) <= {targets[0]} | {
            m for line in log for m in re.findall(r"target ([a-zA-Z0-9_-]+): failed to solve", line)
        }

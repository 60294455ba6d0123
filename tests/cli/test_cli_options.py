"""Every option of every command has an effect: the parser is introspected, and each option it
declares must have a check here that proves the option changes what the command does (its output,
its files, or the frozen value it hands the next stage), or that a bad value is refused with a
usage error naming the option (exit 2) or a located error (exit 1).

Options whose effect needs Docker, a registry or a real conversion are proven by the named tests
in their own suites (ELSEWHERE); this file checks that those tests exist.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.main import build_parser, main

from projects import BASIC, write_project

ROOT = Path(__file__).resolve().parents[2]
PLACEMENT = ROOT / "examples" / "placement"
TESTS = ROOT / "tests"


def declared_options() -> set[tuple[str, str]]:
    """(command, option) for every option and positional of every (sub)command."""
    found: set[tuple[str, str]] = set()

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}".strip())
            elif isinstance(action, argparse._HelpAction):
                continue
            else:
                names = [s for s in action.option_strings if s.startswith("--")]
                found.add((path, names[-1] if names else action.dest))

    walk(build_parser(), "")
    return found


class Run:
    """One CLI invocation: exit code, stdout, stderr (SystemExit from argparse included)."""

    def __init__(self, argv: list[str], capsys) -> None:
        try:
            self.code = main([str(a) for a in argv])
        except SystemExit as exc:
            self.code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        self.out, self.err = captured.out, captured.err


def usage_error(capsys, argv: list[str], option: str) -> None:
    run = Run(argv, capsys)
    assert run.code == 2, (argv, run.code, run.err)
    assert option in run.err, run.err


def error(capsys, argv: list[str], text: str, code: int = 1) -> None:
    run = Run(argv, capsys)
    assert run.code == code, (argv, run.code, run.out, run.err)
    assert text in run.err + run.out, run.err


def differs(capsys, base: list[str], changed: list[str]) -> None:
    first, second = Run(base, capsys), Run(changed, capsys)
    assert first.code == 0, first.err
    assert second.code == 0, second.err
    assert first.out != second.out


# -- projects and inputs ------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path) -> Path:
    return write_project(tmp_path / "p", BASIC)


@pytest.fixture
def other_project(tmp_path) -> Path:
    return write_project(tmp_path / "q", BASIC.replace("platforms: [cpu, arm]", "platforms: [cpu]"))


@pytest.fixture
def vendor_map(tmp_path, project) -> Path:
    plan = json.loads(_plan_json(project))
    path = tmp_path / "vendor.yaml"
    path.write_text(yaml.safe_dump({plan["bases"][0]["vendor"]: "127.0.0.1:5000/stand-in:1"}))
    return path


def _plan_json(manifest: Path) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plan", str(manifest), "--json"]) == 0
    return out.getvalue()


@pytest.fixture
def record(tmp_path) -> Path:
    from deploy.conftest import five_platform_record

    path = tmp_path / "tf2aif-record.json"
    path.write_text(json.dumps(five_platform_record()))
    return path


def parse(argv: list[str]) -> argparse.Namespace:
    args, extra = build_parser().parse_known_args([str(a) for a in argv])
    args.extra = extra
    return args


# -- checks per command -------------------------------------------------------------------------

Check = Callable[..., None]
CHECKS: dict[tuple[str, str], Check] = {}


def check(command: str, *options: str):
    def register(function: Check) -> Check:
        for option in options:
            CHECKS[(command, option)] = function
        return function

    return register


@check("", "--version")
def _(request, capsys, tmp_path, option):
    run = Run(["--version"], capsys)
    assert run.code == 0 and run.out.startswith("tf2aif ")


@check("", "--debug")
def _(request, capsys, tmp_path, option):
    from tf2aif.errors import ManifestError

    argv = ["place", "--cluster", tmp_path / "none.yaml", "--apps", PLACEMENT / "apps.yaml"]
    error(capsys, argv, "does not exist")
    with pytest.raises(ManifestError):  # --debug shows the traceback instead
        main(["--debug", *map(str, argv)])


@check("validate", "manifest")
@check("plan", "manifest")
def _(request, capsys, tmp_path, option):
    project, other = request.getfixturevalue("project"), request.getfixturevalue("other_project")
    command = "validate" if "validate" in request.node.name else "plan"
    differs(capsys, [command, project], [command, other])


@check("validate", "--vendor-map")
@check("bake", "--vendor-map")
@check("plan", "--vendor-map")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    for command in ("validate", "plan", "bake"):
        error(
            capsys, [command, project, "--vendor-map", tmp_path / "missing.yaml"], "does not exist"
        )
    vendor_map = request.getfixturevalue("vendor_map")
    differs(
        capsys, ["plan", project, "--json"], ["plan", project, "--json", "--vendor-map", vendor_map]
    )
    differs(
        capsys,
        ["bake", project, "--print"],
        ["bake", project, "--print", "--vendor-map", vendor_map],
    )


@check("plan", "--json")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    table, data = Run(["plan", project], capsys), Run(["plan", project, "--json"], capsys)
    assert json.loads(data.out)["name"] == "demo"
    with pytest.raises(json.JSONDecodeError):
        json.loads(table.out)


@check("bake", "manifest")
def _(request, capsys, tmp_path, option):
    project, other = request.getfixturevalue("project"), request.getfixturevalue("other_project")
    differs(capsys, ["bake", project, "--print"], ["bake", other, "--print"])


@check("bake", "--print")
def _(request, capsys, tmp_path, option):
    run = Run(["bake", request.getfixturevalue("project"), "--print"], capsys)
    assert run.code == 0 and set(json.loads(run.out)) == {"group", "target"}
    assert not (request.getfixturevalue("project").parent / ".tf2aif").exists()  # wrote nothing


@check("bake", "--cache")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    differs(
        capsys, ["bake", project, "--print"], ["bake", project, "--print", "--cache", "registry"]
    )
    usage_error(capsys, ["bake", project, "--cache", "s3"], "--cache")


BUILD_FLAGS = {
    "--only": ["--only", "cpu/*"],
    "--push": ["--push"],
    "--sbom": ["--sbom"],
    "--sbom-generator": ["--sbom-generator", "127.0.0.1:5000/scanner:1"],
    "--changed": ["--changed"],
    "--no-load": ["--no-load"],
    "--set": ["--set", "*.no-cache=true"],
    "--builder": ["--builder", "tf2aif-no-such-builder"],
    "--source-date-epoch": ["--source-date-epoch", "1700000000"],
    "--ca-cert": ["--ca-cert", "/etc/hostname"],
}


@check("bake", *BUILD_FLAGS)
def _(request, capsys, tmp_path, option):
    """The frozen BuildOptions handed to the build stage change with the option."""
    from tf2aif.cli.pipeline import build_options, load_plan

    project = request.getfixturevalue("project")
    base = parse(["bake", project, "--source-date-epoch", "off"])
    changed = parse(["bake", project, "--source-date-epoch", "off", *BUILD_FLAGS[option]])
    if option == "--source-date-epoch":
        changed = parse(["bake", project, *BUILD_FLAGS[option]])
    plan = load_plan(base)
    assert build_options(base, plan)[0] != build_options(changed, plan)[0]
    capsys.readouterr()


@check("bake", "--set")
def _(request, capsys, tmp_path, option):
    CHECKS[("bake", "--only")](request, capsys, tmp_path, option)
    usage_error(capsys, ["bake", request.getfixturevalue("project"), "--set", "novalue"], "--set")


@check("bake", "--source-date-epoch")
def _(request, capsys, tmp_path, option):
    CHECKS[("bake", "--only")](request, capsys, tmp_path, option)
    error(
        capsys, ["bake", request.getfixturevalue("project"), "--source-date-epoch", "soon"], "soon"
    )


@check("bake", "--record")
def _(request, capsys, tmp_path, option):
    from tf2aif.cli.pipeline import load_plan, record_path

    project = request.getfixturevalue("project")
    base = parse(["bake", project])
    plan = load_plan(base)
    elsewhere = tmp_path / "r.json"
    assert record_path(base, plan) == project.parent / "tf2aif-record.json"
    assert record_path(parse(["bake", project, "--record", elsewhere]), plan) == elsewhere
    capsys.readouterr()


@check("init", "path")
@check("init", "--force")
def _(request, capsys, tmp_path, option):
    target = tmp_path / "custom.yaml"
    assert Run(["init", target], capsys).code == 0 and target.is_file()
    target.write_text("edited\n")
    error(capsys, ["init", target], "--force")
    assert target.read_text() == "edited\n"
    assert Run(["init", target, "--force"], capsys).code == 0
    assert target.read_text().startswith("# yaml-language-server")


# -- place ---------------------------------------------------------------------------------------


def place_argv(*options) -> list:
    return [
        "place",
        "--cluster",
        PLACEMENT / "cluster.yaml",
        "--apps",
        PLACEMENT / "apps.yaml",
        "--json",
        *options,
    ]


PLACE_VALUES = {
    "--policy": (["--policy", "spread"], ["--policy", "fastest"]),
    "--mode": (["--mode", "batch"], ["--mode", "offline"]),
    "--model": (["--model", "ps"], ["--model", "mm1"]),
    "--headroom": (["--headroom", "0.5"], ["--headroom", "1"]),
}


@check("place", *PLACE_VALUES)
def _(request, capsys, tmp_path, option):
    good, bad = PLACE_VALUES[option]
    base, changed = Run(place_argv(), capsys), Run(place_argv(*good), capsys)
    assert json.loads(base.out) != json.loads(changed.out)
    usage_error(capsys, place_argv(*bad), option)


@check("place", "--headroom")
def _(request, capsys, tmp_path, option):
    first = Run(place_argv("--headroom", "0"), capsys)
    second = Run(place_argv("--headroom", "0.6"), capsys)
    assert json.loads(first.out) != json.loads(second.out)
    for bad in ("1", "1.5", "-0.1", "nan", "inf", "x"):
        usage_error(capsys, place_argv("--headroom", bad), "--headroom")


@check("place", "--cluster", "--apps")
def _(request, capsys, tmp_path, option):
    data = yaml.safe_load((PLACEMENT / "cluster.yaml").read_text())
    data["nodes"] = data["nodes"][:1]
    small = tmp_path / "cluster.yaml"
    small.write_text(yaml.safe_dump(data))
    first = Run(place_argv(), capsys)
    second = Run(["place", "--cluster", small, "--apps", PLACEMENT / "apps.yaml", "--json"], capsys)
    assert json.loads(first.out) != json.loads(second.out)
    usage_error(capsys, ["place", "--cluster", small], "--apps")
    usage_error(capsys, ["place", "--apps", small], "--cluster")


@check("place", "--out")
def _(request, capsys, tmp_path, option):
    Run(place_argv("--out", tmp_path / "o"), capsys)
    assert (tmp_path / "o" / "assignment.json").is_file() and any(
        (tmp_path / "o" / "k8s").iterdir()
    )


@check("place", "--json")
def _(request, capsys, tmp_path, option, monkeypatch):
    json.loads(Run(place_argv(), capsys).out)
    monkeypatch.setenv("COLUMNS", "160")  # at the 80-column default names fold
    table = Run(place_argv()[:-1], capsys)
    assert "mail-sorter" in table.out
    with pytest.raises(json.JSONDecodeError):
        json.loads(table.out)


# -- deploy k8s ----------------------------------------------------------------------------------

DEPLOY_VALUES = {
    "--namespace": (["--namespace", "ml"], ["--namespace", "Not_A_Label"]),
    "--replicas": (["--replicas", "3"], ["--replicas", "0"]),
    "--cpu": (["--cpu", "2"], ["--cpu", "two"]),
    "--memory": (["--memory", "1Gi"], ["--memory", "1 GB"]),
    "--memory-limit": (["--memory-limit", "4Gi"], ["--memory-limit", "-4Gi"]),
    "--fpga-resource": (["--fpga-resource", "amd.com/fpga"], ["--fpga-resource", "a b"]),
    "--only": (["--only", "cpu/*"], None),
    "--probes": (["--probes", "grpc"], ["--probes", "tcp"]),
}


@check("deploy k8s", *DEPLOY_VALUES)
def _(request, capsys, tmp_path, option):
    record = request.getfixturevalue("record")
    good, bad = DEPLOY_VALUES[option]
    base = ["deploy", "k8s", "--record", record, "--print"]
    differs(capsys, base, [*base, *good])
    if bad:
        usage_error(capsys, [*base, *bad], option)
    else:
        error(capsys, [*base, "--only", "tpu/*"], "nothing to deploy")


@check("deploy k8s", "--record")
def _(request, capsys, tmp_path, option):
    from deploy.conftest import five_platform_record

    data = five_platform_record()
    data["images"] = data["images"][:2]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    record = request.getfixturevalue("record")
    differs(
        capsys,
        ["deploy", "k8s", "--record", record, "--print"],
        ["deploy", "k8s", "--record", other, "--print"],
    )


@check("deploy k8s", "--out", "--print")
def _(request, capsys, tmp_path, option):
    record = request.getfixturevalue("record")
    printed = Run(["deploy", "k8s", "--record", record, "--print", "--out", tmp_path / "a"], capsys)
    assert "kind: Deployment" in printed.out and not (tmp_path / "a").exists()
    written = Run(["deploy", "k8s", "--record", record, "--out", tmp_path / "b"], capsys)
    assert written.code == 0 and (tmp_path / "b" / "kustomization.yaml").is_file()


# -- bench and report ----------------------------------------------------------------------------

BENCH_VALUES = {
    "--url": (["--url", "http://127.0.0.1:2"], None),
    "--variant": (["--variant", "cpu/tflite/fp32"], None),
    "--model": (["--model", "digits"], None),
    "--concurrency": (["--concurrency", "1,4"], ["--concurrency", "0"]),
    "--sweep": (["--sweep", "8"], ["--sweep", "-1"]),
    "--rate": (["--rate", "50,100"], ["--rate", "nan"]),
    "--warmup": (["--warmup", "0.5"], ["--warmup", "-1"]),
    "--window": (["--window", "1"], ["--window", "0"]),
    "--tolerance": (["--tolerance", "0.2"], ["--tolerance", "1.5"]),
    "--max-duration": (["--max-duration", "5"], ["--max-duration", "inf"]),
    "--max-requests": (["--max-requests", "100"], ["--max-requests", "0"]),
    "--timeout": (["--timeout", "3"], ["--timeout", "-3"]),
    "--http-client": (["--http-client", "httpx"], ["--http-client", "curl"]),
    "--health": (["--health"], None),
    "--json-tensors": (["--json-tensors"], None),
    "--distinct": (["--distinct", "2"], ["--distinct", "0"]),
    "--json": (["--json", "r.json"], None),
    "--csv": (["--csv", "r.csv"], None),
    "--quiet": (["--quiet"], None),
    "--profile": (["--profile"], None),
}


def bench_plan_of(argv: list) -> object:
    from tf2aif.cli.bench import bench_plan

    return bench_plan(parse(["bench", *argv]))


@check("bench", *BENCH_VALUES)
def _(request, capsys, tmp_path, option):
    """The frozen BenchPlan changes with the option; a bad value is a usage error."""
    good, bad = BENCH_VALUES[option]
    base = ["--url", "http://127.0.0.1:1"]
    assert bench_plan_of(base) != bench_plan_of([*base, *good])
    if bad:
        usage_error(capsys, ["bench", *base, *bad], option)


@check("bench", "--arrival")
def _(request, capsys, tmp_path, option):
    base = ["--url", "http://127.0.0.1:1", "--rate", "10"]
    assert bench_plan_of(base) != bench_plan_of([*base, "--arrival", "constant"])
    error(capsys, ["bench", "--url", "http://127.0.0.1:1", "--arrival", "constant"], "--rate", 2)


@check("bench", "--profile-requests")
def _(request, capsys, tmp_path, option):
    base = ["--url", "http://127.0.0.1:1", "--profile"]
    assert bench_plan_of(base) != bench_plan_of([*base, "--profile-requests", "50"])
    error(capsys, ["bench", "--url", "http://x", "--profile-requests", "50"], "--profile", 2)
    usage_error(capsys, ["bench", *base, "--profile-requests", "0"], "--profile-requests")


@check("bench", "--samples", "--files")
def _(request, capsys, tmp_path, option):
    body = tmp_path / "body.bin"
    body.write_bytes(b"\x00")
    base = ["--url", "http://127.0.0.1:1"]
    value = "mod.py:samples" if option == "--samples" else str(body)
    assert bench_plan_of(base).inputs != bench_plan_of([*base, option, value]).inputs
    if option == "--files":
        error(capsys, ["bench", *base, "--files", str(tmp_path / "none*")], "matches no file")


@check(
    "bench",
    "--image",
    "--artifact",
    "--record",
    "--container-port",
    "--ready-timeout",
    "--serve-arg",
)
def _(request, capsys, tmp_path, option):
    record = request.getfixturevalue("record")
    artifact = tmp_path / "artifact"
    kinds = {
        "--image": ["--image", "127.0.0.1:5000/x:1"],
        "--artifact": ["--artifact", artifact],
        "--record": ["--record", record],
        "--container-port": ["--image", "127.0.0.1:5000/x:1", "--container-port", "9000"],
        "--ready-timeout": ["--image", "127.0.0.1:5000/x:1", "--ready-timeout", "5"],
        "--serve-arg": ["--artifact", artifact, "--serve-arg=--workers=2"],
    }
    plan = bench_plan_of(kinds[option])
    baseline = {
        "--container-port": ["--image", "127.0.0.1:5000/x:1"],
        "--ready-timeout": ["--image", "127.0.0.1:5000/x:1"],
        "--serve-arg": ["--artifact", artifact],
    }.get(option, ["--url", "http://127.0.0.1:1"])
    assert plan.targets != bench_plan_of(baseline).targets and plan.targets
    if option in ("--container-port", "--ready-timeout", "--serve-arg"):
        # an option for another kind of target is refused, not ignored
        value = kinds[option][-1] if option != "--serve-arg" else "--workers=2"
        argv = ["bench", "--url", "http://127.0.0.1:1"]
        argv += [f"{option}={value}"] if option == "--serve-arg" else [option, value]
        error(capsys, argv, "does not apply", 2)


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory) -> Path:
    """A real bench result of the toy OIP server."""
    from bench.conftest import toy_server

    out = tmp_path_factory.mktemp("result") / "result.json"
    with toy_server(service_ms=1) as url:
        argv = ["bench", "--url", url, "--variant", "cpu/tflite/fp32", "--quiet",
                "--warmup", "0.1", "--window", "0.2", "--max-duration", "0.6", "--json", out]  # fmt: skip
        assert main([str(a) for a in argv]) == 0
    return out


REPORT_VALUES = {
    "--title": ["--title", "Another title"],
    "--img-prefix": ["--img-prefix", "https://example.com/img/"],
    "--baseline": ["--baseline", "tflite"],
}


@check("report", "results", "--record", "--out", *REPORT_VALUES)
def _(request, capsys, tmp_path, option):
    result = request.getfixturevalue("bench_result")

    def report(folder: str, *options) -> dict[str, str]:
        out = tmp_path / folder
        assert main(["report", str(result), "--out", str(out), *map(str, options)]) == 0
        return {
            p.name: p.read_text(errors="replace")
            for p in out.iterdir()
            if p.suffix in (".md", ".html")
        }

    base = report("base")
    if option in REPORT_VALUES:
        assert report("changed", *REPORT_VALUES[option]) != base
    elif option == "--record":
        assert report("changed", "--record", request.getfixturevalue("record")) != base
    elif option == "--out":
        assert (tmp_path / "base").is_dir() and base
    else:
        error(capsys, ["report", tmp_path / "none.json", "--out", tmp_path / "x"], "cannot read")


def test_report_baseline_without_runs_is_a_usage_error_naming_the_runtimes(
    bench_result, capsys, tmp_path
):
    for baseline, text in (
        ("openvino", "runtimes present: tflite"),
        ("tflit", 'did you mean "tflite"'),
    ):
        out = tmp_path / "x"
        run = Run(["report", bench_result, "--baseline", baseline, "--out", out], capsys)
        assert run.code == 2 and "--baseline" in run.err and text in run.err, run.err
        assert str(bench_result) in run.err and not out.exists()


def test_report_baseline_default_needs_no_runs_of_it():
    from tf2aif.cli.bench import report_baseline

    assert report_baseline(None, ("tflite",), [Path("r.json")]) == "tf"
    assert report_baseline("tflite", ("tf", "tflite"), [Path("r.json")]) == "tflite"
    with pytest.raises(Exception, match="none \\(no run names its runtime"):
        report_baseline("tf", (), [Path("r.json")])


# -- serve ---------------------------------------------------------------------------------------

SERVE_VALUES = {
    "--host": ("0.0.0.0", None),
    "--port": ("9000", "0"),
    "--grpc-port": ("0", "-1"),
    "--max-batch-size": ("4", "-1"),
    "--max-queue-delay-ms": ("2.5", "-1"),
    "--max-queue-size": ("10", "-1"),
    "--max-body-bytes": ("1000", "-1"),
    "--max-image-pixels": ("1000", "-1"),
    "--threads": ("2", "-2"),
    "--workers": ("3", "0"),
    "--device": ("GPU", "GUP"),
    "--performance-hint": ("THROUGHPUT", "FAST"),
    "--engine-cache": ("/tmp/engines", None),
    "--graceful-timeout-s": ("5", "-5"),
    "--log-level": ("debug", "verbose"),
    "--no-adaptive-batching": (None, None),
    "--no-allow-nonfinite": (None, None),
    "--no-warmup": (None, None),
    "--no-access-log": (None, None),
}


@check("serve", "artifact_dir", *SERVE_VALUES)
def _(request, capsys, tmp_path, option):
    """The frozen ServerOptions change with the option; a bad value is a usage error."""
    from tf2aif.image.server.options import resolve_options

    def options(*argv):
        return resolve_options(parse(["serve", *argv]), env={})

    if option == "artifact_dir":
        assert options("a").artifact_dir != options("b").artifact_dir
        return
    good, bad = SERVE_VALUES[option]
    if good is None:  # a boolean pair: --x and --no-x
        positive = "--" + option.removeprefix("--no-")
        assert options("a", positive) != options("a", option)
        return
    assert options("a") != options("a", option, good)
    if bad:
        usage_error(capsys, ["serve", "a", option, bad], option)


# -- bases ---------------------------------------------------------------------------------------

BASES_VALUES = {
    "--registry": ["--registry", "registry.example.com:5000"],
    "--arch": ["--arch", "arm64"],
    "--vendor": ["--vendor", "docker.io/library/python:3.12-slim"],
    "--map": ["--map", "other-map.yaml"],
    "--no-sbom-scanner": ["--no-sbom-scanner"],
    "--ca-cert": ["--ca-cert", "/etc/hostname"],
}


@check("bases", "--local", "--print", *BASES_VALUES)
def _(request, capsys, tmp_path, option, monkeypatch):
    monkeypatch.setenv("TF2AIF_STATE", str(tmp_path / "state"))
    listing = Run(["bases"], capsys)
    planned = Run(["bases", "--local", "--print"], capsys)
    assert listing.code == planned.code == 0 and listing.out != planned.out
    if option in BASES_VALUES:
        differs(
            capsys,
            ["bases", "--local", "--print"],
            ["bases", "--local", "--print", *BASES_VALUES[option]],
        )
        error(capsys, ["bases", *BASES_VALUES[option]], "only apply with --local", 2)
    if option == "--print":
        error(capsys, ["bases", "--print"], "only apply with --local", 2)


# -- convert (the conversions themselves run in tests/conversion) ------------------------------


@check("convert", "manifest")
def _(request, capsys, tmp_path, option):
    project, other = request.getfixturevalue("project"), request.getfixturevalue("other_project")
    first = Run(["convert", project, "--out", tmp_path / "a"], capsys)
    second = Run(["convert", other, "--out", tmp_path / "a"], capsys)
    assert first.code == second.code == 2  # no --variant: the manifest's variants are listed
    assert "arm/tflite/fp32" in first.err and "arm/tflite/fp32" not in second.err


@check("convert", "--vendor-map")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    argv = ["convert", project, "--variant", "cpu/tflite/fp32", "--out", tmp_path / "a"]
    error(capsys, [*argv, "--vendor-map", tmp_path / "missing.yaml"], "does not exist")


# -- ci matrix, ci shard, release ------------------------------------------------------------


def matrix_run(capsys, *argv) -> Run:
    run = Run(["ci", "matrix", *argv], capsys)
    assert run.code == 0, run.err
    return run


@check("ci matrix", "manifest")
def _(request, capsys, tmp_path, option):
    project, other = request.getfixturevalue("project"), request.getfixturevalue("other_project")
    first, second = matrix_run(capsys, project), matrix_run(capsys, other)
    assert json.loads(first.out)["shards"] != json.loads(second.out)["shards"]


@check("ci matrix", "--vendor-map")
def _(request, capsys, tmp_path, option):
    project, vendor_map = request.getfixturevalue("project"), request.getfixturevalue("vendor_map")
    first = json.loads(matrix_run(capsys, project).out)
    second = json.loads(matrix_run(capsys, project, "--vendor-map", vendor_map).out)
    assert first["plan"] != second["plan"]  # the shard records of one cannot merge into the other
    error(capsys, ["ci", "matrix", project, "--vendor-map", tmp_path / "no.yaml"], "does not exist")


@check("ci matrix", "--split")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    by_platform = json.loads(matrix_run(capsys, project).out)
    by_target = json.loads(matrix_run(capsys, project, "--split", "target").out)
    assert len(by_target["build"]["include"]) > len(by_platform["build"]["include"])
    gitlab = json.loads(matrix_run(capsys, project, "--format", "gitlab", "--split", "target").out)
    assert gitlab["tf2aif-release"]["variables"]["TF2AIF_SHARD_ARGS"] == "--split target"
    usage_error(capsys, ["ci", "matrix", project, "--split", "variant"], "--split")


@check("ci matrix", "--runner")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    first = json.loads(matrix_run(capsys, project).out)
    second = json.loads(matrix_run(capsys, project, "--runner", "arm64=ubuntu-24.04-arm").out)
    labels = {row["runner"] for row in second["build"]["include"]}
    assert "ubuntu-24.04-arm" in labels and labels != {
        r["runner"] for r in first["build"]["include"]
    }
    assert first["shards"] == second["shards"]  # labels only: shard names stay
    for bad, reason in (("arm=x", "arm64"), ("arm64", "KIND=LABEL"), ("arm64=a b", "spaces")):
        run = Run(["ci", "matrix", project, "--runner", bad], capsys)
        assert run.code == 2 and "--runner" in run.err and reason in run.err, run.err


@check("ci matrix", "--format")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    github = json.loads(matrix_run(capsys, project).out)
    gitlab = json.loads(matrix_run(capsys, project, "--format", "gitlab").out)
    assert "build" in github and "tf2aif-release" in gitlab
    assert set(github["shards"]) <= set(gitlab)  # a job per shard
    usage_error(capsys, ["ci", "matrix", project, "--format", "jenkins"], "--format")


@check("ci matrix", "--gitlab-template")
def _(request, capsys, tmp_path, option):
    project = request.getfixturevalue("project")
    base = ["--format", "gitlab"]
    default = json.loads(matrix_run(capsys, project, *base).out)
    custom = json.loads(matrix_run(capsys, project, *base, "--gitlab-template", "ci/s.yml").out)
    assert default["include"] == [{"local": ".gitlab/tf2aif-shards.yml"}]
    assert custom["include"] == [{"local": "ci/s.yml"}]
    usage_error(capsys, ["ci", "matrix", project, "--gitlab-template", "ci/s.yml"], "--format")


@check("ci matrix", "--github-output")
def _(request, capsys, tmp_path, option, monkeypatch):
    project = request.getfixturevalue("project")
    output = tmp_path / "github-output"
    output.write_text("earlier=1\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    run = matrix_run(capsys, project, "--github-output")
    assert output.read_text() == f"earlier=1\nmatrix={run.out}"  # appended, one line
    monkeypatch.delenv("GITHUB_OUTPUT")
    error(capsys, ["ci", "matrix", project, "--github-output"], "$GITHUB_OUTPUT")
    usage_error(
        capsys, ["ci", "matrix", project, "--github-output", "--format", "gitlab"], "--format"
    )


def shard_job_of(argv: list) -> object:
    from tf2aif.cli.ci import shard_job
    from tf2aif.cli.pipeline import load_plan

    args = parse(["ci", "shard", *argv])
    return shard_job(args, load_plan(args))


SHARD_VALUES = {
    "--cache": (["--cache", "registry"], ["--cache", "s3"]),
    "--builder": (["--builder", "tf2aif-no-such-builder"], None),
    "--source-date-epoch": (["--source-date-epoch", "1700000000"], None),
    "--ca-cert": (["--ca-cert", "/etc/hostname"], None),
    "--record": (["--record", "elsewhere.json"], None),
    "--split": (["--split", "target"], ["--split", "variant"]),
}


@check("ci shard", *SHARD_VALUES)
def _(request, capsys, tmp_path, option):
    """The frozen job `ci shard` runs changes with the option; a bad value is a usage error."""
    project = request.getfixturevalue("project")
    good, bad = SHARD_VALUES[option]
    name = "build-cpu-openvino-fp32-amd64" if option == "--split" else "build-amd64"
    base = [name, project, "--source-date-epoch", "off"]
    first = shard_job_of(["build-amd64", project, "--source-date-epoch", "off"])
    second = shard_job_of([*base, *good])
    assert first != second
    if option == "--ca-cert":
        assert second.options.ca_file == "/etc/hostname"
    if bad:
        usage_error(capsys, ["ci", "shard", "build-amd64", project, *bad], option)
    capsys.readouterr()


@check("ci shard", "shard", "manifest", "--vendor-map")
def _(request, capsys, tmp_path, option):
    project, other = request.getfixturevalue("project"), request.getfixturevalue("other_project")
    base = shard_job_of(["build-amd64", project, "--source-date-epoch", "off"])
    changed = {
        "shard": ["build-arm64", project],
        "manifest": ["build-amd64", other],
        "--vendor-map": [
            "build-amd64",
            project,
            "--vendor-map",
            request.getfixturevalue("vendor_map"),
        ],
    }[option]
    assert base != shard_job_of([*changed, "--source-date-epoch", "off"])
    error(capsys, ["ci", "shard", "build-amd63", project], 'did you mean "build-amd64"')
    capsys.readouterr()


@pytest.fixture
def shard_records(tmp_path, project) -> Path:
    """The records of a complete, successful run of every shard of `project`."""
    from tf2aif.cli.pipeline import load_plan
    from tf2aif.shards.matrix import plan_shards
    from tf2aif.shards.record import save_shard_record
    from unit.test_shard_release import good_records

    plan = load_plan(parse(["plan", project]))
    folder = tmp_path / "records"
    for record in good_records(plan, plan_shards(plan)):
        save_shard_record(record, folder / f"{record.shard}.json")
    return folder


@check("release", "records", "--manifest", "--print", "--vendor-map", "--split", "--record")
def _(request, capsys, tmp_path, option):
    project, records = request.getfixturevalue("project"), request.getfixturevalue("shard_records")
    base = ["release", records, "--manifest", project, "--print"]
    printed = Run(base, capsys)
    assert printed.code == 0 and "serve-" in printed.out, printed.err
    assert not (project.parent / "tf2aif-record.json").exists()  # --print changes nothing
    changed = {
        "records": ["release", records / "build-amd64.json", "--manifest", project, "--print"],
        "--manifest": [*base[:3], request.getfixturevalue("other_project"), "--print"],
        "--print": base[:-1],
        "--vendor-map": [*base, "--vendor-map", request.getfixturevalue("vendor_map")],
        "--split": [*base, "--split", "target"],
        "--record": [*base, "--record", tmp_path / "r.json"],
    }[option]
    run = Run(changed, capsys)
    if option == "--record":  # a refused release writes its failed record next to --record
        Run(["release", records / "build-amd64.json", "--manifest", project, *changed[4:]], capsys)
        assert (tmp_path / "r.failed.json").is_file()
        assert not (project.parent / "tf2aif-record.failed.json").exists()
    elif option == "--print":  # without it the release runs: here no docker, or a refusal
        assert run.code != 0 and run.out != printed.out
    else:  # records of another plan (or missing ones) are refused, naming the shard
        assert run.code == 3 and "release refused" in run.err, (run.code, run.err)


# -- proven elsewhere ----------------------------------------------------------------------------

# option -> (test file, test function) that runs it against what it needs (registry, buildx,
# a real conversion) and asserts its effect
ELSEWHERE = {
    ("lock", "manifest"): ("lock/test_lock_command.py", "test_the_manifest_folder_works_too"),
    ("lock", "--check"): (
        "lock/test_lock_command.py",
        "test_check_fails_when_the_manifest_changes",
    ),
    ("lock", "--offline"): ("lock/test_lock_command.py", "test_offline_needs_check"),
    ("lock", "--vendor-map"): (
        "lock/test_lock_command.py",
        "test_check_without_the_vendor_map_says_so",
    ),
    ("lock", "--tools-from"): ("lock/test_lock_command.py", "test_bad_tools_from_is_a_clear_error"),
    ("lock", "--write-vendor-map"): (
        "lock/test_lock_command.py",
        "test_print_writes_nothing_and_vendor_map_out",
    ),
    ("lock", "--print"): (
        "lock/test_lock_command.py",
        "test_print_writes_nothing_and_vendor_map_out",
    ),
    ("lock", "--resolver"): ("lock/test_lock_registry.py", None),
    ("convert", "--variant"): ("conversion/test_entrypoints.py", None),
    ("convert", "--out"): ("conversion/test_entrypoints.py", None),
    ("convert", "--spec-json"): ("conversion/test_entrypoints.py", None),
    ("convert", "--root"): ("conversion/test_entrypoints.py", None),
    # and --root without --spec-json is refused: test_convert_root_needs_a_spec below
}


def test_every_declared_option_has_a_check():
    declared = declared_options()
    assert declared - set(CHECKS) - set(ELSEWHERE) == set(), "options without a proof of effect"
    assert set(CHECKS) | set(ELSEWHERE) <= declared, "checks for options that no longer exist"


@pytest.mark.parametrize("key", sorted(ELSEWHERE), ids=" ".join)
def test_options_proven_elsewhere_have_their_test(key):
    file, function = ELSEWHERE[key]
    text = (TESTS / file).read_text()
    option = key[1]
    assert option in text or key[1] == "manifest", f"{file} never uses {option}"
    if function:
        assert f"def {function}(" in text


@pytest.mark.parametrize("key", sorted(CHECKS), ids=lambda k: f"{k[0] or 'tf2aif'} {k[1]}")
def test_option_has_an_effect(key, request, capsys, tmp_path, monkeypatch):
    function = CHECKS[key]
    kwargs = {"monkeypatch": monkeypatch} if "monkeypatch" in function.__code__.co_varnames else {}
    monkeypatch.chdir(tmp_path)
    function(request, capsys, tmp_path, key[1], **kwargs)


def test_convert_root_needs_a_spec(project, tmp_path, capsys):
    run = Run(["convert", project, "--root", tmp_path, "--out", tmp_path / "a"], capsys)
    assert run.code == 2 and "--root applies to --spec-json" in run.err and not run.out


# -- generated values ----------------------------------------------------------------------------


def typed_options() -> list[tuple[str, str, Callable]]:
    """(command, option, type) for every option whose type comes from tf2aif.cli.argtypes."""
    from tf2aif.cli import argtypes

    found = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}".strip())
            elif (
                action.type is not None
                and getattr(action.type, "__module__", "") == argtypes.__name__
            ):
                found.append((path, action.option_strings[-1], action.type))

    walk(build_parser(), "")
    return found


@pytest.mark.fuzz
@given(
    st.sampled_from(typed_options()),
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(
            ["nan", "-nan", "inf", "-inf", "1e309", "0", "-0", "1", "-1", "0.5", "1,2,0"]
        ),
        st.floats().map(str),
        st.integers(-(10**20), 10**20).map(str),
    ),
)
def test_generated_option_values_are_parsed_in_range_or_refused(typed, text):
    """Any text for a checked option is either a finite in-range value or argparse's usage
    error naming the option -- never a traceback, never nan or inf."""
    import math

    command, option, parse_type = typed
    try:
        value = parse_type(text)
    except argparse.ArgumentTypeError:
        return
    values = value if isinstance(value, list) else [value]
    for item in values:
        if isinstance(item, float | int):
            assert math.isfinite(item)
            assert item >= 0  # every checked number is non-negative


def test_a_refused_value_is_a_usage_error_naming_the_option(capsys):
    for command, option, _ in typed_options():
        argv = [*command.split(), option, "nan"] if command else [option, "nan"]
        if command == "place":
            argv += ["--cluster", "c", "--apps", "a"]
        run = Run(argv, capsys)
        if option in ("--namespace", "--fpga-resource", "--cpu", "--memory", "--memory-limit"):
            continue  # "nan" is a valid name; the effect checks above refuse bad ones
        assert run.code == 2 and option in run.err, (argv, run.err)


@pytest.mark.fuzz
@given(st.text(max_size=24))
def test_generated_runner_labels_are_a_known_kind_and_a_plain_label_or_refused(text):
    from tf2aif.cli.ci import RUNNER_KINDS, runner_label

    try:
        kind, label = runner_label(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc)
        return
    assert kind in RUNNER_KINDS and label and label.isprintable()
    assert not any(c.isspace() for c in label)

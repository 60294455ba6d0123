"""Malformed manifests: each gives exit code 1 and one clear, located error; never a traceback."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tf2aif.cli.main import main

from projects import BASIC, write_project


@dataclass(frozen=True)
class Case:
    id: str
    edit: tuple[str, str] | None  # (old, new) applied to BASIC
    line_of: str | None  # the error's line is the first line containing this text
    path: str  # field path printed after file:line:col
    message: str  # a fragment of the message
    files: tuple[tuple[str, str], ...] = ()  # extra (path, content) written into the project
    text: str | None = None  # whole manifest instead of an edit


CASES = [
    Case("version", ("version: 1", "version: 2"), "version:", "version", "expected 1, got 2"),
    Case(
        "name-case",
        ("name: demo", "name: Demo"),
        "name:",
        "name",
        "'Demo' is not valid: expected a lowercase image name",
    ),
    Case("name-dash", ("name: demo", "name: -demo"), "name:", "name", "is not valid"),
    Case("name-type", ("name: demo", "name: 5"), "name:", "name", "expected a string, got int 5"),
    Case(
        "model-no-path",
        ("model: {path: models/m}", "model: {signature: x}"),
        "model:",
        "model",
        "missing required key 'path'",
    ),
    Case("model-missing", ("models/m}", "models/nope}"), "model:", "model.path", "does not exist"),
    Case(
        "model-not-savedmodel",
        ("models/m}", "app}"),
        "model:",
        "model.path",
        "without saved_model.pb",
    ),
    Case(
        "model-wrong-file",
        ("models/m}", "app/processing.py}"),
        "model:",
        "model.path",
        "expected a SavedModel folder or a .keras file",
    ),
    Case(
        "top-typo",
        ("model: {path", "modle: {path"),
        "modle",
        "modle",
        "unknown key 'modle' (did you mean \"model\"?)",
    ),
    Case(
        "targets-typo",
        ("  platforms:", "  platfroms:"),
        "platfroms",
        "targets.platfroms",
        'did you mean "platforms"?',
    ),
    Case(
        "unknown-platform",
        ("[cpu, arm]", "[cpu, amr]"),
        "[cpu, amr]",
        "targets.platforms[1]",
        "unknown platform 'amr' (did you mean \"arm\"?)",
    ),
    Case(
        "unknown-runtime",
        ("[tflite, openvino]", "[tflite, openvno]"),
        "openvno",
        "targets.runtimes[1]",
        "unknown runtime 'openvno' (did you mean \"openvino\"?)",
    ),
    Case(
        "bad-precision",
        ("[fp32, int8]", "[fp32, fp64]"),
        "fp64",
        "targets.precisions[1]",
        "expected one of fp32, fp16, int8, got 'fp64'",
    ),
    Case(
        "precision-typo",
        ("[fp32, int8]", "[fp32, in8]"),
        "in8",
        "targets.precisions[1]",
        'did you mean "int8"?',
    ),
    Case(
        "empty-platforms",
        ("[cpu, arm]", "[]"),
        "platforms:",
        "targets.platforms",
        "expected at least 1 item(s)",
    ),
    Case(
        "duplicate-platforms",
        ("[cpu, arm]", "[cpu, cpu]"),
        "platforms:",
        "targets.platforms",
        "items must be unique",
    ),
    Case(
        "platforms-not-list",
        ("[cpu, arm]", "cpu"),
        "platforms:",
        "targets.platforms",
        "expected a list, got str 'cpu'",
    ),
    Case(
        "exclude-typo",
        ("  precisions: [fp32, int8]", "  precisions: [fp32, int8]\n  exclude: [{platfrom: arm}]"),
        "exclude",
        "targets.exclude[0].platfrom",
        "unknown key 'platfrom'",
    ),
    Case(
        "exclude-empty",
        ("  precisions: [fp32, int8]", "  precisions: [fp32, int8]\n  exclude: [{}]"),
        "exclude",
        "targets.exclude[0]",
        "at least one of platform, runtime, precision",
    ),
    Case(
        "include-incomplete",
        (
            "  precisions: [fp32, int8]",
            "  precisions: [fp32, int8]\n  include: [{platform: gpu, runtime: tensorrt}]",
        ),
        "include",
        "targets.include[0]",
        "missing required key 'precision'",
    ),
    Case(
        "include-unsupported",
        (
            "  precisions: [fp32, int8]",
            "  precisions: [fp32, int8]\n  include: [{platform: arm, runtime: tensorrt, precision: fp16}]",
        ),
        "include",
        "targets.include[0]",
        "arm/tensorrt/fp16 cannot be built: no recipe serves tensorrt on arm (tensorrt runs on: agx, gpu)",
    ),
    Case(
        "include-precision",
        (
            "  precisions: [fp32, int8]",
            "  precisions: [fp32, int8]\n  include: [{platform: alveo, runtime: vitis-ai, precision: fp32}]",
        ),
        "include",
        "targets.include[0]",
        "the DPU executes int8 only",
    ),
    Case(
        "int8-no-calibration",
        ("calibration: {module: app/calibration.py, function: samples, count: 50}\n", ""),
        "precisions:",
        "targets.precisions[1]",
        "int8 variants (cpu/tflite/int8, cpu/openvino/int8, arm/tflite/int8, arm/openvino/int8) need calibration data",
    ),
    Case(
        "calibration-missing-file",
        ("app/calibration.py", "app/nope.py"),
        "calibration:",
        "calibration.module",
        "module '",
    ),
    Case(
        "calibration-function",
        ("function: samples", "function: sample"),
        "calibration:",
        "calibration.function",
        "defines no function 'sample' (did you mean \"samples\"?)",
    ),
    Case(
        "processing-syntax",
        None,
        "processing:",
        "processing.module",
        "does not import: SyntaxError at line 1",
        files=(("app/processing.py", "def preprocess(:\n"),),
    ),
    Case(
        "processing-no-postprocess",
        None,
        "processing:",
        "processing.module",
        "defines no function 'postprocess'",
        files=(("app/processing.py", "def preprocess(payload, content_type):\n    return {}\n"),),
    ),
    Case(
        "processing-not-py",
        ("app/processing.py", "app/processing.txt"),
        "processing:",
        "processing.module",
        "expected a path to a .py file",
    ),
    Case(
        "calibration-count",
        ("count: 50", "count: 0"),
        "calibration:",
        "calibration.count",
        "expected a number >= 1, got 0",
    ),
    Case(
        "top1-range",
        ("min_top1_agreement: 0.99", "min_top1_agreement: 1.5"),
        "fidelity:",
        "fidelity.min_top1_agreement",
        "expected a number <= 1, got 1.5",
    ),
    Case(
        "atol-type",
        ("atol: 0.01", "atol: small"),
        "fidelity:",
        "fidelity.atol",
        "expected a number, got str 'small'",
    ),
    Case(
        "registry",
        ("registry.example.com/team", "Registry.Example.com/Team"),
        "registry:",
        "registry",
        "expected an image repository prefix",
    ),
    Case("yaml-syntax", ("[cpu, arm]", "[cpu, arm"), "runtimes:", "(top level)", "invalid YAML"),
    Case(
        "duplicate-key",
        ("name: demo", "name: demo\nname: other"),
        "name: other",
        "name",
        "duplicate key 'name'",
    ),
    Case("empty-file", None, None, "(top level)", "the manifest is empty", text=""),
    Case(
        "not-a-mapping",
        None,
        "- a",
        "(top level)",
        "expected a mapping, got a list",
        text="- a\n- b\n",
    ),
    Case(
        "missing-targets",
        None,
        "version",
        "(top level)",
        "missing required key 'targets'",
        text="version: 1\nname: demo\nmodel: {path: models/m}\n",
    ),
    Case(
        "options-unknown-runtime",
        ("registry:", "options: {tensorrtt: {opset: 17}}\nregistry:"),
        "options:",
        "options.tensorrtt",
        "unknown runtime 'tensorrtt' (did you mean \"tensorrt\"?)",
    ),
    Case(
        "serve-batch",
        ("registry:", "serve: {max_batch_size: 0}\nregistry:"),
        "serve:",
        "serve.max_batch_size",
        "expected a number >= 1, got 0",
    ),
    Case(
        "all-excluded",
        (
            "  precisions: [fp32, int8]",
            "  precisions: [fp32, int8]\n  exclude: [{runtime: tflite}, {runtime: openvino}]",
        ),
        "targets:",
        "targets",
        "the matrix is empty",
    ),
    Case(
        "bad-tag",
        ("registry:", "tags: [v1/latest]\nregistry:"),
        "tags:",
        "tags[0]",
        "expected a Docker tag",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_manifest_is_located(case: Case, tmp_path, capsys):
    text = case.text if case.text is not None else BASIC
    if case.edit:
        assert case.edit[0] in text, "the edit must apply"
        text = text.replace(case.edit[0], case.edit[1], 1)
    file = write_project(tmp_path, text)
    for rel, content in case.files:
        (tmp_path / rel).write_text(content)

    code = main(["validate", str(file)])

    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    line = (
        1
        if case.line_of is None
        else next(i for i, row in enumerate(text.splitlines(), 1) if case.line_of in row)
    )
    pattern = rf"{re.escape(str(file))}(:{line}(:\d+)?)?: {re.escape(case.path)}: .*{re.escape(case.message)}"
    if case.text == "":
        pattern = rf"{re.escape(str(file))}: {re.escape(case.path)}: .*{re.escape(case.message)}"
    assert re.search(pattern, err), f"expected /{pattern}/ in:\n{err}"


def test_all_errors_are_reported_together(tmp_path, capsys):
    text = BASIC.replace("name: demo", "name: Demo").replace("[fp32, int8]", "[fp32, fp64]")
    file = write_project(tmp_path, text)
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert "2 errors" in err
    assert f"{file}:2:7: name:" in err
    assert f"{file}:9:" in err and "targets.precisions[1]" in err


def test_missing_manifest_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "manifest not found" in capsys.readouterr().err


def test_valid_manifest_passes(tmp_path, capsys):
    file = write_project(tmp_path, BASIC)
    assert main(["validate", str(file)]) == 0
    assert "8 variants, 6 images, 4 conversions" in capsys.readouterr().out


def test_malformed_cases_are_many_and_distinct():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)

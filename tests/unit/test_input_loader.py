"""Hostile and broken input files: every class gives exit code 1 and located errors, never a traceback.

Each case is run through the command line a user runs (`tf2aif validate`, `plan`, `place`,
`deploy k8s`, `lock --check`), and the error is checked by file:line:column, field and words.
"""

from __future__ import annotations

import json
import os
import re
import resource
import time
import tracemalloc
from pathlib import Path

import pytest

from tf2aif.cli.main import main
from tf2aif.pipeline.yamlfile import DEFAULT_LIMITS, load_file, load_yaml

from projects import BASIC, write_project

# -- the manifest -----------------------------------------------------------------------------

# (id, edit of BASIC (old, new), expected "line:col: field: message" fragment as a regex)
MANIFEST_CASES = [
    (
        "python-tag",
        ("name: demo", "name: !!python/object:os.system demo"),
        r":2:7: name: YAML tag '!!python/object:os.system' is not supported",
    ),
    (
        "local-tag",
        ("name: demo", "name: !custom demo"),
        r":2:7: name: YAML tag '!custom' is not supported",
    ),
    (
        "binary-tag",
        ("name: demo", "name: !!binary ZGVtbw=="),
        r":2:7: name: YAML tag '!!binary' is not supported",
    ),
    (
        "tag-on-list",
        ("[cpu, arm]", "!!set [cpu, arm]"),
        r":7:14: targets.platforms: YAML tag '!!set' is not supported: write a plain list",
    ),
    (
        "merge-key",
        ("name: demo", "name: demo\nbase: &b {max_batch_size: 4}\nserve: {<<: *b}"),
        r":4:9: serve: merge keys \(<<\) are not supported",
    ),
    (
        "int-key",
        ("name: demo", "name: demo\n1: one"),
        r":3:1: \(top level\): keys must be strings, got '1' \(read as int\): quote it",
    ),
    (
        "bool-key",
        ("name: demo", "name: demo\non: push"),
        r":3:1: \(top level\): keys must be strings, got 'on' \(read as bool\)",
    ),
    (
        "list-key",
        ("registry:", "options: {tflite: {[1, 2]: 3}}\nregistry:"),
        r":11:20: options.tflite: keys must be strings, got a list, a mapping",
    ),
    (
        "deep-nesting",
        ("name: demo", "name: demo\ndescription: " + "[" * 200 + "]" * 200),
        r":3:\d+: \(top level\): (invalid YAML: exceeded maximum nesting depth|nested deeper than 64 levels)",
    ),
    (
        "self-alias",
        ("name: demo", "name: demo\ndescription: &a [*a]"),
        r":3:\d+: description\[0\]: an alias refers to the collection that contains it",
    ),
    (
        "nul-escape-in-name",
        ("name: demo", 'name: "de\\0mo"'),
        r":2:7: name: 'de\\x00mo' is not valid",
    ),
    (
        "nul-byte",
        ("name: demo", "name: de\x00mo"),
        r":2:9: \(top level\): control character U\+0000 is not allowed",
    ),
    (
        "escape-byte",
        ("name: demo", "name: de\x1bmo"),
        r":2:9: \(top level\): control character U\+001B is not allowed",
    ),
    (
        "nan",
        ("atol: 0.01", "atol: .nan"),
        r":10:18: fidelity.atol: expected a finite number, got .nan",
    ),
    (
        "inf",
        ("min_top1_agreement: 0.99", "min_top1_agreement: -.inf"),
        r":10:44: fidelity.min_top1_agreement: expected a finite number, got -.inf",
    ),
    (
        "inf-serve",
        ("registry:", "serve: {max_queue_delay_ms: .Inf}\nregistry:"),
        r":11:29: serve.max_queue_delay_ms: expected a finite number, got .Inf",
    ),
    (
        "huge-integer",
        ("count: 50", "count: " + "9" * 5000),
        r":5:\d+: calibration.count: cannot read value '9999.*': Exceeds the limit",
    ),
    (
        "name-newline",
        ("name: demo", 'name: "demo\\n"'),
        r":2:7: name: 'demo\\n' is not valid: .*\(did you mean \"demo\"\?\)",
    ),
    ("name-space", ("name: demo", 'name: "demo "'), r":2:7: name: 'demo ' is not valid"),
    (
        "registry-newline",
        ("registry.example.com/team", '"registry.example.com/team\\n"'),
        r":11:11: registry: .* is not valid: expected an image repository prefix",
    ),
    (
        "tag-newline",
        ("registry:", 'tags: ["v1\\n"]\nregistry:'),
        r":11:8: tags\[0\]: 'v1\\n' is not valid: expected a Docker tag.*\(did you mean \"v1\"\?\)",
    ),
    (
        "long-image-name",
        ("registry.example.com/team", "registry.example.com/" + "/".join(["team"] * 60)),
        r":11:11: registry: registry and name make image names of up to \d+ characters .*Docker allows at most 255",
    ),
    (
        "model-dev-null",
        ("models/m", "/dev/null"),
        r":3:15: model.path: model path '/dev/null' is not a regular file",
    ),
    (
        "model-long-path",
        ("models/m", "x/" * 3000 + "m"),
        r":3:15: model.path: model path '.*': File name too long",
    ),
    (
        "model-nul",
        ("{path: models/m}", '{path: "models/m\\0"}'),
        r":3:15: model.path: model path '.*': a path cannot contain a NUL character",
    ),
    (
        "precision-case",
        ("[fp32, int8]", "[FP32, int8]"),
        r":9:16: targets.precisions\[0\]: .*'FP32' \(did you mean \"fp32\"\?\)",
    ),
    (
        "platform-case",
        ("[cpu, arm]", "[CPU, arm]"),
        r":7:15: targets.platforms\[0\]: 'CPU' is not valid: .*\(did you mean \"cpu\"\?\)",
    ),
    (
        "runtime-case",
        ("[tflite, openvino]", "[TFLite, openvino]"),
        r":8:14: targets.runtimes\[0\]: 'TFLite' is not valid: .*\(did you mean \"tflite\"\?\)",
    ),
    (
        "override-unknown-runtime",
        (
            "fidelity: {atol: 0.01, min_top1_agreement: 0.99}",
            "fidelity:\n  overrides: [{match: {runtime: tflit}, atol: 1}]",
        ),
        r":11:33: fidelity.overrides\[0\].match.runtime: unknown runtime 'tflit' \(did you mean \"tflite\"\?\)",
    ),
    (
        "override-unknown-platform",
        (
            "fidelity: {atol: 0.01, min_top1_agreement: 0.99}",
            "fidelity:\n  overrides: [{match: {platform: gpuu}, atol: 1}]",
        ),
        r":11:34: fidelity.overrides\[0\].match.platform: unknown platform 'gpuu' \(did you mean \"gpu\"\?\)",
    ),
    (
        "option-unknown",
        ("registry:", "options: {tflite: {int8io: true}}\nregistry:"),
        r":11:20: options.tflite.int8io: unknown tflite option 'int8io' \(did you mean \"int8_io\"\?\); expected one of: int8_io",
    ),
    (
        "option-for-optionless-runtime",
        ("registry:", "options: {tf: {opset: 17}}\nregistry:"),
        r":11:16: options.tf.opset: unknown tf option 'opset'; expected one of: none \(tf takes no options\)",
    ),
]


@pytest.mark.parametrize("case", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_hostile_manifest_is_located(case, tmp_path, capsys):
    _, (old, new), expected = case
    assert old in BASIC, "the edit must apply"
    file = write_project(tmp_path, BASIC.replace(old, new, 1))
    code = main(["validate", str(file)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert re.search(re.escape(str(file)) + expected, err), f"/{expected}/ not in:\n{err}"


def test_not_utf8_is_located_at_the_byte(tmp_path, capsys):
    file = write_project(tmp_path, BASIC)
    file.write_bytes(BASIC.encode().replace(b"name: demo", b"name: d\xe9mo"))
    assert main(["validate", str(file)]) == 1
    assert (
        f"{file}:2:8: (top level): not UTF-8 text: byte 0xe9 cannot be decoded"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("kind", ["folder-without-manifest", "dev-null", "fifo"])
def test_manifest_must_be_a_regular_file(kind, tmp_path, capsys):
    target = {"folder-without-manifest": tmp_path, "dev-null": Path("/dev/null")}.get(kind)
    if kind == "fifo":
        target = tmp_path / "tf2aif.yaml"
        os.mkfifo(target)
    assert main(["validate", str(target)]) == 1
    err = capsys.readouterr().err
    expected = (
        "manifest not found"
        if kind == "folder-without-manifest"
        else "is not a regular file (a device, FIFO or socket)"
    )
    assert expected in err, err


def test_fifo_as_model_and_module(tmp_path, capsys):
    file = write_project(tmp_path, BASIC.replace("models/m", "models/pipe"))
    os.mkfifo(tmp_path / "models" / "pipe")
    (tmp_path / "app" / "processing.py").unlink()
    os.mkfifo(tmp_path / "app" / "processing.py")
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{file}:3:15: model.path: model path '{tmp_path}/models/pipe' is not a regular file" in err
    )
    assert (
        f"{file}:4:22: processing.module: module '{tmp_path}/app/processing.py' is not a regular file"
        in err
    )


def test_module_not_utf8(tmp_path, capsys):
    file = write_project(tmp_path, BASIC)
    (tmp_path / "app" / "processing.py").write_bytes(b"def preprocess(p, c):\n    return '\xff'\n")
    assert main(["validate", str(file)]) == 1
    assert (
        "processing.module: module 'app/processing.py': not UTF-8 text: byte 0xff cannot be decoded (at "
        in (capsys.readouterr().err)
    )


# -- every error of every stage at once -------------------------------------------------------


def test_two_unknown_keys_in_one_mapping_are_two_errors(tmp_path, capsys):
    file = write_project(tmp_path, BASIC.replace("name: demo", "name: demo\nfoo: 1\nbar: 2"))
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert "2 errors" in err
    assert (
        f"{file}:3:1: foo: unknown key 'foo'" in err
        and f"{file}:4:1: bar: unknown key 'bar'" in err
    )


def test_schema_file_name_and_matrix_errors_come_together(tmp_path, capsys):
    text = (
        BASIC.replace("name: demo", "name: Demo")  # schema
        .replace("app/processing.py", "app/nope.py")  # files
        .replace("fidelity: {", "fidelity: {overrides: [{match: {runtime: openvno}}], ")  # names
        .replace(
            "calibration: {module: app/calibration.py, function: samples, count: 50}\n", ""
        )  # matrix
        .replace("registry:", "options: {tflite: {bogus: 1}}\nregistry:")  # option names
    )
    file = write_project(tmp_path, text)
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert "5 errors" in err, err
    for fragment in (
        f"{file}:2:7: name: 'Demo' is not valid",
        f"{file}:4:22: processing.module: module '{tmp_path}/app/nope.py' does not exist",
        f"{file}:9:42: fidelity.overrides[0].match.runtime: unknown runtime 'openvno'",
        f"{file}:8:22: targets.precisions[1]: int8 variants (cpu/tflite/int8, cpu/openvino/int8, arm/tflite/int8, arm/openvino/int8) need calibration data",
        "options.tflite.bogus: unknown tflite option 'bogus'",
    ):
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    lines = [int(m) for m in re.findall(re.escape(str(file)) + r":(\d+):", err)]
    assert lines == sorted(lines), "errors are listed in file order"


def test_matrix_is_not_judged_on_a_misread_targets_section(tmp_path, capsys):
    file = write_project(tmp_path, BASIC.replace("[cpu, arm]", "[cpu, 5]"))
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert "1 error" in err and "targets.platforms[1]: expected a string, got int 5" in err


# -- size, node count and time are bounded ----------------------------------------------------


def _alias_bomb(levels: int = 9) -> str:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (_alias_bomb(), "more than 50000 values once aliases are expanded: not read"),
        ("x: [" + "1," * 1_500_000 + "1]\n", "more than 50000 values: not read"),
        ("x: [" + "{a: 1}," * 200_000 + "{}]\n", "more than 50000 values: not read"),
    ],
    ids=["alias-bomb", "dense-list-3MB", "list-of-mappings"],
)
def test_bombs_fail_fast_with_bounded_memory(text, message, tmp_path):
    file = tmp_path / "tf2aif.yaml"
    file.write_text(text)
    started = time.perf_counter()
    loaded = load_file(file)
    elapsed = time.perf_counter() - started
    tracemalloc.start()  # a second load, traced: tracing slows Python too much to time the first
    load_file(file)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [i.message for i in loaded.issues] == [message]
    # ~0.2 s / 1.3 s / 0.7 s and 10-22 MiB on a quiet machine; the bound leaves room for a busy one.
    assert elapsed < 20, f"took {elapsed:.1f}s"
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_file_size_is_bounded(tmp_path, capsys):
    file = tmp_path / "tf2aif.yaml"
    file.write_text("description: " + "x" * DEFAULT_LIMITS.max_bytes + "\n")
    assert main(["validate", str(file)]) == 1
    assert f"larger than {DEFAULT_LIMITS.max_bytes} bytes: not read" in capsys.readouterr().err


def test_json_is_read_like_yaml_with_positions():
    loaded = load_yaml('{\n\t"a": 1,\n\t"b": ["x\\/y", 2.5e3, null, true]\n}\n', "f.json")
    assert loaded.issues == () and loaded.data == {"a": 1, "b": ["x/y", 2500.0, None, True]}
    assert loaded.location(("b", 1)).line == 3


def test_dates_stay_text():
    assert load_yaml("created: 2026-11-23\n", "f").data == {"created": "2026-11-23"}


# -- the other inputs: placement, build record, lock, vendor map --------------------------------


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "placement"


def _placement(tmp_path: Path) -> tuple[Path, Path]:
    for source in EXAMPLES.iterdir():
        if source.is_file():
            (tmp_path / source.name).write_bytes(source.read_bytes())
    return tmp_path / "cluster.yaml", tmp_path / "apps.yaml"


def test_placement_examples_load(tmp_path, capsys):
    cluster, apps = _placement(tmp_path)
    assert (
        main(
            [
                "place",
                "--cluster",
                str(cluster),
                "--apps",
                str(apps),
                "--out",
                str(tmp_path / "k8s"),
            ]
        )
        == 0
    ), capsys.readouterr().err


@pytest.mark.parametrize(
    "which, old, new, expected",
    [
        (
            "cluster.yaml",
            "memory_mb: ",
            "memory_mb: .nan #",
            r"cluster.yaml:\d+:\d+: nodes\[0\].memory_mb: expected a finite number",
        ),
        (
            "cluster.yaml",
            "nodes:",
            "<<: {}\nnodes:",
            r"cluster.yaml:\d+:1: \(top level\): merge keys",
        ),
        (
            "apps.yaml",
            "rate: 400",
            "rate: .inf",
            r"apps.yaml:\d+:\d+: apps\[0\].rate: expected a finite number, got .inf",
        ),
        (
            "apps.yaml",
            "apps:",
            "1: x\napps:",
            r"apps.yaml:\d+:1: \(top level\): keys must be strings",
        ),
    ],
    ids=["cluster-nan", "cluster-merge", "apps-inf", "apps-int-key"],
)
def test_placement_inputs_are_located(which, old, new, expected, tmp_path, capsys):
    cluster, apps = _placement(tmp_path)
    path = tmp_path / which
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    assert (
        main(
            [
                "place",
                "--cluster",
                str(cluster),
                "--apps",
                str(apps),
                "--out",
                str(tmp_path / "k8s"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(expected, err), err


@pytest.mark.parametrize("kind", ["dev-null", "folder", "fifo"])
def test_placement_inputs_must_be_regular_files(kind, tmp_path, capsys):
    cluster, apps = _placement(tmp_path)
    if kind == "dev-null":
        cluster = Path("/dev/null")
    elif kind == "folder":
        cluster = tmp_path
    else:
        cluster = tmp_path / "pipe.yaml"
        os.mkfifo(cluster)
    assert (
        main(
            [
                "place",
                "--cluster",
                str(cluster),
                "--apps",
                str(apps),
                "--out",
                str(tmp_path / "k8s"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        "is a folder, expected a file" if kind == "folder" else "is not a regular file"
    ) in err, err


def test_record_with_control_character_and_bad_reference(tmp_path, capsys):
    record = json.loads((EXAMPLES / "digits.record.json").read_text())
    record["images"][0]["image"] = "Registry/Digits"
    path = tmp_path / "tf2aif-record.json"
    path.write_text(json.dumps(record, indent=2))
    assert main(["deploy", "k8s", "--record", str(path), "--print"]) == 1
    err = capsys.readouterr().err
    assert re.search(
        re.escape(str(path))
        + r":\d+:\d+: images\[0\]\.image: 'Registry/Digits' is not valid: expected a Docker image reference",
        err,
    ), err
    path.write_text(json.dumps(record, indent=2).replace('"created"', '"cre\x07ated"'))
    assert main(["deploy", "k8s", "--record", str(path), "--print"]) == 1
    assert (
        f"{path}:2:7: (top level): control character U+0007 is not allowed"
        in capsys.readouterr().err
    )


def test_vendor_map_references_follow_dockers_grammar(tmp_path, capsys):
    file = write_project(tmp_path, BASIC)
    vendor_map = tmp_path / "vendor.yaml"
    vendor_map.write_text(
        '"tensorflow/tensorflow:2.21.0": "mirror.example.com/tf:2.21.0\\n"\n"python:3.11-slim": 5\n'
    )
    assert main(["plan", str(file), "--vendor-map", str(vendor_map)]) == 1
    err = capsys.readouterr().err
    assert f"{vendor_map}: 2 errors in this vendor map" in err
    assert (
        f"{vendor_map}:1:33: tensorflow/tensorflow:2.21.0: 'mirror.example.com/tf:2.21.0\\n' is not valid"
        in err
    )
    assert f"{vendor_map}:2:21: python:3.11-slim: expected a string, got int 5" in err
    vendor_map.write_text('vendor_images: {"Bad Ref": "x"}\n')
    assert main(["plan", str(file), "--vendor-map", str(vendor_map)]) == 1
    assert (
        f"{vendor_map}:1:17: vendor_images.Bad Ref: 'Bad Ref' is not valid"
        in capsys.readouterr().err
    )


def test_lock_file_is_checked(tmp_path, capsys):
    file = write_project(tmp_path, BASIC)
    lock = tmp_path / "tf2aif.lock"
    lock.write_text(
        "manifest: tf2aif.yaml\nfiles: {tf2aif.yaml: sha256:nothex}\nimages: !!omap []\n"
    )
    assert main(["lock", "--check", str(file)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{lock}:2:22: files.tf2aif.yaml: 'sha256:nothex' is not valid: expected sha256:<64 hex digits>"
        in err
    )
    assert f"{lock}:3:9: images: YAML tag '!!omap' is not supported" in err


def test_rss_stays_bounded_after_the_bombs(tmp_path):
    """The process as a whole: loading every bomb above leaves the peak RSS far below a GB."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for text in (_alias_bomb(12), "x: [" + "[1]," * 1_000_000 + "1]\n"):
        (tmp_path / "f.yaml").write_text(text)
        assert load_file(tmp_path / "f.yaml").issues
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 300 * 1024, f"peak RSS grew by {grown_kib / 1024:.0f} MiB"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"[1, 2]", "not a bench result: expected a JSON object"),
        (b'{"a": \xff}', ":1:7: (top level): not UTF-8 text: byte 0xff cannot be decoded"),
        (b"[" * 100_000 + b"]" * 100_000, "not a JSON bench result: RecursionError"),
        (b'{"a": 1,}', ":1:9: not a JSON bench result: Expecting property name"),
    ],
    ids=["list", "not-utf8", "deep", "syntax"],
)
def test_bench_results_for_report_are_read_bounded(content, expected, tmp_path, capsys):
    path = tmp_path / "result.json"
    path.write_bytes(content)
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert expected in err and str(path) in err, err


def test_fuzz_seeds_are_valid(tmp_path):
    """The generated-input tests mutate valid files: each seed loads cleanly as it is."""
    from test_input_fuzz import LOCK

    from tf2aif.lock.lockfile import load_lock
    from tf2aif.pipeline.record import read_record
    from tf2aif.place.inputs import load_apps, load_cluster

    cluster, apps = _placement(tmp_path)
    assert load_cluster(cluster) and load_apps(apps)[0]
    assert read_record(tmp_path / "digits.record.json").name == "digits"
    (tmp_path / "tf2aif.lock").write_text(LOCK)
    assert load_lock(tmp_path / "tf2aif.lock").manifest == "tf2aif.yaml"


def test_a_flood_of_errors_is_capped_and_counted(tmp_path, capsys):
    file = write_project(
        tmp_path,
        BASIC.replace("name: demo", "name: demo\n" + "".join(f"k{i}: 1\n" for i in range(80))),
    )
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert "50 errors" in err and err.count("unknown key 'k") == 49
    assert f"{file}: (top level): ... and 31 more problems of the same kinds" in err


def test_vendor_maps_tf2aif_writes_are_read_back(tmp_path):
    """Every vendor reference the shipped recipes name, mapped as `bases --local` and `lock` write it."""
    from tf2aif.bases.standins import render_vendor_map
    from tf2aif.cli.pipeline import read_vendor_map
    from tf2aif.pipeline.recipes import load_recipes

    recipes = load_recipes(env={})
    refs = {r.converter.vendor for r in recipes.recipes}
    refs |= {ref.vendor for r in recipes.recipes for ref in r.platforms.values()}
    mapping = {
        ref: f"127.0.0.1:5000/stand-in/{ref.rsplit('/', 1)[-1]}@sha256:{'a' * 64}" for ref in refs
    }
    path = tmp_path / "vendor-map.yaml"
    path.write_text(render_vendor_map(mapping))
    assert read_vendor_map(str(path)) == mapping
    path.write_text(yaml_dump({"vendor_images": mapping}))
    assert read_vendor_map(str(path)) == mapping


def yaml_dump(value) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=True, width=300)


def test_a_bad_key_hides_no_other_error(tmp_path, capsys):
    file = write_project(tmp_path, "version: 1\nname: demo\n1: x\nmodel: {path: models/m}\n")
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert f"{file}:3:1: (top level): keys must be strings" in err
    assert "missing required key 'targets'" in err, err


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["lock", "--check"]])
def test_too_long_a_manifest_path(command, tmp_path, capsys):
    path = str(tmp_path / ("a" * 300) / "tf2aif.yaml")
    assert main([*command, path]) == 1
    err = capsys.readouterr().err
    assert "File name too long" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "record: digits.record.json",
            'record: ""',
            "models.digits.record: file '{root}' is a folder, expected a file",
        ),
        (
            "record: digits.record.json",
            "record: digits.profiles.json",
            "models.digits.record: '{root}/digits.profiles.json' is not valid (",
        ),
    ],
    ids=["folder", "wrong-kind"],
)
def test_files_named_by_apps_are_reported_at_the_apps_line(old, new, expected, tmp_path):
    from tf2aif.errors import ManifestError
    from tf2aif.place.inputs import load_apps

    _, apps = _placement(tmp_path)
    apps.write_text(apps.read_text().replace(old, new))
    with pytest.raises(ManifestError) as caught:
        load_apps(apps)
    assert f"{apps}:6:13: " + expected.format(root=tmp_path) in str(caught.value), str(caught.value)

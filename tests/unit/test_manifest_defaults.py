"""The schema is the one home of manifest defaults: what the loader applies is what it declares."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.pipeline.manifest import load_manifest, schema_default
from tf2aif.pipeline.plan import make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schema" / "tf2aif.schema.json").read_text())


def _declared_defaults(node, path=()) -> dict[tuple[str, ...], object]:
    """Every `default` in the schema, by the property path it sits at ($defs/samples stands for
    each place that refers to it)."""
    found = {}
    if isinstance(node, dict):
        if "default" in node:
            found[path] = node["default"]
        for name, child in node.get("properties", {}).items():
            found |= _declared_defaults(child, (*path, name))
    return found


def _all_defaults() -> dict[tuple[str, ...], object]:
    found = _declared_defaults(SCHEMA)
    for ref_owner in (("calibration",), ("fidelity", "samples")):
        samples = _declared_defaults(SCHEMA["$defs"]["samples"], ref_owner)
        found |= samples
    return found


MINIMAL = """\
version: 1
name: digits
model: {path: model}
calibration: {module: app/cal.py}
fidelity: {samples: {module: app/cal.py}}
targets: {platforms: [cpu], runtimes: [tflite], precisions: [fp32, int8]}
"""


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"\0")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "cal.py").write_text("def samples():\n    yield [0.0]\n")
    (tmp_path / "tf2aif.yaml").write_text(MINIMAL)
    return tmp_path / "tf2aif.yaml"


def test_every_schema_default_is_what_the_loader_applies(minimal: Path) -> None:
    manifest, _ = load_manifest(minimal)
    applied = {
        ("model", "signature"): manifest.model.signature,
        ("client", "enabled"): manifest.client,
        ("serve", "max_batch_size"): manifest.serve.max_batch_size,
        ("serve", "max_queue_delay_ms"): manifest.serve.max_queue_delay_ms,
        ("serve", "max_queue_size"): manifest.serve.max_queue_size,
        ("calibration", "function"): manifest.calibration.function,
        ("calibration", "count"): manifest.calibration.count,
        ("fidelity", "samples", "function"): manifest.fidelity_samples.function,
        ("fidelity", "samples", "count"): manifest.fidelity_samples.count,
    }
    # Each default the schema declares is checked, and each equals what was applied.
    assert set(applied) == set(_all_defaults())
    for path, value in _all_defaults().items():
        assert applied[path] == value, path
        assert schema_default(*path) == value, path


def test_the_plan_passes_resolved_counts_into_the_convert_specs(minimal: Path) -> None:
    recipes = load_recipes(env={})
    manifest, _ = load_manifest(minimal, recipes=recipes)
    plan = make_plan(resolve(manifest, recipes), env={})
    specs = [c.spec for c in plan.converts]
    assert specs
    for spec in specs:
        for ref in (spec.calibration, spec.fidelity_samples):
            if ref is not None:
                assert ref.count == SCHEMA["$defs"]["samples"]["properties"]["count"]["default"]
                assert ref.function == "samples"
        assert spec.signature == SCHEMA["properties"]["model"]["properties"]["signature"]["default"]


def test_no_manifest_default_is_written_in_code() -> None:
    """The literal defaults live only in the schema: neither the loader nor the image repeats them."""
    from tf2aif.image.convert import samples

    # The image once assumed its own counts (1000 held-out samples, which no manifest could give).
    assert not hasattr(samples, "DEFAULT_FIDELITY_COUNT")
    assert not hasattr(samples, "DEFAULT_CALIBRATION_COUNT")
    files = [
        ROOT / "builder/tf2aif/pipeline/manifest.py",
        ROOT / "builder/tf2aif/image/convert/samples.py",
    ]
    keys = {part for path in _all_defaults() for part in path}  # "samples" is also a key name
    literals = {v for v in _all_defaults().values() if not isinstance(v, bool)} - keys
    literals = {v for v in literals if not (isinstance(v, int) and v < 10)}  # 2, 8: too common
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Constant) and not isinstance(node.value, bool):
                assert node.value not in literals, (file.name, node.value, node.lineno)


@pytest.mark.fuzz
@given(
    serve=st.fixed_dictionaries(
        {},
        optional={
            "max_batch_size": st.integers(1, 64),
            "max_queue_delay_ms": st.floats(0, 100, allow_nan=False),
            "max_queue_size": st.integers(1, 4096),
            "threads": st.integers(1, 64),
        },
    )
)
def test_written_serve_settings_win_and_the_rest_come_from_the_schema(
    serve, tmp_path_factory
) -> None:
    folder = tmp_path_factory.mktemp("m")
    (folder / "model").mkdir()
    (folder / "model" / "saved_model.pb").write_bytes(b"\0")
    text = MINIMAL.replace(
        "calibration: {module: app/cal.py}\nfidelity: {samples: {module: app/cal.py}}\n", ""
    )
    text = text.replace("[fp32, int8]", "[fp32]") + f"serve: {json.dumps(serve)}\n"
    (folder / "tf2aif.yaml").write_text(text)
    manifest, _ = load_manifest(folder / "tf2aif.yaml")
    for name in ("max_batch_size", "max_queue_delay_ms", "max_queue_size"):
        expected = serve.get(name, SCHEMA["properties"]["serve"]["properties"][name]["default"])
        assert getattr(manifest.serve, name) == expected
    assert manifest.serve.threads == serve.get("threads")

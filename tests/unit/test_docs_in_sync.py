"""README's manifest reference is generated from the schema; the demo and recipes obey their schemas."""

from __future__ import annotations

from pathlib import Path

from tf2aif.cli.schema_doc import END, START, reference_markdown
from tf2aif.pipeline.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_reference_is_generated_from_schema():
    text = (ROOT / "README.md").read_text()
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == reference_markdown(), "run: python -m tf2aif.cli.schema_doc README.md"
    for field in (
        "`targets.include[].precision`",
        "`fidelity.samples.count`",
        "`serve.max_batch_size`",
    ):
        assert field in block


def test_demo_manifest_is_valid(tmp_path):
    demo = ROOT / "tf2aif.yaml"
    model = ROOT / "models" / "digits" / "saved_model.pb"
    if (
        not model.is_file()
    ):  # the demo model is trained by scripts/setup.sh; validate against a stand-in
        (tmp_path / "models" / "digits").mkdir(parents=True)
        (tmp_path / "models" / "digits" / "saved_model.pb").write_bytes(b"x")
        (tmp_path / "app").symlink_to(ROOT / "app")
        (tmp_path / "tf2aif.yaml").write_text(demo.read_text())
        demo = tmp_path / "tf2aif.yaml"
    manifest, warnings = load_manifest(demo)
    assert manifest.name == "digits" and warnings == ()

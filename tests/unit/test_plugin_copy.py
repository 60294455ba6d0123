"""The plug-in folder copied into an artifact never swallows the artifact or tool folders."""

from __future__ import annotations

from tf2aif.image.convert.pipeline import _copy_plugins
from tf2aif.image.convert.spec import ConvertSpec


def test_output_inside_the_plugin_folder_is_not_copied_into_itself(tmp_path):
    (tmp_path / "processing.py").write_text("def preprocess(p, c):\n    return {}\n")
    (tmp_path / ".tf2aif" / "artifacts").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    out = tmp_path / "out" / "artifact"
    out.mkdir(parents=True)
    spec = ConvertSpec(
        name="m",
        runtime="tflite",
        precision="fp32",
        backend="tflite",
        model="m",
        processing="processing.py",
        plugins_dir=".",
    )

    assert _copy_plugins(spec, tmp_path, out) == "plugins/processing.py"

    copied = sorted(p.relative_to(out / "plugins").as_posix() for p in (out / "plugins").rglob("*"))
    assert copied == ["out", "processing.py"]  # out/ itself is left out: no recursion

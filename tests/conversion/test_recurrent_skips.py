"""A real recurrent model: plan skips its TFLite cells before any build, with reason and fix."""

from __future__ import annotations

import json

from tf2aif.cli.main import main

from projects import write_project

MANIFEST = """\
version: 1
name: lstm
model: {path: models/m}
processing: {module: app/processing.py}
targets:
  platforms: [cpu]
  runtimes: [tflite, onnxruntime]
  precisions: [fp32, fp16]
"""

INCLUDE = """\
version: 1
name: lstm
model: {path: models/m}
processing: {module: app/processing.py}
targets:
  platforms: [cpu]
  runtimes: [onnxruntime]
  precisions: [fp32]
  include:
    - {platform: cpu, runtime: tflite, precision: fp32}
"""


def test_plan_json_skips_every_tflite_cell_with_reason_and_fix(lstm_model, tmp_path, capsys):
    file = write_project(tmp_path, MANIFEST, source=lstm_model)
    assert main(["plan", "--json", str(file)]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    skipped = {s["cell"]: s for s in data["skipped"]}
    for cell in ("cpu/tflite/fp32", "cpu/tflite/fp16"):
        assert skipped[cell]["by_model"]
        assert "TensorListReserve" in skipped[cell]["reason"]
        assert "options.tflite.select_tf_ops: true" in skipped[cell]["fix"]
    images = data["images"]
    assert images and not [i for i in images if "tflite" in i["target"]]
    assert not [v for i in images for v in i["variants"] if "/tflite/" in v]
    assert not [c for c in data["conversions"] if "tflite" in c["target"]]
    assert "model not inspected" not in err
    assert list((tmp_path / ".tf2aif" / "inspect").glob("*.json"))  # cached by digest
    assert main(["bake", "--print", str(file)]) == 0
    bake = json.loads(capsys.readouterr().out)
    assert bake["target"] and not [name for name in bake["target"] if "tflite" in name]


def test_validate_warns_and_plan_table_shows_the_fix(lstm_model, tmp_path, capsys):
    file = write_project(tmp_path, MANIFEST, source=lstm_model)
    assert main(["validate", str(file)]) == 0
    out, _ = capsys.readouterr()
    assert "warning" in out and "cpu/tflite/fp32" in out and "select_tf_ops" in out
    assert main(["plan", str(file)]) == 0
    out, _ = capsys.readouterr()
    assert "cpu/tflite/fp16" in out and "options.tflite.select_tf_op" in out  # folded by the table


def test_an_include_of_the_ruled_out_cell_is_a_located_error(lstm_model, tmp_path, capsys):
    file = write_project(tmp_path, INCLUDE, source=lstm_model)
    assert main(["plan", "--json", str(file)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{file}:10:" in err and "targets.include[0]" in err
    assert "cpu/tflite/fp32 cannot be built: the model has" in err
    assert "fix:" in err and "Traceback" not in err

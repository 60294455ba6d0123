"""`tf2aif place` end to end on the shipped example."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tf2aif.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "placement"


def place_examples(*options: str) -> int:
    """`tf2aif place` on the example cluster and apps files."""
    cluster, apps = str(EXAMPLES / "cluster.yaml"), str(EXAMPLES / "apps.yaml")
    return main(["place", "--cluster", cluster, "--apps", apps, *options])


def test_place_writes_assignment_and_manifests(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # at the 80-column default names fold onto more lines
    code = place_examples("--out", str(tmp_path))
    assert code == 0
    captured = capsys.readouterr()
    assert "mail-sorter" in captured.out and "wrote" in captured.err
    data = json.loads((tmp_path / "assignment.json").read_text())
    assert data["policy"] == "first-fit" and data["unplaced"] == []
    placed = {a["app"]: a for a in data["assignments"]}
    assert set(placed) == {
        "mail-sorter",
        "form-reader",
        "meter-reader",
        "shelf-camera",
        "door-camera",
    }
    assert placed["shelf-camera"]["variant"] == "gpu/tensorrt/fp16"
    assert all(a["predicted_mean_ms"] <= 200 for a in placed.values())
    files = sorted(p.name for p in (tmp_path / "k8s").iterdir())
    assert len(files) == len({a["instance"] for a in placed.values()})
    docs = list(yaml.safe_load_all((tmp_path / "k8s" / files[0]).read_text()))
    assert docs[0]["kind"] == "Deployment"


def test_knapsack_json_output(capsys):
    code = place_examples("--policy", "knapsack", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["policy"] == "knapsack"
    assert code in (0, 1)


def test_invalid_cluster_exits_1_with_a_located_error(tmp_path, capsys):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("version: 1\nnodes:\n  - {name: a, platform: cpu, memory_mb: 1, gpus: 2}\n")
    code = main(["place", "--cluster", str(bad), "--apps", str(EXAMPLES / "apps.yaml")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:" in err and "nodes[0].gpus: unknown key 'gpus'" in err

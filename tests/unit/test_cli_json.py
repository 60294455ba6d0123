"""Every `--json` path of every command prints JSON and nothing else on stdout -- also when some
apps cannot be placed, files are written or the manifest has warnings; messages go to stderr.
Tables stay readable at 80 columns."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from tf2aif.cli.main import build_parser, main

from projects import BASIC, write_project

ROOT = Path(__file__).resolve().parents[2]
PLACEMENT = ROOT / "examples" / "placement"


def json_commands() -> set[str]:
    """Every command with a --json flag that prints to stdout (bench's --json names a file)."""
    found = set()
    for action in build_parser()._subparsers._group_actions:
        for name, sub in action.choices.items():
            for option in sub._actions:
                if "--json" in option.option_strings and option.type is None:
                    found.add(name)
    return found


def run_json(argv, capsys) -> tuple[int, object, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def apps_with_an_unplaceable_app(tmp_path: Path) -> Path:
    data = yaml.safe_load((PLACEMENT / "apps.yaml").read_text())
    for model in data["models"].values():
        model["record"] = str(PLACEMENT / model["record"])
        model["profiles"] = str(PLACEMENT / model["profiles"])
    data["apps"].append({"name": "too-fast", "model": "digits", "rate": 5000, "slo_ms": 0.01})
    path = tmp_path / "apps.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def place_argv(apps: Path, *options: str) -> list[str]:
    return ["place", "--cluster", str(PLACEMENT / "cluster.yaml"), "--apps", str(apps), *options]


def test_the_json_paths_below_cover_every_command_with_json():
    assert json_commands() == {"plan", "place"}


def test_plan_json_is_only_json(tmp_path, capsys):
    # a plug-in next to the manifest makes a warning, which must not reach stdout
    manifest = write_project(tmp_path, BASIC.replace("app/processing.py", "processing.py"))
    (tmp_path / "processing.py").write_text((tmp_path / "app" / "processing.py").read_text())
    code, data, err = run_json(["plan", str(manifest), "--json"], capsys)
    assert code == 0 and data["name"] == "demo" and data["images"]
    assert "warning" in err


def test_place_json_is_only_json_when_everything_is_placed(tmp_path, capsys):
    code, data, err = run_json(place_argv(PLACEMENT / "apps.yaml", "--json"), capsys)
    assert code == 0 and data["unplaced"] == [] and len(data["assignments"]) == 5


def test_place_json_is_only_json_when_some_apps_cannot_be_placed(tmp_path, capsys):
    apps = apps_with_an_unplaceable_app(tmp_path)
    out = tmp_path / "out"
    code, data, err = run_json(place_argv(apps, "--json", "--out", str(out)), capsys)
    assert code == 1
    assert [u["app"] for u in data["unplaced"]] == ["too-fast"]
    assert "not placed" in err and "too-fast" in err and "wrote" in err
    assert json.loads((out / "assignment.json").read_text()) == data
    written = sorted(p.stem for p in (out / "k8s").iterdir())
    assert written == sorted({a["instance"] for a in data["assignments"]})


def test_place_json_prints_nothing_on_stdout_for_bad_input(tmp_path, capsys):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("version: 1\nnodes: []\n")
    assert (
        main(["place", "--cluster", str(bad), "--apps", str(PLACEMENT / "apps.yaml"), "--json"])
        == 1
    )
    captured = capsys.readouterr()
    assert captured.out == "" and f"{bad}" in captured.err


# -- tables at 80 columns -----------------------------------------------------------------------


def table_cells(text: str) -> tuple[list[str], list[str]]:
    """(headers, cells) of a rich table with vertical rules and one body row: each column's
    fragments joined, so a value folded onto several lines reads whole again."""
    lines = [line for line in text.splitlines() if "│" in line or "┃" in line]
    rule = next(i for i, line in enumerate(text.splitlines()) if "┼" in line or "╇" in line)
    header_count = sum(1 for line in text.splitlines()[:rule] if "│" in line or "┃" in line)

    def columns(rows: list[str]) -> list[str]:
        split = [re.split(r"[│┃]", row) for row in rows]
        width = max(len(parts) for parts in split)
        joined = []
        for k in range(width):
            pieces = [parts[k].strip() for parts in split if k < len(parts)]
            joined.append("".join(pieces))
        return [c for c in joined if c]  # the outer edges split off empty strings

    return columns(lines[:header_count]), columns(lines[header_count:])


def render(table, width: int = 80) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def readable(table, headers: list[str], row: list[str]) -> None:
    text = render(table)
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    found_headers, cells = table_cells(text)
    assert [h.replace(" ", "") for h in found_headers] == [h.replace(" ", "") for h in headers]
    assert [c.replace(" ", "") for c in cells] == [v.replace(" ", "") for v in row]


BENCH_ROWS = [
    ["cpu/tflite/fp32", "c=1", "10.0", "1.20", "1.50", "2.00", "3.00", "0", "0.50"],
    [
        "http://127.0.0.1:8000",
        "c=16 unstable",
        "12346",
        "1235",
        "1235",
        "12346",
        "123457",
        "timeout 3, http_503 5",
        "12.34",
    ],  # fmt: skip
    [
        "127.0.0.1:5000/tf2aif/digits:tflite-fp32-c0ffee",
        "120/s",
        "119.8",
        "8.00",
        "9.00",
        "11.00",
        "40.00",
        "0",
        "-",
    ],  # fmt: skip
]


@pytest.mark.parametrize("row", BENCH_ROWS)
def test_bench_table_is_readable_at_80_columns(row):
    from tf2aif.cli.live import results_table

    headers = ["variant", "load", "req/s", "p50", "p90", "p99", "max", "errors", "srv ms"]
    readable(results_table([tuple(row)]), headers, row)


def test_place_table_is_readable_at_80_columns(tmp_path):
    from tf2aif.cli.place import _table
    from tf2aif.place.inputs import load_apps, load_cluster
    from tf2aif.place.policy import place

    apps, models = load_apps(PLACEMENT / "apps.yaml")
    placement = place(apps, models, load_cluster(PLACEMENT / "cluster.yaml"))
    headers = ["app", "node", "variant", "req/s", "mean ms", "p99 ms", "cpu util", "acc util"]
    for a in placement.assignments:
        one = type(placement)(
            policy=placement.policy, mode=placement.mode, assignments=(a,), unplaced=(),
            instances={}, names={},
        )  # fmt: skip
        text = render(_table(one))
        assert "…" not in text
        found, cells = table_cells(text)
        assert [h.replace(" ", "") for h in found] == [h.replace(" ", "") for h in headers]
        assert cells[:3] == [a.app, a.node, a.variant]


def test_plan_table_is_readable_at_80_columns(tmp_path, monkeypatch):
    manifest = write_project(tmp_path, BASIC)
    monkeypatch.setenv("COLUMNS", "80")
    from rich.console import Console

    recorded = Console(width=80, record=True, color_system=None)
    monkeypatch.setattr("tf2aif.cli.pipeline._console", lambda stderr=False: recorded)
    assert main(["plan", str(manifest)]) == 0
    text = recorded.export_text()
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    for header in ("variant", "tag", "platforms", "conversion", "base image"):
        assert header in text


def test_argparse_subparsers_are_introspectable():
    # the enumeration above relies on argparse's registry of subcommands
    parser = build_parser()
    assert isinstance(parser._subparsers._group_actions[0], argparse._SubParsersAction)

"""One console set-up for the command line: results on stdout, messages on stderr, tables
readable at 80 columns when the output is not a terminal."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from rich.console import Console

from tf2aif.cli.console import NON_TTY_WIDTH, console, width_for

CLI = Path(__file__).resolve().parents[2] / "builder" / "tf2aif" / "cli"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_width_policy():
    assert width_for(io.StringIO(), {}) == NON_TTY_WIDTH == 80
    assert width_for(io.StringIO(), {"COLUMNS": "120"}) == 120
    for bad in ("0", "-5", "wide", ""):
        assert width_for(io.StringIO(), {"COLUMNS": bad}) == 80
    assert width_for(Terminal(), {"COLUMNS": "120"}) is None  # rich measures the terminal


def test_results_go_to_stdout_and_messages_to_stderr(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    console().print("result [b]text[/b]")
    console(stderr=True).print("message")
    console(stderr=True, quiet=True).print("silenced")
    out, err = capsys.readouterr()
    assert out == "result text\n" and err == "message\n"
    assert console().width == 80


def test_no_cli_module_makes_its_own_console():
    """Every cli module prints through tf2aif.cli.console: one width policy, one stream split."""
    for path in sorted(CLI.glob("*.py")):
        if path.name == "console.py":
            continue
        tree = ast.parse(path.read_text())
        made = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Console"
        ]
        assert not made, f"{path.name}:{made}: use tf2aif.cli.console"


# -- the convert fidelity table ----------------------------------------------------------------


def fidelity_report(variant: str, source: str, *, labelled: bool) -> dict:
    """A fidelity.json as the conversion writes it, from the fidelity module itself."""
    from tf2aif.image.convert.fidelity import checks_for, report
    from tf2aif.image.convert.samples import Samples
    from tf2aif.image.convert.spec import Thresholds

    metrics = {"samples": 200, "max_abs_diff": 1.2345e-05, "max_rel_diff": 0.0031416,
               "nonfinite": 0, "top1_agreement": 0.995}  # fmt: skip
    if labelled:
        metrics |= {"accuracy_reference": 0.9875, "accuracy": 0.98, "accuracy_drop": 0.0075}
    thresholds = Thresholds(atol=1e-3, rtol=0.05, min_top1_agreement=0.99, max_accuracy_drop=0.01)
    samples = Samples(inputs=({},) * 200, labels=(1,) * 200 if labelled else None, source=source)
    return report(variant=variant, checked_with="tf", note="", samples=samples,
                  metrics=metrics, checks=checks_for(metrics, thresholds))  # fmt: skip


def render(table, width: int) -> str:
    out = Console(width=width, record=True, color_system=None, file=io.StringIO())
    out.print(table)
    return out.export_text()


@pytest.mark.parametrize("width", [80, 48])
@pytest.mark.parametrize("labelled", [True, False])
def test_convert_fidelity_table_is_readable_in_a_narrow_terminal(width, labelled):
    from tf2aif.cli.convert import fidelity_table

    data = fidelity_report("alveo/vitis-ai/int8", "app/calibration.py:samples", labelled=labelled)
    text = render(fidelity_table(data), width)
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())
    rows: list[list[str]] = []  # a folded name continues on lines whose other cells are empty
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 4 or cells[0] == "metric":
            continue
        if any(cells[1:]) or not rows:
            rows.append(cells)
        else:
            rows[-1][0] += cells[0]
    shown = {row[0]: row[1] for row in rows}
    expected = {m: f"{v:.4g}" for m, v in data["metrics"].items() if m != "samples"}
    assert shown == expected, text
    for header in ("metric", "measured", "threshold", "result"):
        assert header in text
    assert text.count("ok") == sum(1 for c in data["checks"] if c["passed"])

"""The fidelity gate: the converted artifact against native TensorFlow on the same inputs.

Metrics (over every sample, batch of one at a time):
  max_abs_diff     largest |converted - reference| over all finite output elements
  max_rel_diff     per output, max_abs_diff divided by the largest |reference| value, then the max
                   (relative to the output's range, so near-zero softmax entries do not explode it)
  nonfinite        samples whose converted outputs hold NaN or Inf (always gated at 0)
  outputs          per output name, its own max_abs_diff and max_rel_diff (models with several
                   outputs, or a gate with per-output limits); with per-output limits
                   (`fidelity.outputs`), every output is gated on its own figures as
                   `max_abs_diff[name]` / `max_rel_diff[name]`, with its own limit or the gate's
  top1_agreement   share of samples with the same argmax, on the class output: the one the
                   manifest names, else the classification-shaped output (shape [1, K], K > 1)
                   whose name says so (probabilities, logits, scores, class...), else the one
                   whose rows look like probabilities, else the first; `top1_output` records it
  accuracy_reference / accuracy / accuracy_drop   when samples carry labels; drop = ref - converted
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tf2aif.errors import ConversionError
from tf2aif.image.convert.runners import Runner
from tf2aif.image.convert.samples import Samples
from tf2aif.image.convert.spec import Thresholds

__all__ = [
    "Check",
    "checks_for",
    "checks_of",
    "class_output_of",
    "format_report",
    "format_table",
    "measure",
    "report",
]


@dataclass(frozen=True, kw_only=True)
class Check:
    metric: str
    measured: float | None  # None: the metric could not be measured on these samples
    op: str  # "<=" or ">="
    threshold: float

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        if self.op == "<=":
            return self.measured <= self.threshold
        return self.measured >= self.threshold


def measure(
    reference: Runner,
    candidate: Runner,
    samples: Samples,
    *,
    class_output: str | None = None,
    per_output: bool = False,
) -> dict[str, Any]:
    # one runtime after the other: interleaving lets one's idle worker threads starve the other
    references = [reference(inputs) for inputs in samples.inputs]
    pairs = list(zip(references, (candidate(inputs) for inputs in samples.inputs), strict=True))
    names = sorted(pairs[0][0])
    metrics: dict[str, Any] = {"samples": len(samples)}
    metrics |= _differences(pairs, names, per_output=per_output or len(names) > 1)
    top1 = class_output_of([ref for ref, _ in pairs], names, class_output)
    if top1 is not None:
        ref_top = np.array([int(np.argmax(ref[top1])) for ref, _ in pairs])
        got_top = np.array([int(np.argmax(got[top1])) for _, got in pairs])
        metrics["top1_output"] = top1
        metrics["top1_agreement"] = float(np.mean(ref_top == got_top))
        if samples.labels is not None:
            labels = np.array(samples.labels)
            metrics["accuracy_reference"] = float(np.mean(ref_top == labels))
            metrics["accuracy"] = float(np.mean(got_top == labels))
            metrics["accuracy_drop"] = metrics["accuracy_reference"] - metrics["accuracy"]
    return metrics


def checks_for(metrics: Mapping[str, Any], thresholds: Thresholds) -> tuple[Check, ...]:
    wanted: list[tuple[str, float | None, str, float | None]] = [
        ("nonfinite", metrics.get("nonfinite"), "<=", 0.0)
    ]
    if thresholds.outputs:
        wanted += _per_output(metrics, thresholds)
    else:
        wanted += [
            ("max_abs_diff", metrics.get("max_abs_diff"), "<=", thresholds.atol),
            ("max_rel_diff", metrics.get("max_rel_diff"), "<=", thresholds.rtol),
        ]
    wanted += [
        ("top1_agreement", metrics.get("top1_agreement"), ">=", thresholds.min_top1_agreement),
        ("accuracy_drop", metrics.get("accuracy_drop"), "<=", thresholds.max_accuracy_drop),
    ]
    return tuple(
        Check(metric=name, measured=measured, op=op, threshold=float(limit))
        for name, measured, op, limit in wanted
        if limit is not None
    )


def _per_output(
    metrics: Mapping[str, Any], thresholds: Thresholds
) -> list[tuple[str, float | None, str, float | None]]:
    """Every output's own difference checks, each with its own limit or the gate-wide one."""
    measured = metrics.get("outputs", {})
    unknown = [o.name for o in thresholds.outputs if o.name not in measured]
    if unknown:
        raise ConversionError(
            f"fidelity.outputs names {unknown[0]!r}, which is not an output of the model; "
            f"its outputs are: {', '.join(sorted(measured))}"
        )
    wanted = []
    for name in sorted(measured):
        atol, rtol = thresholds.limits_for(name)
        wanted += [
            (f"max_abs_diff[{name}]", measured[name]["max_abs_diff"], "<=", atol),
            (f"max_rel_diff[{name}]", measured[name]["max_rel_diff"], "<=", rtol),
        ]
    return wanted


def report(
    *,
    variant: str,
    checked_with: str,
    note: str,
    samples: Samples,
    metrics: Mapping[str, Any],
    checks: Sequence[Check],
) -> dict[str, Any]:
    """The fidelity.json document."""
    return {
        "variant": variant,
        "checked": True,
        "checked_with": checked_with,
        "note": note,
        "samples": {
            "count": len(samples),
            "source": samples.source,
            "labelled": samples.labels is not None,
        },
        "metrics": dict(metrics),
        "checks": [asdict(check) | {"passed": check.passed} for check in checks],
        "passed": all(check.passed is not False for check in checks),
    }


def format_table(rows: Sequence[tuple[str, Check]]) -> str:
    """A plain-text table: variant, metric, measured, threshold, result."""
    header = ("variant", "metric", "measured", "threshold", "result")
    lines = [header] + [
        (
            variant,
            check.metric,
            "n/a" if check.measured is None else f"{check.measured:.4g}",
            f"{check.op} {check.threshold:g}",
            {True: "ok", False: "FAIL", None: "not measured"}[check.passed],
        )
        for variant, check in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _differences(
    pairs: Sequence[tuple[dict, dict]], names: Sequence[str], *, per_output: bool
) -> dict[str, Any]:
    max_abs, max_rel, nonfinite = 0.0, 0.0, 0
    outputs: dict[str, dict[str, float]] = {}
    for name in names:
        ref = np.stack([np.asarray(r[name], dtype=np.float64) for r, _ in pairs])
        got = np.stack([np.asarray(g[name], dtype=np.float64) for _, g in pairs])
        if ref.shape != got.shape:
            raise ValueError(
                f"output {name!r}: converted shape {got.shape} != reference {ref.shape}"
            )
        finite = np.isfinite(got)
        bad = ~finite.reshape(len(pairs), -1).all(axis=1)
        nonfinite = max(nonfinite, int(bad.sum()))
        diff = np.abs(np.where(finite, got, ref) - ref)
        output_abs = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        output_rel = output_abs / scale if scale > 0 else 0.0
        max_abs, max_rel = max(max_abs, output_abs), max(max_rel, output_rel)
        outputs[name] = {"max_abs_diff": output_abs, "max_rel_diff": output_rel}
    found = {"max_abs_diff": max_abs, "max_rel_diff": max_rel, "nonfinite": nonfinite}
    return found | ({"outputs": outputs} if per_output else {})


CLASS_NAME_HINTS = ("prob", "logit", "class", "score", "softmax", "label", "pred")


def class_output_of(
    references: Sequence[Mapping[str, np.ndarray]], names: Sequence[str], named: str | None = None
) -> str | None:
    """The output top-1 is judged on (see the module docstring); None when none fits."""
    if named is not None:
        if named not in names:
            raise ConversionError(
                f"class output {named!r} is not an output of the model; "
                f"its outputs are: {', '.join(names)}"
            )
        return named
    candidates = [
        name
        for name in names
        if len(np.shape(references[0][name])) == 2
        and np.shape(references[0][name])[0] == 1
        and np.shape(references[0][name])[1] > 1
    ]
    for name in candidates:
        if any(hint in name.lower() for hint in CLASS_NAME_HINTS):
            return name
    for name in candidates:
        rows = np.concatenate([np.asarray(ref[name], dtype=np.float64) for ref in references])
        if np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
            return name
    return candidates[0] if candidates else None


METRIC_ORDER = (
    "max_abs_diff",
    "max_rel_diff",
    "nonfinite",
    "top1_agreement",
    "accuracy_reference",
    "accuracy",
    "accuracy_drop",
)


def format_report(report: Mapping[str, Any]) -> str:
    """fidelity.json as plain text for a build log: what was compared, metrics, checks."""
    variant = report["variant"]
    if not report.get("checked"):
        return f"{variant}: fidelity {report.get('note') or 'not checked'}"
    samples = report["samples"]
    labelled = ", labelled" if samples["labelled"] else ""
    lines = [
        f"{variant}: fidelity on {samples['count']} samples from {samples['source']}{labelled}, "
        f"run with {report['checked_with']}" + (f" ({report['note']})" if report["note"] else "")
    ]
    metrics = report["metrics"]
    lines.append(
        "  ".join(f"{name}={metrics[name]:.4g}" for name in METRIC_ORDER if name in metrics)
    )
    checks = [(variant, check) for check in checks_of(report)]
    lines.append(format_table(checks) if checks else "no thresholds set")
    if "fallback" in report:
        lines += [
            f"candidate {t['candidate']}: " + ("passed" if t["passed"] else t["figure"])
            for t in report["fallback"]["tried"]
        ]
        if report["passed"]:
            lines.append(f"published: {report['fallback']['summary']}")
    lines.append("fidelity: " + ("passed" if report["passed"] else "FAILED"))
    return "\n".join(lines)


def checks_of(report: Mapping[str, Any]) -> tuple[Check, ...]:
    return tuple(Check(**_check_args(c)) for c in report.get("checks", ()))


def _check_args(check: Mapping[str, Any]) -> dict[str, Any]:
    return {key: check[key] for key in ("metric", "measured", "op", "threshold")}

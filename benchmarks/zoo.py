"""Run the cpu conversion matrix on the model zoo and write the conformance table docs/models.md.

    nox -s zoo    (= python benchmarks/zoo.py [--models a,b] [--variants tflite-int8,...]
                                              [--work DIR] [--out docs/models.md] [--served-only]
                                              [--option RUNTIME.KEY=JSON] [--python PY])

Builds the zoo (examples/zoo) under --work, then for every model and every cpu variant
(tf fp32; tflite, openvino, onnxruntime x fp32, fp16, int8) runs tf2aif's own conversion and
fidelity pipeline in-process (`run_conversion`, the code behind `tf2aif convert`), one child
process per model so a converter crash or leak stays in that model's row. Results are kept per
model in --work/results/<model>.json, so a rerun of some models or variants updates only those
cells; the table is rendered from every result file there.

Per cell: converted or not (the one-line reason), conversion seconds, artifact size, max abs diff
and top-1 agreement vs native TF, the int8 accuracy drop on the trained models, and two latency
ratios against native TF on the same batch-1 input:
- served: the artifact served by tf2aif's own server (`python -m tf2aif serve`, the image's code
  and defaults, one process on 127.0.0.1, HTTP only), timed over sequential OIP v2 JSON infer
  requests from httpx, divided by the same figure for the model's `tf` artifact served the same way;
- in-process: the runtime's own API with 2 threads, divided by the native TF signature's p50.
`--served-only` measures the served figures of cells converted by an earlier run.

`--option tflite.select_tf_ops=true` runs those cells with a recipe option set: their results are
kept beside the default cells under `<variant>+<option>` (e.g. `tflite-fp32+select_tf_ops`), so
the table shows both the default row (say, the predicted skip) and the option row (the fix,
measured). `--python` runs the per-model processes with another interpreter, e.g. a venv with the
TensorFlow that option needs (Select TF ops run only where the Flex delegate is: TF 2.18.1).
`nox -s zoo` runs both: every default cell, then the recurrent models' select_tf_ops rows
with its own venv's TensorFlow 2.18.1 as `--python`.

One module, over 400 lines on purpose: one experiment (convert the zoo, measure, render
the table), read top to bottom; the variants come from the recipes (cpu_variants.py) and the
conversion from tf2aif itself.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "builder"))
sys.path.insert(0, str(REPO / "examples" / "zoo"))
sys.path.insert(0, str(REPO / "benchmarks"))

import cpu_variants  # noqa: E402

VARIANTS = cpu_variants.variants()  # (runtime, backend, precision)
LATENCY_RUNS, LATENCY_WARMUP = 50, 5
SERVED_RUNS, SERVED_WARMUP = 30, 5  # sequential requests per served cell, after the warm-ups
SERVED_READY_TIMEOUT_S = 300  # a TensorFlow server on a busy 2-core machine takes a while


def gate(precision: str, trained: bool):
    """The fidelity gate of the table: tight for fp32, loose for fp16; int8 on accuracy only."""
    from tf2aif.image.convert import Thresholds

    if precision == "fp32":
        return Thresholds(rtol=1e-3)
    if precision == "fp16":
        return Thresholds(rtol=0.05)
    return Thresholds(max_accuracy_drop=0.01) if trained else Thresholds()


def variant_name(runtime: str, precision: str) -> str:
    return f"{runtime}-{precision}"


def option_label(values: dict[str, Any]) -> str:
    """How a cell run with options is keyed: `+name` for a true flag, `+name=value` otherwise."""
    parts = [k if v is True else f"{k}={json.dumps(v)}" for k, v in sorted(values.items())]
    return "".join(f"+{p}" for p in parts)


def cell_keys(cells: dict[str, Any], variant: str) -> list[str]:
    """The result keys of one variant: the default cell first, then its option runs."""
    extra = sorted(k for k in cells if k.startswith(variant + "+"))
    return ([variant] if variant in cells else []) + extra


# ---- one model, in a child process ------------------------------------------------------------


def run_model(
    name: str, work: Path, variants: list[str], options: dict[str, dict], *, keep_done: bool
) -> None:
    """Convert one zoo model with each variant; merge the cells into results/<name>.json."""
    from zoo_models import by_name

    from tf2aif.image.convert import ConvertSpec, PluginRef

    model = by_name(name)
    results_file = work / "results" / f"{name}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    base = ConvertSpec(
        name=name,
        runtime="",
        precision="",
        backend="",
        model=model.path,
        calibration=PluginRef(module="samples.py", function=f"calibration_{name}"),
        fidelity_samples=PluginRef(module="samples.py", function=f"check_{name}"),
    )
    reference = None
    for runtime, backend, precision in VARIANTS:
        variant = variant_name(runtime, precision)
        key = variant + option_label(options.get(runtime, {}))
        if (variants and variant not in variants) or (keep_done and key in results):
            continue
        spec = replace(
            base,
            runtime=runtime,
            backend=backend,
            precision=precision,
            thresholds=gate(precision, model.trained),
            options=cpu_variants.recipe_options(runtime) | options.get(runtime, {}),
        )
        out = work / "artifacts" / name / key
        shutil.rmtree(out, ignore_errors=True)  # what an interrupted earlier run left there
        cell = convert_cell(spec, work, out)
        if cell.get("artifact") and reference is None:
            reference = native_p50(work / model.path, work, name)
        if cell.get("artifact") and reference:
            cell["p50_ms"] = latency_p50(Path(cell["artifact"]), work, name)
            cell["p50_native_ms"] = reference
        if options.get(runtime):
            cell["with_options"] = options[runtime]
        results[key] = cell
        _measure_served(name, work, results, key)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"{name} {key}: {cell['status']} {cell.get('reason', '')}", flush=True)


def measure_served(name: str, work: Path, variants: list[str]) -> None:
    """Served p50 of every converted cell of one model already in results/<name>.json."""
    results_file = work / "results" / f"{name}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    reference = variant_name("tf", "fp32")  # measured first: every other cell's denominator
    for variant in sorted(results, key=lambda key: (key != reference, key)):
        if variants and variant.split("+")[0] not in variants:
            continue
        results[variant].pop("served_p50_ms", None)  # a figure from another run is not kept
        _measure_served(name, work, results, variant)
        results_file.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        cell = results[variant]
        figure = f"{cell.get('served_p50_ms')} ms" if cell.get("artifact") else "no artifact"
        print(f"{name} {variant}: served p50 {figure}", flush=True)


def _measure_served(name: str, work: Path, results: dict[str, dict], variant: str) -> None:
    """Add the served p50 of `variant`, and that of the model's tf artifact (the reference)."""
    cell = results[variant]
    if not cell.get("artifact") or not Path(cell["artifact"]).is_dir():
        return
    reference_variant = variant_name("tf", "fp32")
    reference = results.get(reference_variant, {})
    if reference.get("artifact") and reference.get("served_p50_ms") is None:
        reference["served_p50_ms"] = served_p50(Path(reference["artifact"]), work, name)
    if variant != reference_variant:
        cell["served_p50_ms"] = served_p50(Path(cell["artifact"]), work, name)
    cell["served_p50_native_ms"] = reference.get("served_p50_ms")


def convert_cell(spec: Any, work: Path, out: Path) -> dict[str, Any]:
    from tf2aif.errors import FidelityError, Tf2aifError
    from tf2aif.image.artifact import ARTIFACT_FILE
    from tf2aif.image.convert import run_conversion

    started = time.perf_counter()
    try:
        info = run_conversion(spec, root=work, out=out)
        fidelity, status, reason = info.fidelity, "ok", ""
    except FidelityError as exc:
        fidelity = json.loads((out / "fidelity.json").read_text())
        status, reason = "gate", _first_line(str(exc))
    except Tf2aifError as exc:
        return {"status": "failed", "reason": _first_line(str(exc)), "seconds": _since(started)}
    except Exception as exc:  # a converter bug that escaped the pipeline: the table says so
        reason = f"uncaught {type(exc).__name__}: {_first_line(str(exc))}"
        return {"status": "failed", "reason": reason, "seconds": _since(started)}
    artifact = json.loads((out / ARTIFACT_FILE).read_text())
    metrics = fidelity.get("metrics", {})
    failed = [c["metric"] for c in fidelity.get("checks", []) if c.get("passed") is False]
    return {
        "status": status,
        "reason": reason if not failed else "gate: " + ", ".join(failed),
        "seconds": artifact.get("options", {}).get("conversion_seconds"),
        "size_bytes": _size(out / "model"),
        "max_abs_diff": metrics.get("max_abs_diff"),
        "max_rel_diff": metrics.get("max_rel_diff"),
        "top1_agreement": metrics.get("top1_agreement"),
        "top1_output": metrics.get("top1_output"),
        "accuracy_reference": metrics.get("accuracy_reference"),
        "accuracy": metrics.get("accuracy"),
        "accuracy_drop": metrics.get("accuracy_drop"),
        "artifact": str(out),
        "options": {k: v for k, v in artifact.get("options", {}).items() if _scalar(v)},
        # what a fallback candidate kept float, or every candidate tried when none passed
        "fallback": fidelity.get("fallback", {}).get("summary"),
        "fallback_failure": fidelity.get("fallback", {}).get("failure"),
    }


def native_p50(model_path: Path, work: Path, name: str) -> float | None:
    import tensorflow as tf

    from tf2aif.image.convert.runners import signature_runner
    from tf2aif.image.convert.source import load_source

    scratch = work / "scratch" / name
    scratch.mkdir(parents=True, exist_ok=True)
    source = load_source(model_path, signature="serving_default", workdir=scratch)
    del tf
    return _p50(signature_runner(source.function), _first_sample(work, name))


def latency_p50(artifact: Path, work: Path, name: str) -> float | None:
    from tf2aif.image.artifact import read_artifact
    from tf2aif.image.convert.runners import runner_for

    info = read_artifact(artifact)
    runtime = info.runtime if info.runtime != "onnxruntime" else "onnxruntime"
    try:
        run = runner_for(runtime, artifact, info)
        return _p50(run, _first_sample(work, name))
    except Exception as exc:  # a runtime that converts but cannot run the input: no figure
        print(f"{name} {artifact.name}: latency not measured: {exc}", flush=True)
        return None


def served_p50(artifact: Path, work: Path, name: str) -> float | None:
    """Median ms of sequential OIP v2 JSON infer requests to `tf2aif serve ARTIFACT`."""
    import statistics

    import httpx

    from tf2aif.bench.targets import artifact_endpoint

    try:
        sample = _first_sample(work, name)
        with artifact_endpoint(
            artifact, variant=None, ready_timeout_s=SERVED_READY_TIMEOUT_S
        ) as endpoint:
            url = f"{endpoint.base_url}/v2/models/{endpoint.model}/infer"
            body = _infer_json(sample)
            headers = {"Content-Type": "application/json"}
            times = []
            with httpx.Client(timeout=60) as client:
                for index in range(SERVED_WARMUP + SERVED_RUNS):
                    started = time.perf_counter()
                    response = client.post(url, content=body, headers=headers)
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                    if index >= SERVED_WARMUP:
                        times.append(elapsed)
        return round(statistics.median(times) * 1000, 4)
    except Exception as exc:  # a server that cannot load or answer: no figure, said in the log
        print(f"{name} {artifact.name}: served p50 not measured: {_first_line(str(exc))}")
        return None


def _infer_json(sample: dict) -> bytes:
    """The OIP v2 JSON body of one sample (BYTES for string tensors, numbers otherwise)."""
    import numpy as np

    from tf2aif.bench.payloads import encode_infer

    inputs = []
    for input_name, value in sample.items():
        array = np.asarray(value)
        if array.dtype.kind in "OSU":
            data = [x.decode() if isinstance(x, bytes) else str(x) for x in array.reshape(-1)]
            inputs.append(
                {"name": input_name, "shape": list(array.shape), "datatype": "BYTES", "data": data}
            )
        else:
            body = encode_infer("model", {input_name: array}, binary=False).body
            inputs += json.loads(body)["inputs"]
    return json.dumps({"inputs": inputs}).encode()


@functools.cache
def _first_sample(work: Path, name: str) -> dict:
    from zoo_models import by_name

    from tf2aif.image.convert.samples import load_samples
    from tf2aif.image.convert.source import load_source
    from tf2aif.image.convert.spec import PluginRef

    scratch = work / "scratch" / f"{name}-sample"
    scratch.mkdir(parents=True, exist_ok=True)
    source = load_source(work / by_name(name).path, signature="serving_default", workdir=scratch)
    samples = load_samples(
        PluginRef(module="samples.py", function=f"check_{name}", count=1),
        root=work,
        inputs=source.inputs,
        allow_labels=True,
    )
    return samples.inputs[0]


def _p50(run: Any, sample: dict) -> float:
    import statistics

    for _ in range(LATENCY_WARMUP):
        run(sample)
    times = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        run(sample)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 4)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 2)


def _first_line(text: str) -> str:
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    return line[:300]


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


# ---- the table --------------------------------------------------------------------------------


def render(work: Path) -> str:
    from zoo_models import MODELS

    results = {}
    for model in MODELS:
        path = work / "results" / f"{model.name}.json"
        if path.exists():
            results[model.name] = json.loads(path.read_text())
    trained = [model.name for model in MODELS if model.trained]
    lines = [
        "# Model conformance zoo",
        "",
        "Generated by `nox -s zoo` (= `python benchmarks/zoo.py`; examples/zoo builds the "
        "models; every cell is tf2aif's own conversion + fidelity pipeline, run in-process, then "
        "served by tf2aif's own server).",
        f"Do not edit by hand. Rendered {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Gate used here: fp32 `max_rel_diff <= 1e-3`, fp16 `max_rel_diff <= 0.05`, int8 "
        f"`accuracy_drop <= 0.01` on the trained models ({', '.join(trained)}; the others: "
        "int8 reported, "
        "not gated; top-1 agreement of random-weight networks says little).",
        "Served p50: the artifact served by tf2aif's own server (`python -m tf2aif serve`, the "
        "image's code and default options: one process, runtime threads left to the runtime, "
        "127.0.0.1, HTTP); one sample at batch 1 sent as an OIP v2 JSON infer request by an "
        f"httpx client, {SERVED_RUNS} sequential requests after {SERVED_WARMUP} warm-ups, median "
        "round trip (JSON encoding, parsing and the network stack included); vs TF = that / the "
        "same figure for the model's `tf` artifact (native TF SavedModel) served the same way.",
        "In-process p50: the runtime's own API with 2 threads, median of "
        f"{LATENCY_RUNS} runs after {LATENCY_WARMUP} warm-ups; vs TF = that / the native TF "
        "SavedModel signature called in-process. The machine is shared (2 vCPU), so ratios are "
        "noisy (±40%).",
        "Option rows (`<variant>+<option>`) run where the option needs (`--python`: the "
        "select_tf_ops rows in a TensorFlow 2.18.1 venv, served by `tf.lite.Interpreter` with the "
        "Flex delegate, as the serve-tflite-flex image does), in their own run; their vs TF "
        "ratios divide by the model's native-TF figures of the default rows.",
        "",
        _summary(results),
        "",
        "| model | variant | result | s | size | max abs diff | top-1 | acc drop "
        "| served p50 ms | served vs TF | in-process p50 ms | in-process vs TF |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        cells = results.get(model.name, {})
        for runtime, _, precision in VARIANTS:
            for key in cell_keys(cells, variant_name(runtime, precision)):
                lines.append(_row(model.name, key, cells[key]))
    missing = [m.name for m in MODELS if m.name not in results]
    if missing:
        lines += ["", f"Not measured in this run: {', '.join(missing)}."]
    lines += _unconverted(work, results)
    lines += ["", "## Models", "", "| model | what it stands for | saved as |", "|---|---|---|"]
    lines += [f"| {m.name} | {m.family} | {m.save_as} |" for m in MODELS]
    return "\n".join(lines) + "\n"


def _unconverted(work: Path, results: dict[str, dict]) -> list[str]:
    """Each cell that failed, whether `tf2aif plan` predicts it from the model, and the fix."""
    from zoo_models import by_name

    from tf2aif.image.convert.source import source_digest
    from tf2aif.pipeline.model_inspect import inspect_model, predict

    lines = [
        "",
        "## Cells that did not pass, and what plan/validate say before any build",
        "",
        "| model | variant | predicted by plan | reason / fix |",
        "|---|---|---|---|",
    ]
    for name, cells in results.items():
        if all(cell["status"] == "ok" for cell in cells.values()):
            continue  # nothing to predict: the model need not be built to render its rows
        model = work / by_name(name).path
        facts = inspect_model(model, digest=source_digest(model), cache_root=work)
        keras_source = model.is_file()
        for runtime, _, precision in VARIANTS:
            for key in cell_keys(cells, variant_name(runtime, precision)):
                cell = cells[key]
                if cell["status"] == "ok":
                    continue
                options = {runtime: cell.get("with_options", {})}
                found = predict(facts, [runtime], options=options, keras_source=keras_source)
                hit = found[0] if found else None
                text = f"{hit.reason}; fix: {hit.fix}" if hit else cell.get("reason", "")
                lines.append(
                    f"| {name} | {key} | {'yes' if hit else 'no'} | {text.replace('|', '/')} |"
                )
    return lines


def _summary(results: dict[str, dict]) -> str:
    """Default cells as the recipes build them; a cell that an option row fixes counts as fixed."""
    cells = {(m, k): c for m, model in results.items() for k, c in model.items() if "+" not in k}
    ok = sum(cell["status"] == "ok" for cell in cells.values())
    gate = sum(cell["status"] == "gate" for cell in cells.values())
    failed = sum(cell["status"] == "failed" for cell in cells.values())
    fixed = {
        (m, k.split("+")[0])
        for m, model in results.items()
        for k, c in model.items()
        if "+" in k and c["status"] == "ok" and cells.get((m, k.split("+")[0]), c)["status"] != "ok"
    }
    with_options = (
        f" With a recipe option set (rows `<variant>+<option>`), {len(fixed)} more cells pass, "
        f"so {ok + len(fixed)} of {len(cells)} cells have a passing build."
        if fixed
        else ""
    )
    return (
        f"**{ok} of {len(cells)} cells converted and passed the gate** with default options; "
        f"{gate} converted but failed the gate; {failed} did not convert ({len(results)} "
        f"models).{with_options}"
    )


def _row(model: str, variant: str, cell: dict[str, Any]) -> str:
    def num(key: str, fmt: str) -> str:
        value = cell.get(key)
        return "" if value is None else format(value, fmt)

    result = {"ok": "ok", "gate": "gate failed", "failed": "**not converted**"}[cell["status"]]
    if cell.get("reason"):
        result += ": " + cell["reason"].replace("|", "\\|")
    if cell.get("fallback_failure"):
        result += "; " + cell["fallback_failure"].replace("|", "\\|")
    elif cell.get("fallback") and not cell["fallback"].endswith("all layers"):
        result += f" ({cell['fallback']})"
    compute = cell.get("options", {}).get("compute_precision")
    if compute and compute != "f32":
        result += f" (computed in {compute})"
    elif variant == "openvino-fp16" and cell.get("options", {}).get("inference_precision_hint") == (
        "f16"
    ):
        result += " (earlier f16 hint, which this CPU's plugin runs as bf16)"
    size = f"{cell['size_bytes'] / 1024:.0f} KiB" if cell.get("size_bytes") is not None else ""
    ratio = _ratio(cell, "p50_ms", "p50_native_ms")
    served_ratio = _ratio(cell, "served_p50_ms", "served_p50_native_ms")
    top1 = num("top1_agreement", ".3f")
    if top1 and cell.get("top1_output"):
        top1 += f" ({cell['top1_output']})"
    return (
        f"| {model} | {variant} | {result} | {num('seconds', '.1f')} | {size} | "
        f"{num('max_abs_diff', '.2g')} | {top1} | {num('accuracy_drop', '+.3f')} | "
        f"{num('served_p50_ms', '.3g')} | {served_ratio} | {num('p50_ms', '.3g')} | {ratio} |"
    )


def _ratio(cell: dict[str, Any], key: str, reference_key: str) -> str:
    if cell.get(key) and cell.get(reference_key):
        return f"{cell[key] / cell[reference_key]:.2f}"
    return ""


# ---- driver -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated zoo models (default: all)")
    parser.add_argument("--variants", help="comma-separated variants, e.g. tflite-int8")
    parser.add_argument("--option", action="append", default=[], metavar="RUNTIME.KEY=JSON")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter of the per-model processes (e.g. a venv with TensorFlow 2.18.1 for "
        "tflite.select_tf_ops, whose Flex delegate newer TensorFlow lacks)",
    )
    parser.add_argument("--work", type=Path, default=REPO / ".zoo")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "models.md")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument(
        "--keep-done", action="store_true", help="skip cells that already have a result"
    )
    parser.add_argument(
        "--served-only",
        action="store_true",
        help="measure only the served p50 of cells an earlier run converted (no conversion)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: one model
    args = parser.parse_args(argv)
    variants = args.variants.split(",") if args.variants else []
    options = _parse_options(args.option)
    if args.one and args.served_only:
        measure_served(args.one, args.work, variants)
        return 0
    if args.one:
        run_model(args.one, args.work, variants, options, keep_done=args.keep_done)
        return 0
    if not args.render_only:
        from build import build_zoo
        from zoo_models import MODELS

        names = args.models.split(",") if args.models else [m.name for m in by_cost(MODELS)]
        if not args.served_only:
            build_zoo(args.work, names)
        for name in names:
            _run_child(name, args)
    args.out.write_text(render(args.work))
    print(f"wrote {args.out}")
    return 0


def _run_child(name: str, args: argparse.Namespace) -> None:
    """One model per process, its converter noise in work/logs/<model>.log."""
    log = args.work / "logs" / f"{name}{'-served' if args.served_only else ''}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [args.python, __file__, "--work", str(args.work), "--one", name]
    if args.variants:
        command += ["--variants", args.variants]
    if args.keep_done:
        command.append("--keep-done")
    if args.served_only:
        command.append("--served-only")
    for option in args.option:
        command += ["--option", option]
    started = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT)
    summary = [ln for ln in log.read_text().splitlines() if ln.startswith(f"{name} ")]
    print("\n".join(summary) or f"{name}: no result", flush=True)
    print(f"{name}: {time.perf_counter() - started:.0f} s, exit {code}", flush=True)


def by_cost(models) -> list:
    """Cheap models first, so a partial run still covers every kind of model."""
    heavy = ("mobilenet", "efficientnet", "densenet", "nasnet", "resnet", "inception", "convnext")
    return sorted(models, key=lambda m: next((i for i, h in enumerate(heavy) if h in m.name), -1))


def _parse_options(items: list[str]) -> dict[str, dict]:
    options: dict[str, dict] = {}
    for item in items:
        key, _, value = item.partition("=")
        runtime, _, name = key.partition(".")
        options.setdefault(runtime, {})[name] = json.loads(value)
    return options


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

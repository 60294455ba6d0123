"""One conversion: source model -> backend -> artifact directory -> fidelity gate.

The same function runs in the conversion build stage (`python -m tf2aif.image.convert`) and locally
(`tf2aif convert`).
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from tf2aif.errors import ConversionError, FidelityError, PluginError, Tf2aifError
from tf2aif.image.artifact import ARTIFACT_FILE, ArtifactInfo, write_artifact
from tf2aif.image.convert import fallback, fidelity, registry
from tf2aif.image.convert.converter_log import LOG_FILE, captured
from tf2aif.image.convert.failure import failure_line
from tf2aif.image.convert.job import ConvertJob, ConvertResult
from tf2aif.image.convert.runners import runner_for, signature_runner
from tf2aif.image.convert.samples import Samples, load_samples, synthetic_samples
from tf2aif.image.convert.source import SourceModel, load_source
from tf2aif.image.convert.spec import ConvertSpec

__all__ = ["FIDELITY_FILE", "run_conversion", "tool_versions", "variant_of"]

log = logging.getLogger(__name__)

FIDELITY_FILE = "fidelity.json"
ALWAYS_RECORDED = ("tensorflow", "numpy")


def variant_of(spec: ConvertSpec) -> str:
    return f"{spec.runtime}-{spec.precision}"


def run_conversion(spec: ConvertSpec, *, root: Path, out: Path) -> ArtifactInfo:
    """Convert `root/spec.model` with `spec.backend` into the artifact directory `out`.

    Writes the artifact even when the fidelity gate fails (to inspect it), then raises
    FidelityError; raises ConversionError/PluginError when conversion itself fails.
    """
    root, out = Path(root), Path(out)
    backend = registry.lookup(spec.backend)
    _prepare_out(out)
    try:
        info = _convert(spec, backend, root=root, out=out)
    except BaseException as exc:
        # everything in `out` is ours: it was empty or an earlier artifact; a converter's
        # failure keeps its log, which the error message points to
        _clear(out, keep=LOG_FILE if type(exc) is ConversionError else None)
        raise
    (out / FIDELITY_FILE).write_text(json.dumps(info.fidelity, indent=2, sort_keys=True) + "\n")
    write_artifact(out, info)
    if not info.fidelity["passed"]:
        rows = [(variant_of(spec), check) for check in fidelity.checks_of(info.fidelity)]
        samples = info.fidelity["samples"]
        tried = info.fidelity.get("fallback", {}).get("failure")
        raise FidelityError(
            (f"{tried}\n" if tried else "")
            + f"fidelity gate failed ({samples['count']} samples from {samples['source']}):\n"
            f"{fidelity.format_table(rows)}",
            variant=variant_of(spec),
        )
    return info


def _convert(
    spec: ConvertSpec, backend: registry.Backend, *, root: Path, out: Path
) -> ArtifactInfo:
    """Build each fallback candidate in order until one passes the gate (see `fallback`)."""
    started = time.perf_counter()
    processing = _copy_plugins(spec, root, out)
    candidates = fallback.candidates_for(
        spec.precision,
        registry.fallbacks(spec.backend, spec.precision),
        allowed=spec.thresholds.fallback_allowed,
    )
    attempts: list[fallback.Attempt] = []
    with tempfile.TemporaryDirectory(prefix="tf2aif-convert-") as scratch:
        workdir = Path(scratch)
        source = load_source(root / spec.model, signature=spec.signature, workdir=workdir)
        calibration = functools.cache(lambda: _calibration_samples(spec, root, source))
        for candidate in candidates:
            if attempts:
                log.info("%s: trying fallback candidate %s", variant_of(spec), candidate)
                shutil.rmtree(out / "model")
                (out / "model").mkdir()
            job = ConvertJob(
                spec=spec,
                saved_model=source.saved_model,
                keras_model=source.keras_model,
                model_dir=out / "model",
                workdir=workdir,
                inputs=source.inputs,
                outputs=source.outputs,
                calibration=calibration,
                candidate=candidate,
            )
            result = _run_backend(backend, job)
            seconds = time.perf_counter() - started
            info = _artifact_info(spec, source, result, seconds, processing)
            report = _fidelity(spec, root, out, info, result, source, calibration)
            attempts.append(
                fallback.Attempt(
                    candidate=candidate,
                    passed=bool(report["passed"]),
                    figure="" if report["passed"] else fallback.figure_of(report),
                    float_layers=result.float_layers,
                    layers=result.layers,
                )
            )
            if report["passed"]:
                break
    if len(candidates) > 1:
        info, report = _with_fallback(spec, info, report, attempts)
    return replace(info, fidelity=report)


def _with_fallback(
    spec: ConvertSpec,
    info: ArtifactInfo,
    report: dict[str, Any],
    attempts: list[fallback.Attempt],
) -> tuple[ArtifactInfo, dict[str, Any]]:
    """Record which candidate the artifact is and what stayed float (metadata, labels, record)."""
    published = fallback.chosen(attempts)
    last = published or attempts[-1]
    detail = {
        "candidate": last.candidate,
        "float_layers": list(last.float_layers),
        "layers": last.layers,
        "summary": fallback.float_summary(spec.precision, last),
        "tried": fallback.to_record(attempts),
    }
    report = dict(report) | {"fallback": detail}
    if published is None:
        report["fallback"]["failure"] = fallback.failure_line(attempts)
    return replace(info, options=dict(info.options) | {"precision_fallback": detail}), report


def _append_traceback(log_file: Path, exc: BaseException) -> None:
    """The converter's full message belongs in its log; the console gets one line."""
    with log_file.open("a") as log:
        log.write("".join(traceback.format_exception(exc)))


def _prepare_out(out: Path) -> None:
    """`out` must be empty, missing, or an earlier artifact or failure log (which is replaced)."""
    if out.exists() and any(out.iterdir()):
        earlier = {child.name for child in out.iterdir()} == {LOG_FILE}  # an earlier failure
        if not earlier and not (out / ARTIFACT_FILE).is_file():
            raise ConversionError(
                f"{out} is not empty and holds no {ARTIFACT_FILE}; give an empty output folder"
            )
        _clear(out)
    (out / "model").mkdir(parents=True, exist_ok=True)


def _clear(out: Path, *, keep: str | None = None) -> None:
    for child in out.iterdir():
        if child.name == keep and child.stat().st_size:
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def _calibration_samples(spec: ConvertSpec, root: Path, source: SourceModel) -> Samples:
    if spec.calibration is None:
        raise PluginError(
            f"{variant_of(spec)}: {spec.precision} conversion needs calibration samples; "
            "name a function in the manifest's `calibration` (module, function)"
        )
    return load_samples(
        spec.calibration,
        root=root,
        inputs=source.inputs,
        allow_labels=False,
    )


def _run_backend(backend: registry.Backend, job: ConvertJob) -> ConvertResult:
    log.info("%s: converting with backend %r", job.variant, job.spec.backend)
    log_file = job.model_dir.parent / LOG_FILE
    try:
        with captured(log_file, header=f"{job.variant}: convert with {job.spec.backend}"):
            return backend(job)
    except ConversionError as exc:
        if exc.variant:
            raise
        raise ConversionError(f"{exc} (converter log: {log_file})", variant=job.variant) from exc
    except Tf2aifError:
        raise
    except Exception as exc:
        _append_traceback(log_file, exc)
        line = failure_line(
            stage="convert",
            converter=job.spec.backend,
            text=f"{type(exc).__name__}: {exc}",
            log=log_file,
        )
        raise ConversionError(line, variant=job.variant) from exc


def _artifact_info(
    spec: ConvertSpec,
    source: SourceModel,
    result: ConvertResult,
    seconds: float,
    processing: str | None,
) -> ArtifactInfo:
    return ArtifactInfo(
        name=spec.name,
        runtime=spec.runtime,
        precision=spec.precision,
        model_file=result.model_file,
        inputs=source.inputs,
        outputs=source.outputs,
        source_digest=source.digest,
        processing=processing,
        options=dict(result.options) | {"conversion_seconds": round(seconds, 3)},
        tools=tool_versions((*ALWAYS_RECORDED, *result.tools)),
    )


def _copy_plugins(spec: ConvertSpec, root: Path, out: Path) -> str | None:
    """Copy plugins_dir to out/plugins; return the processing module's path inside out."""
    plugins = out / "plugins"
    if spec.plugins_dir:
        folder = root / spec.plugins_dir
        if not folder.is_dir():
            raise PluginError(f"{spec.plugins_dir}: plug-in folder not found under {root}")
        shutil.copytree(folder, plugins, ignore=_plugin_ignore(out))
    if spec.processing is None:
        return None
    module = root / spec.processing
    if not module.is_file():
        raise PluginError(f"{spec.processing}: processing module not found under {root}")
    if spec.plugins_dir and module.resolve().is_relative_to((root / spec.plugins_dir).resolve()):
        inside = module.resolve().relative_to((root / spec.plugins_dir).resolve())
        return (Path("plugins") / inside).as_posix()
    plugins.mkdir(exist_ok=True)  # a processing module outside plugins_dir travels alone
    shutil.copy2(module, plugins / module.name)
    return f"plugins/{module.name}"


_NOT_PLUGINS = {"__pycache__", ".git", ".venv", ".nox", ".tf2aif"}


def _plugin_ignore(out: Path):
    """Skip caches, tool folders and the output itself (it may sit inside the plug-in folder)."""
    out = out.resolve()

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {
            n
            for n in names
            if n in _NOT_PLUGINS or n.endswith(".pyc") or Path(directory, n).resolve() == out
        }

    return ignore


def tool_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in dict.fromkeys(names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _fidelity(
    spec: ConvertSpec,
    root: Path,
    out: Path,
    info: ArtifactInfo,
    result: ConvertResult,
    source: SourceModel,
    calibration: Callable[[], Samples],
) -> dict[str, Any]:
    variant = variant_of(spec)
    if result.check_with is None:
        return {"variant": variant, "checked": False, "note": result.check_note, "passed": True}
    samples = _fidelity_samples(spec, root, source, calibration)
    log.info("%s: fidelity check on %d samples (%s)", variant, len(samples), samples.source)
    log_file = out / LOG_FILE
    try:
        with captured(log_file, header=f"{variant}: fidelity check with {result.check_with}"):
            candidate = runner_for(result.check_with, out, info)
            metrics = fidelity.measure(
                signature_runner(source.function),
                candidate,
                samples,
                class_output=spec.thresholds.class_output,
                per_output=bool(spec.thresholds.outputs),
            )
    except Tf2aifError:
        raise
    except Exception as exc:
        _append_traceback(log_file, exc)
        line = failure_line(
            stage="check",
            converter=result.check_with,
            text=f"{type(exc).__name__}: {exc}",
            log=log_file,
        )
        raise ConversionError(line, variant=variant) from exc
    return fidelity.report(
        variant=variant,
        checked_with=result.check_with,
        note=result.check_note,
        samples=samples,
        metrics=metrics,
        checks=fidelity.checks_for(metrics, spec.thresholds),
    )


def _fidelity_samples(
    spec: ConvertSpec, root: Path, source: SourceModel, calibration: Callable[[], Samples]
) -> Samples:
    if spec.fidelity_samples is not None:
        return load_samples(
            spec.fidelity_samples,
            root=root,
            inputs=source.inputs,
            allow_labels=True,
        )
    if spec.calibration is not None:
        return calibration()
    return synthetic_samples(source.inputs)

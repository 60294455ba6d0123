"""Look at the model once, before any build: its signature and its ops, and the cells they rule out.

`inspect_model` reads the SavedModel's serving signature (input/output dtypes and shapes) and the
set of TensorFlow ops in its graph and functions. The facts are cached as JSON under
`<root>/.tf2aif/inspect/<digest>.json`, keyed by the model's content digest, and in a per-user
cache (`$XDG_CACHE_HOME/tf2aif/inspect`, else `~/.cache/tf2aif/inspect`) consulted after it, so
`plan` and `validate` pay for TensorFlow once per model version, not once per checkout
(tf2aif.pipeline.inspect_cache). `predict` turns the facts into the cells a runtime cannot serve,
each with the reason and the fix, from what the converters are known to reject (measured on the
conformance zoo, docs/models.md). A fix names the recipe option that makes the cell convert where
there is one (e.g. `options.tflite.select_tf_ops: true`); with that option set the cell is no
longer predicted, and `option_issues` refuses an option the model cannot use (e.g. unrolling a
SavedModel, or a sequence without a fixed length). `notes` says what a planned runtime does
differently for this model where it does convert it (string ops through OpenVINO's tokenizers
extension, XLA-compiled functions inlined before tf2onnx); `plan` prints them.

One module, over 400 lines on purpose: each fact is read from the graph next to the prediction
and option checks that use it, so a new converter limit is one change in one place.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_DIR",
    "ModelFacts",
    "OptionIssue",
    "Prediction",
    "TensorFacts",
    "facts_from_saved_model",
    "facts_or_why_not",
    "fallback_line",
    "gated_output_line",
    "dynamic_lengths",
    "inspect_model",
    "notes",
    "option_issues",
    "predict",
]

log = logging.getLogger(__name__)

CACHE_DIR = ".tf2aif/inspect"
SIGNATURE = "serving_default"

# TF ops that carry a recurrent layer's state through a While loop; TFLite lowers them only when
# the element shape is static, which a Keras 3 RNN with a dynamic batch never has
TENSOR_LIST_OPS = frozenset(
    {"TensorListReserve", "TensorListFromTensor", "TensorListSetItem", "TensorListStack"}
)
# string processing inside the graph (TextVectorization, tf.strings): no TFLite builtin kernels,
# no tf2onnx handlers, and OpenVINO needs its tokenizers extension
STRING_OP_PREFIXES = ("String", "StaticRegex", "RegexReplace", "Substr", "UnicodeDecode")
# the string ops the openvino-tokenizers extension converts and the CPU plugin then runs as
# TensorFlow does: TextVectorization's standardize and split (measured on the zoo's string_text,
# docs/models.md). Not StringToHashBucketFast: a Keras Hashing layer converted, then failed to
# compile (its bucket ids come out i64 where the graph expects i32).
OPENVINO_STRING_OPS = frozenset({"StringLower", "StaticRegexReplace", "StringSplitV2"})


@dataclass(frozen=True, kw_only=True)
class TensorFacts:
    name: str
    dtype: str  # TensorFlow dtype name: float32, int64, string, ...
    shape: tuple[int, ...]  # -1 for a dynamic dimension


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    digest: str
    inputs: tuple[TensorFacts, ...]
    outputs: tuple[TensorFacts, ...]
    ops: frozenset[str]
    # functions the signature calls with XLA required (jit_compile=True): Keras 3 builds a
    # grouped Conv2D (ConvNeXt's depthwise convolution) this way on TensorFlow
    xla_functions: frozenset[str] = frozenset()

    def to_json(self) -> str:
        data = asdict(self) | {"ops": sorted(self.ops), "xla_functions": sorted(self.xla_functions)}
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelFacts:
        data = json.loads(text)
        return cls(
            digest=data["digest"],
            inputs=tuple(_tensor(t) for t in data["inputs"]),
            outputs=tuple(_tensor(t) for t in data["outputs"]),
            ops=frozenset(data["ops"]),
            xla_functions=frozenset(data.get("xla_functions", ())),
        )


@dataclass(frozen=True, kw_only=True)
class Prediction:
    cell: str  # platform/runtime/precision, or runtime/* when every precision is ruled out
    runtime: str
    reason: str
    fix: str


@dataclass(frozen=True, kw_only=True)
class OptionIssue:
    """An option set in the manifest that this model cannot use: options.<runtime>.<option>."""

    runtime: str
    option: str
    message: str


# the recipe options that make a recurrent model convert on TFLite (recipes/tflite/recipe.yaml)
SELECT_TF_OPS = "select_tf_ops"
UNROLL_RECURRENT = "unroll_recurrent"


def inspect_model(
    model: Path, *, digest: str, cache_root: Path, remember: bool = True
) -> ModelFacts:
    """The model's facts, from the cache when this digest was inspected before (and written to
    it unless `remember` is false: `bake --print` writes nothing)."""
    from tf2aif.pipeline.inspect_cache import read_cached_facts, user_cache_dir, write_cached_facts

    cache = cache_root / CACHE_DIR / f"{digest.replace(':', '-')}.json"
    user_cache = user_cache_dir() / cache.name
    for path in (cache, user_cache):
        cached = read_cached_facts(path, digest=digest)
        if cached is not None:
            if remember and path == user_cache:
                write_cached_facts(cache, cached)
            return cached
    if model.is_file():
        with tempfile.TemporaryDirectory(prefix="tf2aif-inspect-") as scratch:
            import keras

            keras.models.load_model(model).export(scratch, verbose=False)
            facts = facts_from_saved_model(Path(scratch), digest=digest)
    else:
        facts = facts_from_saved_model(model, digest=digest)
    if remember:
        write_cached_facts(cache, facts)
        write_cached_facts(user_cache, facts)
    return facts


def facts_from_saved_model(saved_model: Path, *, digest: str) -> ModelFacts:
    """Parse saved_model.pb: the serving signature and every op in the graph and its functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0]
    signature = graph.signature_def[SIGNATURE]
    outputs = [info.name.split(":")[0] for info in signature.outputs.values()]
    return ModelFacts(
        digest=digest,
        inputs=_signature_tensors(signature.inputs),
        outputs=_signature_tensors(signature.outputs),
        ops=frozenset(_reachable_ops(graph.graph_def, outputs)),
        xla_functions=frozenset(_xla_compiled_functions(graph.graph_def)),
    )


def _xla_compiled_functions(graph_def: Any) -> set[str]:
    """Functions some node calls with `_XlaMustCompile` set (a tf.function(jit_compile=True))."""
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return {
        node.attr["f"].func.name
        for node in nodes
        if "_XlaMustCompile" in node.attr and node.attr["_XlaMustCompile"].b and "f" in node.attr
    }


def _reachable_ops(graph_def: Any, outputs: list[str]) -> set[str]:
    """Ops the signature runs: nodes its outputs depend on, and the functions they call.

    Not every op of the file: the checkpoint-saving functions (string ops) are never served.
    """
    nodes = {node.name: node for node in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    ops: set[str] = set()
    seen_nodes: set[str] = set()
    seen_functions: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop().lstrip("^").split(":")[0]
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        ops.add(node.op)
        stack.extend(node.input)
        _add_called(node, functions, ops, seen_functions)
    return ops


def _add_called(node: Any, functions: Mapping[str, Any], ops: set[str], seen: set[str]) -> None:
    for value in node.attr.values():
        called = [value.func.name] if value.HasField("func") else []
        called += [f.name for f in value.list.func]
        for name in called:
            if name in seen or name not in functions:
                continue
            seen.add(name)
            for inner in functions[name].node_def:
                ops.add(inner.op)
                _add_called(inner, functions, ops, seen)


def predict(
    facts: ModelFacts,
    runtimes: Iterable[str],
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    keras_source: bool = False,
) -> tuple[Prediction, ...]:
    """The runtimes (of those planned) that cannot serve this model, with reason and fix.

    `options` are the manifest's `options` by runtime; `keras_source` says the model is a .keras
    file (its layers can be rebuilt, e.g. unrolled).
    """
    options = options or {}
    found = []
    strings = sorted(op for op in facts.ops if op.startswith(STRING_OP_PREFIXES))
    string_inputs = [t.name for t in facts.inputs if t.dtype == "string"]
    lists = sorted(facts.ops & TENSOR_LIST_OPS)
    for runtime in sorted(set(runtimes)):
        if runtime == "tflite" and lists and not _recurrent_handled(facts, options, keras_source):
            found.append(
                Prediction(
                    cell="tflite/*",
                    runtime=runtime,
                    reason=(
                        f"a recurrent layer (While loop over {', '.join(lists)}): the TFLite "
                        "converter lowers it to builtin ops only with a static element shape, "
                        "else it needs Select TF ops (Flex), which the LiteRT interpreter does "
                        "not carry"
                    ),
                    fix=_recurrent_fix(facts, keras_source),
                )
            )
        if runtime == "openvino" and strings and set(strings) <= OPENVINO_STRING_OPS:
            continue  # converted by the tokenizers extension: see notes()
        if strings and runtime in ("tflite", "onnxruntime", "openvino"):
            found.append(
                Prediction(
                    cell=f"{runtime}/*",
                    runtime=runtime,
                    reason=(
                        f"string ops in the graph ({', '.join(strings[:3])}"
                        f"{', ...' if len(strings) > 3 else ''}) have no {runtime} conversion"
                    ),
                    fix=(
                        "move text preprocessing out of the model (into the processing module) "
                        "and feed token ids, or serve this model with runtime tf"
                        + (
                            " (OpenVINO's tokenizers extension converts "
                            f"{', '.join(sorted(OPENVINO_STRING_OPS))})"
                            if runtime == "openvino"
                            else ""
                        )
                    ),
                )
            )
        elif string_inputs and runtime in ("tflite", "onnxruntime", "openvino"):
            found.append(
                Prediction(
                    cell=f"{runtime}/*",
                    runtime=runtime,
                    reason=f"string input(s) {', '.join(string_inputs)}",
                    fix="feed token ids instead, or serve this model with runtime tf",
                )
            )
    return tuple(found)


def notes(facts: ModelFacts | None, runtimes: Iterable[str]) -> tuple[str, ...]:
    """What a planned runtime does differently for this model, said before any build."""
    if not facts:
        return ()
    planned = set(runtimes)
    said = []
    onnx_export = planned & {"onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-jetson"}
    if onnx_export and facts.xla_functions:
        first = min(facts.xla_functions)
        said.append(
            f"{', '.join(sorted(onnx_export))}: {len(facts.xla_functions)} function(s) compiled "
            f"with XLA (jit_compile, e.g. {first}; Keras 3 builds a grouped Conv2D this way) are "
            "inlined before tf2onnx, which cannot convert the call; what they compute is kept"
        )
    strings = sorted(op for op in facts.ops if op.startswith(STRING_OP_PREFIXES))
    if "openvino" in planned and strings and set(strings) <= OPENVINO_STRING_OPS:
        said.append(
            f"openvino: the string ops ({', '.join(strings)}) convert with the "
            "openvino-tokenizers extension, which the convert-tf and serve-openvino bases "
            "carry; the image loads it before the model"
        )
    return tuple(said)


def _recurrent_handled(
    facts: ModelFacts, options: Mapping[str, Mapping[str, Any]], keras_source: bool
) -> bool:
    tflite = options.get("tflite", {})
    if tflite.get(SELECT_TF_OPS) is True:
        return True
    return tflite.get(UNROLL_RECURRENT) is True and keras_source and not dynamic_lengths(facts)


def _recurrent_fix(facts: ModelFacts, keras_source: bool) -> str:
    fix = (
        f"set options.tflite.{SELECT_TF_OPS}: true (keeps these as TensorFlow ops; the image "
        "then serves with TensorFlow's Flex delegate, about 1.4 GB larger than with LiteRT)"
    )
    if keras_source and not dynamic_lengths(facts):
        fix += (
            f", or options.tflite.{UNROLL_RECURRENT}: true (rebuilds the recurrent layers "
            "with unroll=True: builtin ops on plain LiteRT)"
        )
    elif keras_source:
        fix += (
            f"; options.tflite.{UNROLL_RECURRENT}: true needs a fixed sequence length "
            f"(dynamic: {', '.join(dynamic_lengths(facts))})"
        )
    return fix + "; or serve it with runtime onnxruntime or openvino"


def dynamic_lengths(facts: ModelFacts) -> tuple[str, ...]:
    """The inputs whose length is not fixed (a dynamic dimension past the batch): unrolling a
    recurrent layer needs every one fixed. Empty when all are."""
    return tuple(t.name for t in facts.inputs if any(d < 0 for d in t.shape[1:]))


def option_issues(
    facts: ModelFacts | None, options: Mapping[str, Mapping[str, Any]], *, keras_source: bool
) -> tuple[OptionIssue, ...]:
    """Options set true that this model cannot use, each with what to do instead."""
    tflite = options.get("tflite", {})
    if tflite.get(UNROLL_RECURRENT) is not True:
        return ()
    if not keras_source:
        message = (
            f"{UNROLL_RECURRENT} rebuilds the model from its Keras layer config, which a "
            "SavedModel does not keep: point model.path at the .keras file, or set "
            f"options.tflite.{SELECT_TF_OPS}: true instead"
        )
        return (OptionIssue(runtime="tflite", option=UNROLL_RECURRENT, message=message),)
    dynamic = dynamic_lengths(facts) if facts else ()
    if facts and facts.ops & TENSOR_LIST_OPS and dynamic:
        shapes = ", ".join(
            f"{t.name} {list(t.shape)}" for t in facts.inputs if t.name in set(dynamic)
        )
        message = (
            f"{UNROLL_RECURRENT} needs a fixed sequence length, and the model's input is "
            f"dynamic ({shapes}; -1 = any): give keras.Input a fixed length, or set "
            f"options.tflite.{SELECT_TF_OPS}: true instead"
        )
        return (OptionIssue(runtime="tflite", option=UNROLL_RECURRENT, message=message),)
    return ()


def facts_or_why_not(
    model: Path, *, digest: str, cache_root: Path, remember: bool = True
) -> tuple[ModelFacts | None, str]:
    """The model's facts, or None and one line saying why it could not be inspected.

    An uninspectable model rules nothing out: `convert` still reports its own problems, located.
    """
    if not (model.is_file() or (model / "saved_model.pb").is_file()):
        return None, f"no SavedModel or .keras file at {model}"
    # the same bytes fail the same way: remembered so each plan does not import TensorFlow again
    failed = cache_root / CACHE_DIR / f"{digest.replace(':', '-')}.failed"
    if failed.is_file():
        return None, failed.read_text().strip()
    try:
        return inspect_model(model, digest=digest, cache_root=cache_root, remember=remember), ""
    except ImportError as exc:  # not the model's fault: not remembered
        return None, f"TensorFlow is not importable here ({exc.name or exc})"
    except Exception as exc:  # any unreadable model: a warning, never a traceback
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        why_not = f"{type(exc).__name__}: {first}".rstrip(": ")
        if remember:
            failed.parent.mkdir(parents=True, exist_ok=True)
            failed.write_text(why_not + "\n")
        return None, why_not


def gated_output_line(plan: Any) -> str:
    """Which output top-1 agreement and accuracy are judged on, and any per-output limits."""
    named = {v.thresholds.class_output for v in plan.variants if v.thresholds.class_output}
    if named:
        line = f"fidelity gate: top-1 and accuracy on output {', '.join(sorted(named))}"
    else:
        line = (
            "fidelity gate: top-1 and accuracy on the [1, K] output named like "
            "probabilities/logits/scores, else the one whose rows are probabilities, else the "
            "first (set fidelity.class_output to choose)"
        )
    limits = {
        f"{o.name} "
        + ", ".join(
            f"{k} <= {v:g}" for k, v in (("atol", o.atol), ("rtol", o.rtol)) if v is not None
        )
        for v in plan.variants
        for o in v.thresholds.outputs
    }
    return line + (f"; per output: {'; '.join(sorted(limits))}" if limits else "")


def fallback_line(plan: Any) -> str:
    """Which quantized variants may publish a more-float fallback candidate (see fallback)."""
    from tf2aif.image.convert.fallback import candidates_for
    from tf2aif.image.convert.registry import fallbacks

    allowed, off = [], []
    for v in plan.variants:
        offered = fallbacks(v.backend, v.precision)
        if not offered:
            continue
        tried = candidates_for(v.precision, offered, allowed=v.thresholds.fallback_allowed)
        cell = f"{v.runtime}-{v.precision}"
        if len(tried) > 1:
            allowed.append(f"{cell} ({' > '.join(tried)})")
        else:
            off.append(cell)
    parts = []
    if allowed:
        parts.append("precision fallback on gate failure: " + ", ".join(dict.fromkeys(allowed)))
    if off:
        parts.append("precision fallback off: " + ", ".join(dict.fromkeys(off)))
    if not parts:
        return "precision fallback: no variant offers one"
    return "; ".join(parts) + " (fidelity.fallback: false turns it off)"


def _signature_tensors(tensors: Mapping[str, Any]) -> tuple[TensorFacts, ...]:
    from tensorflow.python.framework import dtypes

    return tuple(
        TensorFacts(
            name=name,
            dtype=dtypes.as_dtype(info.dtype).name,
            shape=tuple(-1 if d.size < 0 else int(d.size) for d in info.tensor_shape.dim),
        )
        for name, info in sorted(tensors.items())
    )


def _tensor(data: Mapping[str, Any]) -> TensorFacts:
    return TensorFacts(name=data["name"], dtype=data["dtype"], shape=tuple(data["shape"]))

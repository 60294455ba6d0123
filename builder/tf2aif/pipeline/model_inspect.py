"""Look at the model once, before any build: its signature and its ops, and the cells they rule out.

`inspect_model` reads the SavedModel's serving signature (input/output dtypes and shapes) and the
set of TensorFlow ops in its graph and functions. The facts are cached as JSON under
`<root>/.tf2aif/inspect/<digest>.json`, keyed by the model's content digest, and in a per-user
cache (`$XDG_CACHE_HOME/tf2aif/inspect`, else `~/.cache/tf2aif/inspect`) consulted after it, so
`plan` and `validate` pay for TensorFlow once per model version, not once per checkout. `predict` turns the facts into the cells a
runtime cannot serve, each with the reason and the fix, from what the converters are known to
reject (measured on the conformance zoo, docs/models.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_DIR",
    "ModelFacts",
    "Prediction",
    "TensorFacts",
    "facts_from_saved_model",
    "facts_or_why_not",
    "gated_output_line",
    "inspect_model",
    "predict",
    "read_cached_facts",
    "user_cache_dir",
    "write_cached_facts",
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


def inspect_model(
    model: Path, *, digest: str, cache_root: Path, remember: bool = True
) -> ModelFacts:
    """The model's facts, from the cache when this digest was inspected before (and written to
    it unless `remember` is false: `bake --print` writes nothing)."""
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


def user_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user inspection cache: `$XDG_CACHE_HOME/tf2aif/inspect`, else `~/.cache/...`
    (a relative XDG_CACHE_HOME is ignored, as the XDG spec says)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path(env.get("HOME") or Path.home()) / ".cache"
    return root / "tf2aif" / "inspect"


def read_cached_facts(path: Path, *, digest: str) -> ModelFacts | None:
    """The facts cached at `path` for this digest, or None: a missing entry, or one that is not
    exactly what `write_cached_facts` writes for this digest (logged and ignored; never trusted)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.info("ignoring unreadable inspection cache %s: %s", path, exc)
        return None
    try:
        return _strict_facts(json.loads(text), digest=digest)
    except (ValueError, RecursionError) as exc:
        log.info("ignoring unreadable inspection cache %s: %s", path, exc)
        return None


def write_cached_facts(path: Path, facts: ModelFacts) -> None:
    """Write atomically (a reader sees the old entry or the new one, never half of it); a cache
    that cannot be written (read-only home, full disk) costs a later inspection, not the run."""
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
        ) as handle:
            partial = handle.name
            handle.write(facts.to_json() + "\n")
        os.replace(partial, path)
    except OSError as exc:
        log.info("inspection cache %s not written: %s", path, exc)
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial)


def _strict_facts(data: Any, *, digest: str) -> ModelFacts:
    """ModelFacts from parsed JSON with every field and type checked (ValueError otherwise), so
    an entry of another digest, another format or a damaged file is never taken for facts."""
    facts_keys = {f.name for f in fields(ModelFacts)}
    tensor_keys = {f.name for f in fields(TensorFacts)}

    def tensors(items: Any) -> tuple[TensorFacts, ...]:
        if not isinstance(items, list):
            raise ValueError("tensors are not a list")
        found = []
        for item in items:
            if not (isinstance(item, dict) and set(item) == tensor_keys):
                raise ValueError(f"a tensor is not {sorted(tensor_keys)}")
            name, dtype, shape = item["name"], item["dtype"], item["shape"]
            if not (isinstance(name, str) and isinstance(dtype, str) and isinstance(shape, list)):
                raise ValueError("a tensor's name, dtype or shape has the wrong type")
            if not all(type(d) is int and d >= -1 for d in shape):
                raise ValueError("a shape holds something other than sizes and -1")
            found.append(TensorFacts(name=name, dtype=dtype, shape=tuple(shape)))
        return tuple(found)

    if not (isinstance(data, dict) and set(data) == facts_keys):
        raise ValueError(f"not an inspection entry (keys {sorted(facts_keys)})")
    if data["digest"] != digest:
        raise ValueError(f"entry of another model ({data['digest']!r})")
    ops, xla_functions = data["ops"], data["xla_functions"]
    for names in (ops, xla_functions):
        if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
            raise ValueError("ops or xla_functions are not a list of names")
    return ModelFacts(
        digest=digest,
        inputs=tensors(data["inputs"]),
        outputs=tensors(data["outputs"]),
        ops=frozenset(ops),
        xla_functions=frozenset(xla_functions),
    )


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


def predict(facts: ModelFacts, runtimes: Iterable[str]) -> tuple[Prediction, ...]:
    """The runtimes (of those planned) that cannot serve this model, with reason and fix."""
    found = []
    strings = sorted(op for op in facts.ops if op.startswith(STRING_OP_PREFIXES))
    string_inputs = [t.name for t in facts.inputs if t.dtype == "string"]
    lists = sorted(facts.ops & TENSOR_LIST_OPS)
    for runtime in sorted(set(runtimes)):
        if runtime == "onnxruntime" and facts.xla_functions:
            found.append(_xla_prediction(facts, runtime))
        if runtime == "tflite" and lists:
            found.append(
                Prediction(
                    cell="tflite/*",
                    runtime=runtime,
                    reason=(
                        f"a recurrent layer (While loop over {', '.join(lists)}): the TFLite "
                        "converter lowers it only with a static element shape, else it needs "
                        "Select TF ops (Flex), which the LiteRT interpreter does not carry"
                    ),
                    fix=(
                        "serve it with onnxruntime or openvino, or build the layer with "
                        "unroll=True and a fixed sequence length"
                    ),
                )
            )
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
                            " (OpenVINO converts these ops with the openvino-tokenizers package)"
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


def _xla_prediction(facts: ModelFacts, runtime: str) -> Prediction:
    first = min(facts.xla_functions)
    return Prediction(
        cell=f"{runtime}/*",
        runtime=runtime,
        reason=(
            f"{len(facts.xla_functions)} function(s) compiled with XLA (jit_compile, e.g. "
            f"{first}): Keras 3 builds a grouped Conv2D (such as ConvNeXt's depthwise "
            "convolution) this way on TensorFlow, and tf2onnx cannot convert the nested call"
        ),
        fix=(
            "serve it with tflite or openvino, or build the layer as DepthwiseConv2D (or a "
            "Conv2D without groups) so it needs no XLA"
        ),
    )


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
    """Which output top-1 agreement and accuracy are judged on, as the plan shows it."""
    named = {v.thresholds.class_output for v in plan.variants if v.thresholds.class_output}
    if named:
        return f"fidelity gate: top-1 and accuracy on output {', '.join(sorted(named))}"
    return (
        "fidelity gate: top-1 and accuracy on the [1, K] output named like "
        "probabilities/logits/scores, else the one whose rows are probabilities, else the first "
        "(set fidelity.class_output to choose)"
    )


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

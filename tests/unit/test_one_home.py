"""Each fact has one home: the record reader, the platform arches, the exception tree."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tf2aif.errors as errors
from tf2aif.bench import record as bench_record
from tf2aif.deploy.k8s import workloads_from_record
from tf2aif.deploy.platforms import profile_for
from tf2aif.errors import DeployError, ManifestError, Tf2aifError
from tf2aif.pipeline import record as pipeline_record
from tf2aif.pipeline.recipes import platform_arches
from tf2aif.pipeline.record import ImageRecord, image_reference, read_record

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "builder" / "tf2aif"


def _image(*, digest: str | None, tags: tuple[str, ...]) -> ImageRecord:
    return ImageRecord(
        target="serve-cpu-tflite-fp32",
        variants=("cpu/tflite/fp32",),
        runtime="tflite",
        precision="fp32",
        platforms=("linux/amd64",),
        image="127.0.0.1:5000/tf2aif/digits",
        tags=tags,
        digest=digest,
        status="success",
    )


def test_the_record_reader_is_defined_once() -> None:
    """deploy, bench, report and place read records through pipeline/record.py, never a copy."""
    home = Path(pipeline_record.__file__)
    for file in PACKAGE.rglob("*.py"):
        if file == home:
            continue
        defined = {
            node.name
            for node in ast.walk(ast.parse(file.read_text()))
            if isinstance(node, ast.FunctionDef)
        }
        assert not defined & {"read_record", "image_reference"}, file


def test_a_digest_reference_comes_before_any_tag() -> None:
    tagged = ("127.0.0.1:5000/tf2aif/digits:tflite-fp32-c0ffee",)
    digest = "sha256:" + "a" * 64
    both = _image(digest=digest, tags=tagged)
    assert image_reference(both) == f"127.0.0.1:5000/tf2aif/digits@{digest}"
    assert image_reference(_image(digest=None, tags=tagged)) == tagged[0]
    assert image_reference(_image(digest=None, tags=())) == ""


@pytest.mark.fuzz
@given(
    digest=st.none() | st.text("0123456789abcdef", min_size=1, max_size=64).map("sha256:".__add__),
    tags=st.lists(st.from_regex(r"\Ar/[a-z]{1,8}:[a-z0-9]{1,8}\Z"), max_size=3).map(tuple),
)
def test_image_reference_is_exact_whenever_a_digest_is_known(digest, tags) -> None:
    reference = image_reference(_image(digest=digest, tags=tags))
    if digest:
        assert reference.endswith("@" + digest)
    elif tags:
        assert reference == tags[0]
    else:
        assert reference == ""


def test_a_missing_record_says_how_to_make_one_for_every_reader(tmp_path: Path) -> None:
    for reader in (read_record, pipeline_record.read_record):
        with pytest.raises(ManifestError, match=r"build record not found; run `tf2aif bake`"):
            reader(tmp_path / "tf2aif-record.json")


def test_deploy_refuses_an_image_without_digest_or_tag(tmp_path: Path) -> None:
    entry = {
        **{k: v for k, v in vars(_image(digest=None, tags=())).items()},
        "variants": ["cpu/tflite/fp32"],
        "platforms": ["linux/amd64"],
        "tags": [],
    }
    document = {
        "name": "digits", "manifest": "tf2aif.yaml", "model_digest": "sha256:" + "0" * 64,
        "registry": "127.0.0.1:5000/tf2aif", "created": "2026-01-01T00:00:00Z",
        "tools": {}, "images": [entry], "version": 1,
    }  # fmt: skip
    path = tmp_path / "tf2aif-record.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DeployError, match="has neither a digest nor a tag"):
        workloads_from_record(read_record(path))


@pytest.fixture
def recipe_folder(tmp_path: Path) -> dict[str, str]:
    """A recipe folder adding one platform, as TF2AIF_RECIPE_PATH names it."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "platforms.yaml").write_text(
        "platforms:\n  rpi5: {arch: arm64, description: Raspberry Pi 5}\n"
        "  epyc: {arch: amd64, accelerator: none}\n"
    )
    return {"TF2AIF_RECIPE_PATH": str(folder)}


def test_a_platform_added_by_a_recipe_folder_is_known_to_deploy_and_bench(
    recipe_folder: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert platform_arches(recipe_folder)["rpi5"] == "arm64"
    assert "rpi5" not in platform_arches({})
    # Deploy places it by the recipes' arch even when its image is multi-arch.
    multi = ("linux/amd64", "linux/arm64")
    assert profile_for("rpi5", image_platforms=multi, env=recipe_folder).arch == "arm64"
    with pytest.raises(DeployError, match="defined by no recipe"):
        profile_for("rpi5", image_platforms=multi, env={})
    # Bench on an arm host runs an rpi5 variant: same CPU arch, per the recipes.
    variants = ("epyc/tflite/fp32", "rpi5/tflite/int8")
    assert bench_record.pick_variant(variants, "arm", env=recipe_folder) == "rpi5/tflite/int8"
    assert bench_record.pick_variant(variants, "cpu", env=recipe_folder) == "epyc/tflite/fp32"
    assert bench_record.pick_variant(variants, "arm", env={}) is None
    # Without an explicit env both read the process environment, as the CLI runs them.
    monkeypatch.setenv("TF2AIF_RECIPE_PATH", recipe_folder["TF2AIF_RECIPE_PATH"])
    assert profile_for("rpi5", image_platforms=multi).node_selector == {
        "kubernetes.io/arch": "arm64"
    }
    assert bench_record.pick_variant(variants, "arm") == "rpi5/tflite/int8"


def test_an_unknown_host_platform_matches_no_unknown_variant() -> None:
    assert bench_record.pick_variant(("tpu/tflite/int8",), "riscv", env={}) is None


def test_built_in_platform_arches_are_the_recipe_table() -> None:
    import yaml

    table = yaml.safe_load((ROOT / "recipes" / "platforms.yaml").read_text())["platforms"]
    assert dict(platform_arches({})) == {name: spec["arch"] for name, spec in table.items()}
    for name, spec in table.items():
        assert profile_for(name, env={}).arch == spec["arch"]


def _classes(tree: ast.AST) -> list[ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _error_names() -> set[str]:
    return {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), BaseException)
    }


def test_every_tf2aif_exception_class_is_defined_in_errors_py() -> None:
    tree_names, outside = _error_names() | {"Exception", "ValueError"}, []
    for file in sorted(PACKAGE.rglob("*.py")):
        if file.name == "errors.py" and file.parent == PACKAGE:
            continue
        for node in _classes(ast.parse(file.read_text())):
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            private = node.name.startswith("_")
            if bases & tree_names and not private and node.name != "LockError":
                outside.append(f"{file.relative_to(PACKAGE)}: {node.name}")
    # Control-flow signals of the request batcher never leave the server.
    allowed = {"QueueFull", "ShuttingDown", "InferenceFailed"}
    assert [o for o in outside if o.rpartition(": ")[2] not in allowed] == []


def test_the_errors_docstring_tree_names_every_error_class() -> None:
    for name in _error_names():
        assert f" {name} " in errors.__doc__, name
        assert issubclass(getattr(errors, name), Exception)
    assert issubclass(errors.DigestError, errors.PlanError)
    assert issubclass(errors.ServerError, Tf2aifError)
    assert not issubclass(errors.ApiError, Tf2aifError)
    assert errors.ReleaseError("x").exit_code == errors.EXIT_BUILD


def test_no_module_raises_the_root_error() -> None:
    """The root class is for catching; each failure raises the class that says what failed."""
    for file in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                assert getattr(node.exc.func, "id", "") != "Tf2aifError", file

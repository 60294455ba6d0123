"""Content tags come from the emitted bake graph: an image's digest covers every byte any target
it is built from can read, and nothing else.

The walks below edit files of a copy of the repository (builder/tf2aif, base_images, recipes)
and of the demo project (manifest, plug-ins, model), plan again, and check that exactly the
images whose graph reads the edited file get a new content tag. Which targets read a file is
decided here independently of tf2aif.pipeline.digests: by where the file lands in the build folder,
whether it is under a target's context (minus what Docker's `.dockerignore` matcher hides) or
is its Dockerfile, and which images link that target.
"""

from __future__ import annotations

import copy
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from docker.utils.build import PatternMatcher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tf2aif
from tf2aif.errors import PlanError
from tf2aif.pipeline.bake import (
    BAKE_FILE,
    bake_dict,
    bake_json,
    read_bake,
    staged_files,
    write_build_dir,
)
from tf2aif.pipeline.digests import (
    CONTENT_DIGEST_LABEL,
    NOT_INPUT_LABELS,
    DigestError,
    image_digest,
    image_digests,
)
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.plan import BUILD_DIR, make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve
from tf2aif.pipeline.select import check_content_tags

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(tf2aif.__file__).resolve().parent
# module-scoped fixtures, so the function-scoped autouse guard is the only one Hypothesis sees
HYPOTHESIS = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ]
)
ADDED = "zz-added-by-test.txt"


# -- a copy of the repository and of the demo project --------------------------------------------


@dataclass
class Sandbox:
    package: Path  # copy of builder/tf2aif
    base_images: Path
    recipes: Path
    project: Path
    baseline: dict = field(default_factory=dict)

    @property
    def manifest(self) -> Path:
        return self.project / "tf2aif.yaml"

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Planning and staging read this copy instead of the checkout."""
        folders = {"base_images": self.base_images, "recipes": self.recipes}
        real = tf2aif.resources.data_dir

        def data_dir(name: str) -> Path:
            return folders.get(name) or real(name)

        monkeypatch.setattr("tf2aif.pipeline.bake._PACKAGE", self.package)
        monkeypatch.setattr("tf2aif.pipeline.bake.data_dir", data_dir)
        monkeypatch.setattr("tf2aif.pipeline.recipes.data_dir", data_dir)

    def plan(self, *, reload_recipes: bool = True):
        manifest, _ = load_manifest(self.manifest)
        if reload_recipes or "recipes" not in self.baseline:
            self.baseline["recipes"] = load_recipes(env={})
        return make_plan(resolve(manifest, self.baseline["recipes"]), env={})

    def repo_files(self) -> list[Path]:
        return sorted(
            p
            for top in (self.package, self.base_images, self.recipes)
            for p in top.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )

    def project_files(self) -> list[Path]:
        return sorted(
            p
            for p in self.project.rglob("*")
            if p.is_file() and BUILD_DIR not in p.relative_to(self.project).parts
        )


def demo_manifest() -> str:
    """The demo manifest, plus the bench client (it copies all of tf2aif) and an Alveo image
    (a second converter toolchain), so the walk sees every kind of reader."""
    data = yaml.safe_load((REPO / "tf2aif.yaml").read_text())
    data["targets"]["include"] = [{"platform": "alveo", "runtime": "vitis-ai", "precision": "int8"}]
    data["client"] = {"enabled": True}
    return yaml.safe_dump(data, sort_keys=False)


def make_sandbox(top: Path) -> Sandbox:
    ignore = shutil.ignore_patterns("__pycache__", "_data")
    box = Sandbox(
        package=top / "repo" / "builder" / "tf2aif",
        base_images=top / "repo" / "base_images",
        recipes=top / "repo" / "recipes",
        project=top / "project",
    )
    shutil.copytree(PACKAGE, box.package, ignore=ignore)
    shutil.copytree(REPO / "base_images", box.base_images, ignore=ignore)
    shutil.copytree(REPO / "recipes", box.recipes, ignore=ignore)
    shutil.copytree(REPO / "app", box.project / "app", ignore=ignore)
    model = box.project / "models" / "digits"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"stand-in saved model")
    (model / "variables" / "variables.index").write_bytes(b"stand-in index")
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(range(256)))
    (box.project / "README.md").write_text("the demo\n")
    box.manifest.write_text(demo_manifest())
    return box


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    box = make_sandbox(tmp_path_factory.mktemp("sandbox"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        box.patch(monkeypatch)
        plan = box.plan()
        box.baseline |= {
            "plan": plan,
            "bake": bake_dict(plan),
            "staged": staged_files(plan),
            "tags": _tags(plan),
        }
        yield box


def _tags(plan) -> dict[str, tuple[str, ...]]:
    images = (*plan.serves, *((plan.client,) if plan.client else ()))
    return {i.name: i.tags for i in images}


# -- which images read a file, decided from the graph --------------------------------------------


def _closure(targets: dict, name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            contexts = targets[current].get("contexts", {}).values()
            todo += [c.removeprefix("target:") for c in contexts if c.startswith("target:")]
    return seen


def _ignored(box: Sandbox, staged: dict, context: str, dockerfile: str | None, name: str) -> bool:
    candidates = [f"{dockerfile}.dockerignore"] if dockerfile else []
    for candidate in (*candidates, ".dockerignore"):
        path = posixpath.join(context, candidate)
        source = staged.get(path) if path.startswith(BUILD_DIR) else box.project / path
        if source is not None and source.is_file():
            lines = [line.strip() for line in source.read_text().splitlines()]
            patterns = [line for line in lines if line and not line.startswith("#")]
            return PatternMatcher(patterns).matches(name)
    return False


def _readers(box: Sandbox, staged: dict, paths: set[str]) -> set[str]:
    """Targets of the baseline graph whose Dockerfile is, or whose contexts hold, one of `paths`
    (root-relative)."""
    found = set()
    for name, target in box.baseline["bake"]["target"].items():
        dockerfile = target.get("dockerfile", "Dockerfile")
        places = [(target.get("context", "."), dockerfile)]
        places += [(c, None) for c in target.get("contexts", {}).values() if ":" not in c]
        for context, own_dockerfile in places:
            context = posixpath.normpath(context)
            for path in paths:
                if own_dockerfile and path == posixpath.join(context, own_dockerfile):
                    found.add(name)
                inside = context == "." or path.startswith(context + "/")
                relative = path if context == "." else path[len(context) + 1 :]
                if inside and not _ignored(box, staged, context, own_dockerfile, relative):
                    found.add(name)
    return found


def expected_moves(box: Sandbox, files: list[Path], staged_after: dict) -> set[str]:
    paths = set()
    for file in files:
        if file.is_relative_to(box.project):
            paths.add(file.relative_to(box.project).as_posix())
        for staged in (box.baseline["staged"], staged_after):
            paths |= {p for p, source in staged.items() if source == file}
    readers = _readers(box, {**box.baseline["staged"], **staged_after}, paths)
    targets = box.baseline["bake"]["target"]
    return {image for image in box.baseline["tags"] if _closure(targets, image) & readers}


# -- edits ---------------------------------------------------------------------------------------

EDITS = ("append", "flip", "truncate", "chmod", "add-sibling")


def _parsed_by_the_planner(box: Sandbox, file: Path) -> bool:
    """Files tf2aif itself parses (manifest, plug-ins, recipes) only get edits that keep them
    valid: a comment, a mode, a file next to them."""
    return (
        file == box.manifest
        or file.is_relative_to(box.recipes)
        or (file.is_relative_to(box.project / "app") and file.suffix == ".py")
    )


def edit(box: Sandbox, file: Path, kind: str, position: int = 0) -> tuple[list[Path], callable]:
    """Apply one edit; return (the files it touched, a function that undoes it)."""
    if kind in ("flip", "truncate") and _parsed_by_the_planner(box, file):
        kind = "append"
    data, mode = file.read_bytes(), file.stat().st_mode

    def restore():
        file.write_bytes(data)
        file.chmod(mode)

    if kind == "append":
        file.write_bytes(data + b"\n# edited\n")
    elif kind == "flip" and data:
        i = position % len(data)
        file.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    elif kind in ("flip", "truncate"):
        file.write_bytes(data[: len(data) // 2] if data else b"x")
    elif kind == "chmod":
        file.chmod(mode ^ (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    else:
        added = file.parent / ADDED
        added.write_text("a new file\n")
        return [added], added.unlink
    return [file], restore


def check_edit(box: Sandbox, file: Path, kind: str, position: int = 0) -> None:
    touched, undo = edit(box, file, kind, position)
    try:
        after = box.plan(reload_recipes=file.is_relative_to(box.recipes))
        # only a new file can change what is staged
        staged_after = staged_files(after) if touched[0] != file else {}
    finally:
        undo()
    before = box.baseline["tags"]
    tags = _tags(after)
    moved = {name for name in before if tags[name][0] != before[name][0]}
    expected = expected_moves(box, touched, staged_after)
    where = f"{kind} {touched[0].relative_to(box.project.parent)}"
    assert moved == expected, f"{where}: moved {sorted(moved)}, expected {sorted(expected)}"
    for name in before:  # the human tags stay; only the content tag moves
        assert tags[name][1:] == before[name][1:], where


def all_files(box: Sandbox) -> list[Path]:
    return [*box.repo_files(), *box.project_files()]


# -- the walks -----------------------------------------------------------------------------------


@pytest.mark.fuzz
@HYPOTHESIS
@given(data=st.data())
def test_an_edit_moves_exactly_the_images_whose_graph_reads_the_file(sandbox, data):
    file = data.draw(st.sampled_from(all_files(sandbox)), label="file")
    kind = data.draw(st.sampled_from(EDITS), label="edit")
    check_edit(sandbox, file, kind, data.draw(st.integers(0, 1 << 20), label="position"))


def test_every_file_walked_moves_exactly_its_readers(sandbox):
    files = all_files(sandbox)
    assert len(files) > 150  # the whole package, every base folder and recipe, the project
    for file in files:
        check_edit(sandbox, file, "append")
    assert _tags(sandbox.plan()) == sandbox.baseline["tags"]  # undone: the same tags again


def test_the_walk_sees_every_kind_of_reader(sandbox):
    """The oracle is not vacuous: toolchain, runtime base, shared install script, tf2aif code,
    plug-ins and model each move a different, non-empty set of images."""
    box = sandbox
    serves = {s.name for s in box.baseline["plan"].serves}
    staged = box.baseline["staged"]
    cases = {
        box.base_images / "convert-tf" / "requirements.txt": serves - {"serve-alveo-vitis-ai-int8"},
        box.base_images / "convert-vitis-ai" / "Dockerfile": {"serve-alveo-vitis-ai-int8"},
        box.base_images / "serve-openvino" / "requirements.txt": {"serve-cpu-openvino-fp32"},
        box.base_images / "common" / "install.sh": set(box.baseline["tags"]),
        box.base_images / "bench-client" / "requirements.txt": {"client-bench"},
        box.package / "image" / "server" / "app.py": serves | {"client-bench"},
        box.package / "bench" / "runner.py": {"client-bench"},
        box.package / "pipeline" / "dockerfiles" / "client.Dockerfile": {"client-bench"},
        box.project / "app" / "processing.py": serves,
        box.project / "models" / "digits" / "saved_model.pb": serves,
        box.base_images / "serve-tf" / "README.md": set(),
        box.recipes / "tflite" / "recipe.yaml": set(),
        box.manifest: set(),
        box.project / "README.md": set(),
    }
    for file, readers in cases.items():
        assert expected_moves(box, [file], staged) == readers, file
        check_edit(box, file, "append")
        check_edit(box, file, "chmod")  # COPY keeps the executable bit


def test_what_no_target_reads_moves_no_tag(sandbox):
    box = sandbox
    untouched = [
        box.project / "README.md",
        box.project / BUILD_DIR / "artifacts" / "convert-tflite-fp32" / "model.tflite",
        box.project / "tf2aif-record.json",
        box.project / "app" / "__pycache__" / "processing.cpython-311.pyc",
        box.project / "models" / "digits" / "__pycache__" / "x.pyc",
        box.package / "image" / "server" / "__pycache__" / "app.cpython-311.pyc",
        *box.base_images.glob("*/README.md"),
        box.base_images / "sbom-scanner" / "scan.py",  # not a base of any image
    ]
    for file in untouched:
        existed = file.exists()
        old = file.read_bytes() if existed else None
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes((old or b"") + b"\nedited\n")
    try:
        assert _tags(box.plan()) == box.baseline["tags"]
    finally:
        for file in untouched:
            if file.name != "README.md" and not file.is_relative_to(box.base_images):
                file.unlink()
        shutil.copytree(REPO / "base_images", box.base_images, dirs_exist_ok=True)
        (box.project / "README.md").write_text("the demo\n")
    # a semantic recipe change is seen through the graph: the labels it gives its images
    recipe = box.recipes / "openvino" / "recipe.yaml"
    text = recipe.read_text()
    data = yaml.safe_load(text)
    data.setdefault("labels", {})["com.example.team"] = "vision"
    recipe.write_text(yaml.safe_dump(data))
    try:
        tags = _tags(box.plan())
    finally:
        recipe.write_text(text)
    moved = {n for n in tags if tags[n] != box.baseline["tags"][n]}
    assert moved == {"serve-cpu-openvino-fp32"}


# -- the graph itself ----------------------------------------------------------------------------

INPUT_MUTATIONS = ("arg", "label", "platform", "stage", "annotation", "unknown-field")
OUTPUT_MUTATIONS = ("tag", "output", "cache", "digest-label", "description")


@pytest.mark.fuzz
@HYPOTHESIS
@given(data=st.data())
def test_any_input_of_a_target_moves_exactly_the_images_built_from_it(sandbox, data):
    graph = copy.deepcopy(sandbox.baseline["bake"])
    targets = graph["target"]
    name = data.draw(st.sampled_from(sorted(targets)), label="target")
    kind = data.draw(st.sampled_from(INPUT_MUTATIONS + OUTPUT_MUTATIONS), label="mutation")
    text = data.draw(st.text(min_size=1, max_size=20), label="value")
    target = targets[name]
    if kind == "arg":
        target.setdefault("args", {})["FUZZ_ARG"] = text
    elif kind == "label":
        target.setdefault("labels", {})["com.example.fuzz"] = text
    elif kind == "platform":
        target["platforms"] = [*target.get("platforms", ()), f"linux/{text}"]
    elif kind == "stage":
        target["target"] = text
    elif kind == "annotation":
        target["annotations"] = [*target.get("annotations", ()), f"index:com.example.x={text}"]
    elif kind == "unknown-field":
        target["shm-size"] = text
    elif kind == "tag":
        target["tags"] = [*target.get("tags", ()), f"example.com/x:{text}"]
    elif kind == "output":
        target["output"] = [f"type=local,dest={text}"]
    elif kind == "cache":
        target["cache-to"] = [f"type=registry,ref=example.com/c:{text}"]
    elif kind == "digest-label":
        key = data.draw(st.sampled_from(sorted(NOT_INPUT_LABELS)), label="label")
        target.setdefault("labels", {})[key] = text
        target["annotations"] = [*target.get("annotations", ()), f"index:{key}={text}"]
    else:
        target["description"] = text
    box = sandbox
    images = sorted(box.baseline["tags"])
    kwargs = {"root": box.project, "staged": box.baseline["staged"]}
    if "digests" not in box.baseline:
        box.baseline["digests"] = image_digests(box.baseline["bake"], images, **kwargs)
    before = box.baseline["digests"]
    after = image_digests(graph, images, **kwargs)
    moved = {i for i in images if before[i] != after[i]}
    reading = {i for i in images if name in _closure(targets, i)}
    assert moved == (reading if kind in INPUT_MUTATIONS else set()), (name, kind)


def test_tags_and_labels_carry_the_digest_of_the_emitted_graph(sandbox):
    box = sandbox
    plan = box.baseline["plan"]
    graph = bake_dict(plan)
    for image in (*plan.serves, plan.client):
        content = image.labels[CONTENT_DIGEST_LABEL]
        assert image.tags[0] == f"{image.tags[1]}-{content[7:19]}"
        assert image.labels["org.opencontainers.image.version"] == content[7:19]
        assert image_digest(graph, image.name, root=box.project, staged=box.baseline["staged"]) == (
            content
        )


def test_the_written_build_folder_digests_to_the_same_tags(sandbox):
    """What sharded builds and `bake --changed` do: read the bake file and the files on disk."""
    box = sandbox
    plan = box.baseline["plan"]
    bake_file = write_build_dir(plan, bake_json(plan))
    try:
        written = read_bake(bake_file)
        names = sorted(box.baseline["tags"])
        on_disk = image_digests(written, names, root=box.project)
        assert {n: d[7:19] for n, d in on_disk.items()} == {
            n: box.baseline["tags"][n][0].rsplit("-", 1)[1] for n in names
        }
        assert (box.project / BAKE_FILE).is_file()
        check_content_tags(plan.serves, written, box.project)  # what `bake --changed` checks
        # a build folder that no longer matches the plan is refused, naming the images
        append_to = box.project / ".tf2aif" / "context" / "serve" / "serve.Dockerfile"
        append_to.write_text(append_to.read_text() + "# edited after planning\n")
        with pytest.raises(PlanError, match="no longer matches the plan for serve-"):
            check_content_tags(plan.serves, written, box.project)
    finally:
        shutil.rmtree(box.project / BUILD_DIR)


def test_the_same_inputs_give_the_same_tags_in_another_checkout(tmp_path, monkeypatch):
    """No absolute path, file time or owner enters a digest."""
    first, second = make_sandbox(tmp_path / "one"), make_sandbox(tmp_path / "elsewhere" / "two")
    for index, file in enumerate(all_files(second)):
        os.utime(file, (1_000_000 + index, 2_000_000 + index))
    first.patch(monkeypatch)
    tags = _tags(first.plan())
    second.patch(monkeypatch)
    assert _tags(second.plan()) == tags


def test_a_dockerignore_in_the_model_folder_is_respected(sandbox):
    box = sandbox
    model = box.project / "models" / "digits"
    (model / ".dockerignore").write_text("# not part of the model\nNOTES.md\n")
    try:
        with_ignore = _tags(box.plan())
        assert with_ignore != box.baseline["tags"]  # the build reads the ignore file itself
        (model / "NOTES.md").write_text("how it was trained\n")
        assert _tags(box.plan()) == with_ignore
        (model / "extra.bin").write_bytes(b"read by the conversion")
        assert _tags(box.plan()) != with_ignore
    finally:
        for name in (".dockerignore", "NOTES.md", "extra.bin"):
            (model / name).unlink(missing_ok=True)


def test_links_that_loop_or_point_nowhere_are_errors(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    graph = {
        "target": {
            "a": {"context": ".", "contexts": {"x": "target:b"}},
            "b": {"context": ".", "contexts": {"x": "target:a"}},
            "c": {"context": ".", "contexts": {"x": "target:gone"}},
            "d": {"context": "missing"},
            "e": {"context": ".", "dockerfile": "nope.Dockerfile"},
        }
    }
    with pytest.raises(DigestError, match="link in a loop: a -> b -> a"):
        image_digest(graph, "a", root=tmp_path)
    with pytest.raises(DigestError, match="'gone' is not in the bake file \\(linked from c\\)"):
        image_digest(graph, "c", root=tmp_path)
    with pytest.raises(DigestError, match="d: build context missing does not exist"):
        image_digest(graph, "d", root=tmp_path)
    with pytest.raises(DigestError, match="e: dockerfile: nope.Dockerfile does not exist"):
        image_digest(graph, "e", root=tmp_path)


def test_remote_contexts_count_by_their_reference(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM base\n")

    def digest(ref: str) -> str:
        graph = {"target": {"t": {"context": ".", "contexts": {"base": ref}}}}
        return image_digest(graph, "t", root=tmp_path)

    pinned = "docker-image://python@sha256:" + "a" * 64
    assert digest(pinned) == digest(pinned)
    assert digest(pinned) != digest("docker-image://python@sha256:" + "b" * 64)
    assert digest("docker-image://python:3.11") != digest("docker-image://python:3.12")

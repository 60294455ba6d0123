"""Generated input files, from raw bytes to mutations of valid ones, through every loader.

The invariant, for every input: the command exits 0, or exits 1 with an error that names the file;
never a traceback (an exception other than Tf2aifError fails the test), and each case within a
bound of CPU time and of growth of the process's peak memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import resource
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.main import main
from tf2aif.errors import Tf2aifError
from tf2aif.lock.lockfile import load_lock
from tf2aif.pipeline.record import read_record
from tf2aif.pipeline.yamlfile import load_yaml
from tf2aif.place.inputs import load_apps, load_cluster, load_profiles

from projects import BASIC, write_project

pytestmark = pytest.mark.fuzz

# CPU seconds, not wall time: a shared machine can stall any process for seconds, while an
# unbounded input (an alias bomb read naively) costs minutes of CPU and gigabytes.
SECONDS_PER_CASE = 10.0
RSS_GROWTH_MAX_KIB = 100 * 1024  # per case; a naive alias bomb takes gigabytes
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "placement"

# -- what hostile YAML is made of ----------------------------------------------------------

SNIPPETS = [
    "!!python/object:os.system x",
    "!custom value",
    "!!binary AAEC",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!timestamp 2026-01-01",
    "2026-01-01",
    "&a [*a]",
    "&b {k: *b}",
    "*undefined",
    "{<<: {a: 1}}",
    "{1: 2}",
    "{[1, 2]: 3}",
    "{? {a: 1} : 2}",
    "{null: x, true: y}",
    ".nan",
    "-.inf",
    ".Inf",
    "1e400",
    "-1e-400",
    "9" * 5000,
    "0x" + "f" * 200,
    "1:20:30",
    "0o777",
    "~",
    "''",
    '"\\0"',
    '"\\x1b[31m"',
    '"a\\nb"',
    '"trailing\\n"',
    '"\\uD800"',
    "[" * 80 + "]" * 80,
    "{a: " * 40 + "1" + "}" * 40,
    "- - - - - - - - x",
    "|\n  block\n  text",
    ">-\n  folded",
    "'unterminated",
    "[unclosed",
    "{a: 1, a: 2}",
    "%YAML 1.2",
    "--- x",
    "...",
    "a: b: c",
    "\t- tab",
]


def _scalar_text() -> st.SearchStrategy[str]:
    plain = st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.booleans().map(lambda b: str(b).lower()),
        st.text(max_size=40).map(json.dumps),  # any unicode, quoted
        st.text(alphabet=st.characters(codec="utf-8"), max_size=20),  # any unicode, raw
    )
    return st.one_of(plain, st.sampled_from(SNIPPETS))


VALUES = st.recursive(
    _scalar_text(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.text(max_size=8).map(json.dumps), inner, max_size=4).map(
            lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=12,
)


@st.composite
def mutated_text(draw, valid: str) -> bytes:
    """A valid document with one to three lines changed: a value replaced, a key added, bytes spliced."""
    lines = valid.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["value", "key", "line", "delete"]))
        key, sep, _ = lines[i].partition(": ")
        if kind == "value" and sep:
            lines[i] = f"{key}: {draw(VALUES)}"
        elif kind == "key":
            indent = len(lines[i]) - len(lines[i].lstrip())
            lines.insert(
                i,
                " " * indent
                + f"{draw(st.text(min_size=1, max_size=10).map(json.dumps))}: {draw(VALUES)}",
            )
        elif kind == "line":
            lines[i] = draw(st.sampled_from(SNIPPETS))
        elif len(lines) > 1:
            del lines[i]
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]
    return data


# -- the invariant ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="tf2aif-fuzz-") as folder:
        root = Path(folder)
        write_project(root, BASIC)
        for source in EXAMPLES.iterdir():
            if source.is_file():
                (root / source.name).write_bytes(source.read_bytes())
        # once per process, outside any measured case: what validate and plan load whatever the
        # input (the model inspection's TensorFlow import, hundreds of MiB) is not a case's growth
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main(["plan", str(root / "tf2aif.yaml")])
        yield root


@contextlib.contextmanager
def bounded(what: object):
    """One case: at most SECONDS_PER_CASE of CPU, and the process's peak RSS raised by at most
    RSS_GROWTH_MAX_KIB (the peak is a high-water mark, so any growth is this case's doing)."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    yield
    elapsed = time.process_time() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert elapsed < SECONDS_PER_CASE, f"{what} took {elapsed:.1f}s of CPU"
    assert grown < RSS_GROWTH_MAX_KIB, f"{what} raised the peak RSS by {grown / 1024:.0f} MiB"


def run_cli(argv: list[str], file: Path) -> None:
    """rc 0, or rc 1 with an error that names `file`; an exception escaping main() fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with bounded(argv), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    text = err.getvalue()
    assert code in (0, 1), f"exit {code}: {text}"
    if code == 1:
        assert text.startswith("error: ") and str(file) in text, text
        assert "Traceback" not in text


def run_loader(load, file: Path) -> None:
    with bounded(load.__name__):
        try:
            load(file)
        except Tf2aifError as exc:
            assert str(file) in str(exc), str(exc)


# -- the loader itself, on any text ----------------------------------------------------------


LOCATED = re.compile(r"^f(:\d+:\d+)?: ")


@given(st.one_of(st.text(max_size=300), st.lists(VALUES, max_size=6).map("\n".join)))
def test_any_text_parses_or_gives_located_issues(text):
    loaded = load_yaml(text, "f")
    for issue in loaded.issues:
        assert LOCATED.match(str(issue)), str(issue)
        lines = len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))  # YAML's line breaks
        assert issue.location.line is None or 1 <= issue.location.line <= lines
    json.dumps(loaded.data, allow_nan=False)  # plain JSON values only: no tags, no NaN, no bytes


# -- the manifest through the command line ---------------------------------------------------


@given(data=mutated_text(BASIC), command=st.sampled_from(["validate", "plan"]))
def test_mutated_manifest_through_the_cli(workdir, data, command):
    file = workdir / "tf2aif.yaml"
    file.write_bytes(data)
    run_cli([command, str(file)], file)


@given(data=st.binary(max_size=400))
def test_raw_bytes_as_manifest(workdir, data):
    file = workdir / "bytes.yaml"
    file.write_bytes(data)
    run_cli(["validate", str(file)], file)


@given(
    data=mutated_text(
        '"tensorflow/tensorflow:2.21.0": "mirror.example.com/tf:2.21.0"\n"python:3.11-slim": localbase/python:3.11\n'
    )
)
def test_mutated_vendor_map_through_plan(workdir, data):
    write_project(workdir, BASIC)
    file = workdir / "vendor.yaml"
    file.write_bytes(data)
    run_cli(["plan", str(workdir / "tf2aif.yaml"), "--vendor-map", str(file)], file)


# -- placement inputs, build record, lock file -----------------------------------------------


@given(data=mutated_text((EXAMPLES / "cluster.yaml").read_text()))
def test_mutated_cluster(workdir, data):
    file = workdir / "fuzz-cluster.yaml"
    file.write_bytes(data)
    run_loader(load_cluster, file)


@given(data=mutated_text((EXAMPLES / "apps.yaml").read_text()))
def test_mutated_apps(workdir, data):
    file = workdir / "fuzz-apps.yaml"
    file.write_bytes(data)
    run_loader(load_apps, file)


@given(data=mutated_text((EXAMPLES / "digits.profiles.json").read_text()))
def test_mutated_profiles(workdir, data):
    file = workdir / "fuzz.profiles.json"
    file.write_bytes(data)
    run_loader(load_profiles, file)


@given(data=mutated_text((EXAMPLES / "digits.record.json").read_text()))
def test_mutated_record_through_deploy(workdir, data):
    file = workdir / "fuzz-record.json"
    file.write_bytes(data)
    run_loader(read_record, file)
    run_cli(["deploy", "k8s", "--record", str(file), "--print"], file)


LOCK = """\
format: 1
manifest: tf2aif.yaml
files:
  tf2aif.yaml: sha256:0000000000000000000000000000000000000000000000000000000000000000
images:
  tensorflow/tensorflow:2.21.0:
    source: tensorflow/tensorflow:2.21.0
    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
    platforms: [linux/amd64, linux/arm64]
tools:
  convert-tf:
    source: base_images/convert-tf/requirements.txt
    packages: {numpy: 2.1.0}
"""


@given(data=mutated_text(LOCK))
def test_mutated_lock(workdir, data):
    file = workdir / "fuzz.lock"
    file.write_bytes(data)
    run_loader(load_lock, file)

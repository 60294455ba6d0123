"""Every column of `tf2aif bench` results holds what its header says, for every kind of target:
platform, runtime and precision come from a variant id or stay empty, never from pieces of a
URL or an image reference."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.bench.result import VARIANT_ID, Subject, validate_result
from tf2aif.cli.main import main

FAST = ["--warmup", "0.2", "--window", "0.3", "--max-duration", "1", "--quiet"]


def bench_files(tmp_path, *argv) -> tuple[dict, list[dict]]:
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    assert main(["bench", *argv, *FAST, "--json", str(out_json), "--csv", str(out_csv)]) == 0
    data = json.loads(out_json.read_text())
    validate_result(data)
    return data, list(csv.DictReader(io.StringIO(out_csv.read_text())))


def test_an_unlabelled_url_leaves_platform_runtime_and_precision_empty(start_toy, tmp_path):
    url = start_toy()
    data, rows = bench_files(tmp_path, "--url", url)
    (run,) = data["runs"]
    assert (run["platform"], run["runtime"], run["precision"]) == (None, None, None)
    assert (run["target_kind"], run["target"], run["model"]) == ("url", url, "toy")
    (row,) = rows
    assert (row["platform"], row["runtime"], row["precision"]) == ("", "", "")
    assert (row["target_kind"], row["target"], row["variant"]) == ("url", url, url)
    assert int(row["requests"]) == run["requests"] and row["model"] == "toy"


def test_a_labelled_url_reports_its_variant(start_toy, tmp_path):
    url = start_toy()
    _, rows = bench_files(tmp_path, "--url", url, "--variant", "gpu/tensorrt/fp16")
    (row,) = rows
    assert (row["platform"], row["runtime"], row["precision"]) == ("gpu", "tensorrt", "fp16")
    assert row["target"] == url and row["variant"] == "gpu/tensorrt/fp16"


@pytest.mark.parametrize(
    "label",
    [
        "http://127.0.0.1:8000",  # a URL: three pieces once split on "/"
        "127.0.0.1:5000/tf2aif/digits:tflite-fp32",  # an image reference
        "registry.example.com/team/model@sha256:" + "a" * 64,
        "cpu/tflite/FP32",
        "my server",
    ],
)
def test_free_labels_are_not_split(label):
    subject = Subject.from_variant(label, model="m", target_kind="image", target=label)
    assert (subject.platform, subject.runtime, subject.precision) == (None, None, None)


@pytest.mark.fuzz
@given(st.text(alphabet="abcp0123:/.-@fint_", max_size=40))
def test_platform_runtime_precision_are_a_variant_ids_pieces_or_nothing(label):
    subject = Subject.from_variant(label, model="m", target_kind="url", target=label)
    pieces = (subject.platform, subject.runtime, subject.precision)
    if VARIANT_ID.fullmatch(label):
        assert "/".join(pieces) == label
        assert subject.precision in ("fp32", "fp16", "int8")
    else:
        assert pieces == (None, None, None)


def test_profile_without_a_file_prints_only_json(start_toy, capsys):
    url = start_toy(service_ms=1)
    argv = ["bench", "--url", url, "--variant", "cpu/toy/fp32", "--profile", "--profile-requests",
            "20", "--warmup", "0.1", "--window", "0.2", "--max-duration", "0.6"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["schema"] == "tf2aif-bench-profile"
    assert document["profiles"][0]["variant"] == "cpu/toy/fp32"
    assert captured.err  # the progress notes and the headline went to stderr

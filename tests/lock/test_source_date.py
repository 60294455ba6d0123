"""SOURCE_DATE_EPOCH: where it comes from, and how it reaches buildx and the record."""

from __future__ import annotations

import os
import subprocess

import pytest

from tf2aif.cli.main import main
from tf2aif.errors import Tf2aifError
from tf2aif.pipeline.build import BuildOptions, _serve_output, build_env
from tf2aif.pipeline.publish import PublishTarget, staging_set_values
from tf2aif.pipeline.record import make_record
from tf2aif.pipeline.sourcedate import resolve_source_date

from projects import BASIC, write_project


def _git(root, *args, env=None):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


@pytest.fixture
def committed(tmp_path):
    """A repository whose only commit was made at 1700000123."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "tf2aif.yaml").write_text("name: x\n")
    _git(tmp_path, "add", "tf2aif.yaml")
    stamp = "1700000123 +0000"
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    _git(tmp_path, "commit", "-q", "-m", "model", env=env)
    return tmp_path


def test_the_last_commit_dates_the_images(committed):
    date = resolve_source_date(committed, environ={})
    assert date.epoch == "1700000123"
    assert date.origin.startswith("git ")


def test_flag_then_environment_then_git(committed):
    assert resolve_source_date(committed, "42", environ={"SOURCE_DATE_EPOCH": "7"}).epoch == "42"
    assert resolve_source_date(committed, environ={"SOURCE_DATE_EPOCH": "7"}).epoch == "7"
    off = resolve_source_date(committed, "off", environ={"SOURCE_DATE_EPOCH": "7"})
    assert off.epoch is None and "off" in off.origin


def test_outside_git_there_is_none(tmp_path):
    date = resolve_source_date(tmp_path, environ={})
    assert date.epoch is None and "no git commit" in date.origin


@pytest.mark.parametrize("bad", ["yesterday", "-5", "1.5"])
def test_a_bad_value_says_what_was_expected(tmp_path, bad):
    with pytest.raises(Tf2aifError, match="whole seconds since 1970"):
        resolve_source_date(tmp_path, bad, environ={})


def test_buildx_gets_it_in_its_environment_and_the_exporter_clamps_file_times():
    pinned = BuildOptions(source_date_epoch="1700000123", push=True, rewrite_timestamps=True)
    assert build_env(pinned, {"PATH": "/bin"}) == {
        "PATH": "/bin",
        "SOURCE_DATE_EPOCH": "1700000123",
    }
    # a stray value in the caller's environment never leaks in when it is off
    assert "SOURCE_DATE_EPOCH" not in build_env(BuildOptions(), {"SOURCE_DATE_EPOCH": "9"})
    assert _serve_output(pinned) == "type=image,push=true,rewrite-timestamp=true"
    # the epoch alone pins the config times; file times only when the driver can rewrite them
    assert _serve_output(BuildOptions(push=True, source_date_epoch="1")) == "type=image,push=true"
    clamped = BuildOptions(source_date_epoch="1", rewrite_timestamps=True)
    assert _serve_output(clamped) == "type=docker,rewrite-timestamp=true"
    assert _serve_output(BuildOptions(load=False)) == "type=cacheonly"


def test_staging_pushes_use_the_same_output():
    target = PublishTarget(name="serve-a", repository="r.example/x", final_tags=("r.example/x:a",))
    values = staging_set_values(
        [target], "1-2", output="type=image,push=true,rewrite-timestamp=true"
    )
    assert values[1] == "serve-a.output=type=image,push=true,rewrite-timestamp=true"


def test_bake_flag_reaches_the_options_and_the_record(tmp_path, monkeypatch):
    seen = {}

    def fake_run(plan, options, args, buildx):
        seen["plan"], seen["options"] = plan, options
        return ()

    monkeypatch.setattr("tf2aif.pipeline.build.check_tools", lambda: "buildx v0")
    monkeypatch.setattr("tf2aif.cli.pipeline._run_and_record", fake_run)
    file = write_project(tmp_path, BASIC)
    for driver, rewrite in (("docker", False), ("docker-container", True)):
        monkeypatch.setattr("tf2aif.pipeline.build.builder_driver", lambda builder, d=driver: d)
        assert main(["bake", str(file), "--source-date-epoch", "1234"]) == 0
        assert seen["options"].source_date_epoch == "1234"
        assert seen["options"].rewrite_timestamps is rewrite
    record = make_record(seen["plan"], [], fidelity={}, tools={}, source_date_epoch="1234")
    assert record.to_dict()["source_date_epoch"] == "1234"

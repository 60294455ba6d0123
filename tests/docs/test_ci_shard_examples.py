"""The sharded CI examples (examples/ci/) against the real CLI: every `tf2aif` command in them
parses, the matrix the plan job prints has every field the jobs read, every shard it lists is
one `tf2aif ci shard` accepts, and GitLab's child pipeline, written by the real command and
merged with the template it extends, runs a job per shard and a release that needs them all."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tf2aif.cli.main import build_parser, main
from tf2aif.cli.pipeline import load_plan
from tf2aif.shards.matrix import find_shard, plan_shards

from projects import BASIC, write_project

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
GITHUB = EXAMPLES / "github-actions-shards.yml"
GITLAB = EXAMPLES / "gitlab-ci-shards.yml"
TEMPLATE = EXAMPLES / "tf2aif-shards.yml"
GITOPS = Path(__file__).resolve().parents[2] / "docs" / "gitops.md"


def commands(script: str) -> list[list[str]]:
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip().removeprefix("$ ").removeprefix("- ")
        if line.startswith("tf2aif "):
            words = shlex.split(line, comments=True)
            for stop in (">", "|", "&&", ";"):
                if stop in words:
                    words = words[: words.index(stop)]
            out.append(words)
    return out


def parse(words: list[str]):
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(words[1:])
    except SystemExit:
        pytest.fail(f"`{shlex.join(words)}` does not parse with the tf2aif CLI")
    assert not extra, f"`{shlex.join(words)}`: unknown arguments {extra}"
    return args


def workflow() -> dict:
    return yaml.safe_load(GITHUB.read_text())


def job_script(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


@pytest.fixture
def manifest(tmp_path) -> Path:
    return write_project(tmp_path, BASIC)


def test_github_jobs_flow_from_the_plan_through_the_shards_to_one_release() -> None:
    jobs = workflow()["jobs"]
    assert list(jobs) == ["plan", "convert", "build", "release"]
    assert jobs["plan"]["outputs"]["matrix"] == "${{ steps.matrix.outputs.matrix }}"
    for stage in ("convert", "build"):
        strategy = jobs[stage]["strategy"]
        assert strategy["matrix"] == f"${{{{ fromJSON(needs.plan.outputs.matrix).{stage} }}}}"
        assert strategy["fail-fast"] is False  # every shard's record reaches the release
        assert jobs[stage]["runs-on"] == "${{ matrix.runner }}"
    assert jobs["build"]["needs"] == ["plan", "convert"]
    assert jobs["release"]["needs"] == ["plan", "convert", "build"]
    assert jobs["release"]["if"] == "${{ !cancelled() }}"  # refuses, but records, on failure
    download = next(s for s in jobs["release"]["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"] == {"pattern": "shard-*", "path": "shards/", "merge-multiple": True}


def test_github_commands_parse_and_the_matrix_has_what_the_jobs_read(
    manifest, tmp_path, monkeypatch, capsys
) -> None:
    jobs = workflow()["jobs"]
    plan_cmd = commands(job_script(jobs["plan"]))
    assert [c[:3] for c in plan_cmd] == [["tf2aif", "ci", "matrix"]]
    output = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert main([*plan_cmd[0][1:], str(manifest)]) == 0
    capsys.readouterr()
    matrix = json.loads(output.read_text().removeprefix("matrix="))
    plan = load_plan(parse(["tf2aif", "plan", str(manifest)]), env={})
    shards = plan_shards(plan)
    for stage in ("convert", "build"):
        text = yaml.safe_dump(jobs[stage])
        fields = set(re.findall(r"matrix\.(\w+)", text))
        rows = matrix[stage]["include"]
        assert rows, stage
        for row in rows:
            assert fields <= set(row), (stage, fields - set(row))
            assert row["runner"] in ("ubuntu-24.04", "ubuntu-24.04-arm")
            for words in commands(job_script(jobs[stage])):
                words = [w.replace("${{ matrix.shard }}", row["shard"]) for w in words]
                args = parse(words)
                assert args.ci_command == "shard" and args.cache == "registry"
                assert find_shard(shards, args.shard).name == row["shard"]
    release = commands(job_script(jobs["release"]))
    assert [c[:2] for c in release] == [["tf2aif", "release"], ["tf2aif", "deploy"]]
    for words in release:
        parse(words)


def _extends(job: dict, template: dict) -> dict:
    """GitLab's `extends`, resolved (hidden jobs may extend others)."""
    parent = job.get("extends")
    if not parent:
        return job
    merged = dict(_extends(template[parent], template))
    merged.update({k: v for k, v in job.items() if k != "extends"})
    return merged


def test_gitlab_child_pipeline_runs_a_job_per_shard_then_the_release(manifest, capsys) -> None:
    parent = yaml.safe_load(GITLAB.read_text())
    [words] = commands("\n".join(parent["shards"]["script"]))
    assert words[:5] == ["tf2aif", "ci", "matrix", "--format", "gitlab"]
    assert parent["images"]["trigger"]["include"] == [{"artifact": "shards.yml", "job": "shards"}]
    assert parent["images"]["trigger"]["strategy"] == "depend"
    assert main([*words[1:], str(manifest)]) == 0
    child = yaml.safe_load(capsys.readouterr().out)  # JSON is YAML: what GitLab reads
    assert child["include"] == [{"local": ".gitlab/tf2aif-shards.yml"}]
    assert child["stages"] == ["convert", "build", "release"]
    template = yaml.safe_load(TEMPLATE.read_text())
    plan = load_plan(parse(["tf2aif", "plan", str(manifest)]), env={})
    shards = plan_shards(plan)
    jobs = {k: _extends(v, template) for k, v in child.items() if k not in ("include", "stages")}
    assert set(jobs) == {*shards.names(), "tf2aif-release"}
    for name in shards.names():
        job = jobs[name]
        assert job["tags"] == [find_shard(shards, name).runner]
        assert job["artifacts"]["when"] == "always"
        variables = {"$TF2AIF_SHARD": name, "$TF2AIF_SHARD_ARGS": ""}
        [script] = commands("\n".join(job["script"]))
        words = [variables.get(w, w) for w in script if variables.get(w, w)]
        assert parse(words).shard == name
        assert "docker buildx create" in "\n".join(job["before_script"])
    release = jobs["tf2aif-release"]
    assert release["when"] == "always"
    assert release["needs"] == [{"job": n, "artifacts": True} for n in shards.names()]
    for words in commands("\n".join(release["script"])):
        parse([w for w in words if w != "$TF2AIF_SHARD_ARGS"])


def test_gitops_md_shows_the_sharded_commands() -> None:
    text = GITOPS.read_text()
    blocks = re.findall(r"```(?:console|sh|bash|shell)\n(.*?)```", text, re.S)
    found = [c for block in blocks for c in commands(block)]
    assert {"ci", "release"} <= {c[1] for c in found}
    for words in found:
        parse([w for w in words if not w.startswith("<")])
    assert "examples/ci/github-actions-shards.yml" in text
    assert "examples/ci/gitlab-ci-shards.yml" in text

"""The CI examples and docs/gitops.md: valid YAML, the steps the docs promise, and every `tf2aif`
command they run parses with the real CLI parser (a renamed flag breaks this test)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tf2aif.cli.main import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
GITHUB = DOCS / "ci" / "github-actions.yml"
GITLAB = DOCS / "ci" / "gitlab-ci.yml"
GITOPS = DOCS / "gitops.md"


def tf2aif_commands(script: str) -> list[list[str]]:
    """Every `tf2aif ...` command line in a shell script (continuations joined, redirects cut)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip().removeprefix("$ ").removeprefix("- ")
        if not line.startswith("tf2aif "):
            continue
        words = shlex.split(line, comments=True)
        for stop in (">", "|", "&&", ";"):
            if stop in words:
                words = words[: words.index(stop)]
        commands.append(words)
    return commands


def check_parses(words: list[str]) -> None:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(words[1:])
    except SystemExit:
        pytest.fail(f"`{shlex.join(words)}` does not parse with the tf2aif CLI")
    # Only arguments after `--` may pass through (to buildx, for `tf2aif bake`).
    passed = words[words.index("--") + 1 :] if "--" in words else []
    unknown = [a for a in extra if a != "--" and a not in passed]
    if unknown or (extra and not getattr(args, "accepts_extra", False)):
        pytest.fail(f"`{shlex.join(words)}` does not parse: unknown arguments {unknown or extra}")
    assert args.command is not None, words


def github_steps() -> list[dict]:
    workflow = yaml.safe_load(GITHUB.read_text())
    return workflow["jobs"]["images"]["steps"]


def gitlab_jobs() -> dict:
    return yaml.safe_load(GITLAB.read_text())


def gitlab_script(job: str) -> str:
    return "\n".join(gitlab_jobs()[job]["script"])


def github_script() -> str:
    return "\n".join(step.get("run", "") for step in github_steps())


def test_github_workflow_uses_the_actions_the_docs_describe() -> None:
    uses = [step["uses"].split("@")[0] for step in github_steps() if "uses" in step]
    assert uses == [
        "actions/checkout",
        "docker/setup-qemu-action",
        "docker/setup-buildx-action",
        "docker/login-action",
        "actions/setup-python",
        "actions/upload-artifact",
    ]
    login = next(s for s in github_steps() if s.get("uses", "").startswith("docker/login-action"))
    assert login["with"]["username"] == "${{ secrets.REGISTRY_USERNAME }}"
    assert login["with"]["password"] == "${{ secrets.REGISTRY_PASSWORD }}"
    assert login["if"] == "github.event_name != 'pull_request'"
    checkout = github_steps()[0]
    assert checkout["with"]["lfs"] is True


def test_github_workflow_runs_check_validate_bake_and_commits_the_record() -> None:
    names = [step["name"] for step in github_steps()]
    order = [
        "Install tf2aif",
        "Inputs match tf2aif.lock",
        "Validate the manifest",
        "Build and publish",
        "Kubernetes manifests from the record",
        "Upload the build record",
        "Commit the build record",
    ]
    assert [n for n in names if n in order] == order
    runs = {step["name"]: step.get("run", "") for step in github_steps()}
    assert runs["Install tf2aif"].startswith("pip install ")
    assert runs["Inputs match tf2aif.lock"].startswith("tf2aif lock --check")
    bake = shlex.split(runs["Build and publish"])
    assert bake[:3] == ["tf2aif", "bake", "--push"]
    assert {"--cache", "registry", "--builder", "tf2aif", "--vendor-map"} <= set(bake)
    assert "git add tf2aif-record.json deploy/k8s" in runs["Commit the build record"]
    assert "[skip ci]" in runs["Commit the build record"]
    workflow = yaml.safe_load(GITHUB.read_text())
    assert workflow["permissions"]["contents"] == "write"
    # `on` is YAML 1.1's boolean True under PyYAML; GitHub reads it as the key "on".
    triggers = workflow.get("on", workflow.get(True))
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch"}


def test_gitlab_pipeline_uses_dind_and_mirrors_the_github_steps() -> None:
    jobs = gitlab_jobs()
    assert jobs["stages"] == ["check", "build", "record"]
    assert jobs[".tf2aif"]["services"] == ["docker:27-dind"]
    assert jobs["variables"]["DOCKER_HOST"] == "tcp://docker:2376"
    images = gitlab_script("images")
    assert "docker login" in images and "$REGISTRY_PASSWORD" in images
    assert "docker buildx create --name tf2aif --driver docker-container" in images
    commands = [" ".join(words[:3]) for words in tf2aif_commands(images)]
    assert commands == [
        "tf2aif lock --check",
        "tf2aif validate",
        "tf2aif bake --push",
        "tf2aif deploy k8s",
    ]
    assert jobs["images"]["artifacts"]["paths"] == ["tf2aif-record*.json", "deploy/k8s/"]
    assert jobs["commit-record"]["needs"] == ["images"]
    assert "git push -o ci.skip" in gitlab_script("commit-record")


def test_both_pipelines_run_the_same_tf2aif_commands() -> None:
    github = [c for c in tf2aif_commands(github_script()) if c[:3] != ["tf2aif", "bake", "--print"]]
    gitlab = tf2aif_commands(gitlab_script("images"))
    assert [c for c in github if c[1] != "plan"] == gitlab


def test_every_tf2aif_command_in_the_examples_parses() -> None:
    scripts = [github_script(), gitlab_script("check"), gitlab_script("images")]
    commands = [c for script in scripts for c in tf2aif_commands(script)]
    assert len(commands) >= 12
    for words in commands:
        check_parses(words)


def test_every_tf2aif_command_in_gitops_md_parses() -> None:
    blocks = re.findall(r"```(?:console|sh|bash|shell)\n(.*?)```", GITOPS.read_text(), re.S)
    commands = [c for block in blocks for c in tf2aif_commands(block)]
    subcommands = {c[1] for c in commands}
    assert {"lock", "validate", "bake", "deploy"} <= subcommands
    for words in commands:
        check_parses(words)


def test_the_extractor_sees_continuations_and_redirects() -> None:
    script = "tf2aif bake --push \\\n  --cache registry > log.txt\n# tf2aif ignored\necho tf2aif no"
    assert tf2aif_commands(script) == [["tf2aif", "bake", "--push", "--cache", "registry"]]


def test_a_misspelled_flag_is_caught() -> None:
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        check_parses(["tf2aif", "bake", "--pushh"])
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        check_parses(["tf2aif", "lock", "--chek"])
    check_parses(["tf2aif", "bake", "--push", "--", "--progress", "plain"])  # buildx's own flag

"""The one exception tree of tf2aif.

    Tf2aifError                 exit code 1 unless a subclass says otherwise
    ├── UsageError              options that contradict each other or would have no effect (exit 2)
    ├── ManifestError           the manifest is invalid (carries every ManifestIssue found)
    ├── RecipeError             a recipe, the platform table or a base image folder is invalid
    ├── PlanError               the matrix cannot be turned into a build graph
    │   └── DigestError         the bake graph cannot be digested (missing target or context, link loop)
    ├── PluginError             a user module (processing, calibration) fails to import or run
    ├── DeployError             Kubernetes manifests cannot be made (unknown arch, no image, bad names)
    ├── BenchError              a benchmark target cannot be started or reached
    ├── ServerError             an image's server cannot serve its artifact (stops start-up)
    ├── ConversionError         a converter failed for a variant
    │   └── FidelityError       a converted artifact broke the manifest's fidelity thresholds
    ├── ToolMissingError        docker / buildx is not installed or not answering (exit 3)
    ├── BuildError              `docker buildx bake` failed; names the targets that failed (exit 3)
    │   └── ReleaseError        shard records do not make a complete release; nothing was tagged
    └── LockError               the lock is missing, out of date, or an image cannot be resolved

    ApiError                    one request to a server failed (HTTP status + reason); not a Tf2aifError

Callers catch `Tf2aifError`; the CLI prints `str(exc)` and exits with `exc.exit_code`.
Exit codes: 0 ok, 1 invalid input, 2 usage, 3 build failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "EXIT_BUILD",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "ApiError",
    "BenchError",
    "BuildError",
    "ConversionError",
    "DeployError",
    "DigestError",
    "FidelityError",
    "LockError",
    "ManifestError",
    "ManifestIssue",
    "PlanError",
    "PluginError",
    "RecipeError",
    "ReleaseError",
    "ServerError",
    "SourceLocation",
    "Tf2aifError",
    "ToolMissingError",
    "UsageError",
    "did_you_mean",
]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_BUILD = 3


@dataclass(frozen=True, kw_only=True)
class SourceLocation:
    """Where something was written: file, 1-based line and column, and field path."""

    file: str
    line: int | None = None
    column: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where


@dataclass(frozen=True, kw_only=True)
class ManifestIssue:
    location: SourceLocation
    message: str

    def __str__(self) -> str:
        field = self.location.path or "(top level)"
        return f"{self.location}: {field}: {self.message}"


class Tf2aifError(Exception):
    exit_code = EXIT_INVALID


class UsageError(Tf2aifError):
    """The command line itself is wrong, beyond what argparse checks (exit 2, as argparse)."""

    exit_code = EXIT_USAGE


class ManifestError(Tf2aifError):
    """Every problem found in one input file (a manifest, cluster, record, lock...), reported together."""

    def __init__(self, issues: Sequence[ManifestIssue], *, file: str = "", what: str = "") -> None:
        self.issues = tuple(issues)
        self.file = file
        noun = "error" if len(self.issues) == 1 else "errors"
        header = f"{len(self.issues)} {noun}" + (f" in this {what}" if what else "")
        header = f"{file}: {header}" if file else header
        super().__init__("\n".join([header, *(f"  {issue}" for issue in self.issues)]))


class RecipeError(Tf2aifError):
    pass


class PlanError(Tf2aifError):
    pass


class DigestError(PlanError):
    """The bake graph cannot be digested (a missing target or context, a link loop)."""


class PluginError(Tf2aifError):
    pass


class DeployError(Tf2aifError):
    """Kubernetes manifests cannot be made from a build record or a placement."""


class BenchError(Tf2aifError):
    """A server to benchmark cannot be started, or stopped answering before it was ready."""


class ServerError(Tf2aifError):
    """The artifact cannot be served (bad artifact, runtime missing, load failed)."""


class ConversionError(Tf2aifError):
    def __init__(self, message: str, *, variant: str = "") -> None:
        self.variant = variant
        super().__init__(f"{variant}: {message}" if variant else message)


class FidelityError(ConversionError):
    pass


class ToolMissingError(Tf2aifError):
    exit_code = EXIT_BUILD


class BuildError(Tf2aifError):
    exit_code = EXIT_BUILD

    def __init__(self, message: str, *, failed: Sequence[str] = (), results: Sequence = ()) -> None:
        self.failed = tuple(failed)
        self.results = tuple(results)  # one build.Result per target, when the build got that far
        super().__init__(message)


class LockError(Tf2aifError):
    """The lock is missing, unreadable, out of date, or an image cannot be resolved."""


class ReleaseError(BuildError):
    """The shard records do not make a complete release of this plan; nothing was tagged."""

    def __init__(self, problems: Sequence[str], *, failed: Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"release refused, no final tag was created or moved:\n{lines}", failed=failed
        )


class ApiError(Exception):
    """One server request failed: answered with `status` and `message`; the server keeps serving.

    Not a Tf2aifError: it ends one request, never a command.
    """

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None):
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {message}")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' when a close match exists, else ''."""
    word, choices = str(word), sorted(set(map(str, choices)))
    if len(word) > 100:
        return ""
    # A case-only or whitespace-only slip ("FP32", "CPU", "tflite\n") is the likeliest meaning.
    folded = next((c for c in choices if c.lower() == word.strip().lower()), None)
    if folded is not None and folded != word:
        return f' (did you mean "{folded}"?)'
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""

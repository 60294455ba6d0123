"""Cluster, application and profile files: YAML or JSON, checked by their JSON Schemas.

Reading (bounded), parsing with positions and the wording of schema errors are the manifest's
own (`tf2aif.yamlfile`), so every input file of tf2aif reports problems the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.errors import ManifestIssue, SourceLocation
from tf2aif.yamlfile import LoadedYaml, load_checked

__all__ = ["Document", "load_document"]

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """A parsed input: its data and where each field was written."""

    loaded: LoadedYaml

    @property
    def file(self) -> str:
        return self.loaded.file

    @property
    def data(self) -> Any:
        return self.loaded.data

    def locate(self, path: Path_, key: bool = False) -> SourceLocation:
        """The location of `path` (scalars at their value, collections at their key)."""
        return self.loaded.location(path, key=key)

    def issue(self, path: Path_, message: str, key: bool = False) -> ManifestIssue:
        return ManifestIssue(location=self.locate(path, key), message=message)


def load_document(path: str | Path, schema_name: str | Callable[[Any], str]) -> Document:
    """Parse `path` (YAML or JSON), validate it against schema/`schema_name`, or raise.

    `schema_name` may be a function of the parsed data, for files of more than one kind.
    """
    return Document(load_checked(path, schema_name))

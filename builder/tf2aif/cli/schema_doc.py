"""The manifest reference in README.md, generated from schema/tf2aif.schema.json.

python -m tf2aif.cli.schema_doc README.md     # rewrite the block between the markers
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tf2aif.pipeline.yamlfile import load_schema

__all__ = ["reference_markdown", "update_file"]

START, END = "<!-- manifest-reference:start -->", "<!-- manifest-reference:end -->"


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    if "$ref" in node:
        target = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(schema: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "")
    if kind == "array" and "items" in node:
        items = _resolve(schema, node["items"])
        inner = (
            " \\| ".join(f"`{v}`" for v in items["enum"])
            if "enum" in items
            else items.get("type", "mapping")
        )
        return f"list of {inner}"
    return {"object": "mapping"}.get(kind, kind)


def _rows(
    schema: Mapping[str, Any], node: Mapping[str, Any], prefix: str, required: set[str]
) -> Iterator[str]:
    for key, child in node.get("properties", {}).items():
        child = _resolve(schema, child)
        path = f"{prefix}{key}"
        need = "yes" if key in required else ""
        default = f"`{child['default']}`" if "default" in child else ""
        text = child.get("description", "")
        if child.get("x-expected") and child.get("x-expected") not in text:
            text = f"{text} ({child['x-expected']})" if text else child["x-expected"]
        yield f"| `{path}` | {_type(schema, child)} | {need} | {default} | {text} |"
        if child.get("type") == "object" and "properties" in child:
            yield from _rows(schema, child, f"{path}.", set(child.get("required", [])))
        items = _resolve(schema, child.get("items", {})) if child.get("type") == "array" else {}
        if items.get("properties"):
            yield from _rows(schema, items, f"{path}[].", set(items.get("required", [])))


def reference_markdown() -> str:
    schema = load_schema("tf2aif.schema.json")
    header = ["| field | type | required | default | meaning |", "|---|---|---|---|---|"]
    return "\n".join([*header, *_rows(schema, schema, "", set(schema.get("required", [])))])


def update_file(path: Path) -> bool:
    """Rewrite the reference block; True if the file changed."""
    text = path.read_text()
    block = f"{START}\n{reference_markdown()}\n{END}"
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = update_file(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
    print("updated" if changed else "up to date")

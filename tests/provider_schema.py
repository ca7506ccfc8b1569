"""The Google provider's published schema, read offline, and a check of
Terraform configuration against it.

`cdktn-provider-google` (PyPI) is generated from the schema that
`terraform providers schema -json` prints for one release of
hashicorp/google, and ships it as a jsii assembly: a JSON description of
every resource, data source and the provider itself, each argument with its
type, whether it is required, and a link to its Terraform name. The package
is never imported (that would start a Node.js runtime): its assembly is read
as data.
"""

import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import hcl2

PACKAGE = "cdktn-provider-google"
# "... {@link https://registry.terraform.io/providers/hashicorp/google/8.7.0/docs/resources/
#  cloud_run_v2_service#template CloudRunV2Service#template}"
_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/google/(?P<version>[\d.]+)/docs"
    r"(?:/(?P<kind>resources|data-sources)/(?P<page>[a-z0-9_]+))?(?:#(?P<anchor>[a-z0-9_]+))?"
    r" (?P<label>[^}]+)\}"
)
# Terraform's own arguments and blocks, valid in every resource and data source.
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}
LIFECYCLE = {"ignore_changes", "create_before_destroy", "prevent_destroy", "replace_triggered_by",
             "precondition", "postcondition"}  # fmt: skip
_HCL_KEYS = {"__is_block__", "__comments__", "__inline_comments__"}


@dataclass
class Block:
    """Arguments (name -> required?) and nested blocks of a resource, data
    source, provider or block; `attributes` are what a reference may read."""

    arguments: dict[str, bool] = field(default_factory=dict)
    blocks: dict[str, "Block"] = field(default_factory=dict)
    required_blocks: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)


@dataclass
class Schema:
    version: str
    provider: Block
    resources: dict[str, Block]
    data_sources: dict[str, Block]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _assembly() -> dict[str, Any]:
    dist = distribution(PACKAGE)
    (archive,) = [f for f in dist.files or [] if str(f).endswith(".jsii.tgz")]
    with tarfile.open(Path(str(dist.locate_file(archive)))) as tar:
        member = tar.extractfile("package/.jsii")
        assert member is not None
        assembly: dict[str, Any] = json.load(member)
    return assembly


def _struct_of(type_: Mapping[str, Any], types: Mapping[str, Any]) -> str | None:
    """The provider struct a property's type holds, if any (a nested block)."""
    if "fqn" in type_:
        return type_["fqn"] if types.get(type_["fqn"], {}).get("datatype") else None
    if "collection" in type_:
        return _struct_of(type_["collection"]["elementtype"], types)
    if "union" in type_:
        found = [s for t in type_["union"]["types"] if (s := _struct_of(t, types))]
        return found[0] if found else None
    return None


@cache
def load() -> Schema:
    types: dict[str, Any] = _assembly()["types"]

    def properties(fqn: str) -> Iterator[dict[str, Any]]:
        spec = types[fqn]
        for parent in spec.get("interfaces", []):
            if parent in types:
                yield from properties(parent)
        yield from spec.get("properties", [])

    def block(fqn: str, seen: frozenset[str] = frozenset()) -> Block:
        result = Block()
        for prop in properties(fqn):
            link = _LINK.search(prop.get("docs", {}).get("remarks", ""))
            name = link["anchor"] if link and link["anchor"] else _snake(prop["name"])
            nested = _struct_of(prop["type"], types)
            if nested and nested not in seen:
                result.blocks[name] = block(nested, seen | {fqn})
                if not prop.get("optional", False):
                    result.required_blocks.add(name)
            else:
                result.arguments[name] = not prop.get("optional", False)
        return result

    version = ""
    provider = Block()
    resources: dict[str, Block] = {}
    data_sources: dict[str, Block] = {}
    for spec in types.values():
        base = spec.get("base")
        if base not in {"cdktn.TerraformResource", "cdktn.TerraformDataSource",
                        "cdktn.TerraformProvider"}:  # fmt: skip
            continue
        link = _LINK.search(spec["docs"]["summary"])
        assert link, spec["fqn"]
        (config,) = [p["type"]["fqn"] for p in spec["initializer"]["parameters"]
                     if p["name"] == "config"]  # fmt: skip
        described = block(config)
        described.attributes = set(described.arguments) | set(described.blocks) | {
            _snake(p["name"]) for p in spec.get("properties", [])
            if not p.get("static") and not p["name"].endswith("Input")
        }  # fmt: skip
        if base == "cdktn.TerraformProvider":
            provider, version = described, link["version"]
        elif link["kind"] == "resources":
            resources[link["label"]] = described
        else:
            data_sources[link["label"]] = described
    return Schema(version, provider, resources, data_sources)


def _body(value: Any) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in _HCL_KEYS}


def _unquote(name: str) -> str:
    return name.strip('"')


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, dict) and v.get("__is_block__") for v in value
    )


def check_body(body: dict[str, Any], block: Block, where: str, meta: bool = False) -> list[str]:
    """What in one resource, data source or block the schema does not have."""
    problems = []
    given = set()
    for name, value in _body(body).items():
        if meta and name in META_ARGUMENTS:
            if name == "lifecycle":
                for lifecycle in value:
                    unknown = set(_body(lifecycle)) - LIFECYCLE
                    problems += [f"{where}: lifecycle has no {n}" for n in sorted(unknown)]
            continue
        if name == "dynamic":
            for dynamic in value:
                for label, spec in _body(dynamic).items():
                    label = _unquote(label)
                    if label not in block.blocks:
                        problems.append(f"{where}: no block {label!r} (dynamic)")
                        continue
                    given.add(label)
                    for content in spec["content"]:
                        problems += check_body(content, block.blocks[label], f"{where}.{label}")
            continue
        if name in block.blocks:
            if not _is_block(value):
                problems.append(f"{where}: {name} is a block, written as an argument")
                continue
            given.add(name)
            for nested in value:
                problems += check_body(nested, block.blocks[name], f"{where}.{name}")
        elif name in block.arguments:
            if _is_block(value):
                problems.append(f"{where}: {name} is an argument, written as a block")
            given.add(name)
        else:
            problems.append(f"{where}: no argument or block {name!r}")
    required = {name for name, needed in block.arguments.items() if needed} | block.required_blocks
    problems += [f"{where}: required {name!r} missing" for name in sorted(required - given)]
    return problems


def _ignore_changes_paths(body: dict[str, Any]) -> Iterator[list[str]]:
    for lifecycle in body.get("lifecycle", []):
        for path in lifecycle.get("ignore_changes", []):
            yield re.findall(r"[a-z_][a-z0-9_]*", re.sub(r"\[\d+\]", "", path.strip("${}")))


def _reference_problems(text: str, schema: Schema, where: str) -> list[str]:
    problems = []
    pattern = r"\b(data\.)?(google_[a-z0-9_]+)\.[a-z0-9_]+(?:\[[^\]]*\])?\.([a-z_][a-z0-9_]*)"
    for data, type_, attribute in re.findall(pattern, text):
        table = schema.data_sources if data else schema.resources
        if type_ not in table:
            problems.append(f"{where}: no {'data source' if data else 'resource'} {type_}")
        elif attribute not in table[type_].attributes:
            problems.append(f"{where}: {type_} has no attribute {attribute!r}")
    return problems


def check_directory(directory: Path, schema: Schema) -> list[str]:
    """Every resource, data source and provider block of the .tf files in one
    directory, and every reference to a resource's attribute, against the schema."""
    problems = []
    for path in sorted(directory.glob("*.tf")):
        parsed = hcl2.loads(path.read_text())
        problems += _reference_problems(path.read_text(), schema, path.name)
        for kind, table in (("resource", schema.resources), ("data", schema.data_sources)):
            for entry in parsed.get(kind, []):
                for type_, named in entry.items():
                    type_ = _unquote(type_)
                    for name, body in _body(named).items():
                        where = f"{path.name}: {type_}.{_unquote(name)}"
                        if type_ not in table:
                            problems.append(f"{where}: no such {kind}")
                            continue
                        problems += check_body(body, table[type_], where, meta=True)
                        for steps in _ignore_changes_paths(body):
                            block = table[type_]
                            for step in steps[:-1]:
                                block = block.blocks.get(step, Block())
                            if steps[-1] not in block.arguments and steps[-1] not in block.blocks:
                                problems.append(
                                    f"{where}: ignore_changes names no {'.'.join(steps)}"
                                )
        for entry in parsed.get("provider", []):
            for name, body in entry.items():
                if _unquote(name) == "google":
                    problems += check_body(body, schema.provider, f"{path.name}: provider google")
    return problems

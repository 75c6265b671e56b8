#!/usr/bin/env python3
"""Pack a CircleCI orb from its source layout into one orb.yml.

Works like `circleci orb pack` (which needs the CircleCI CLI, not available
offline):

* ``src/@orb.yml`` is the top of the orb (version, description, display, ...);
* every ``src/<section>/<name>.yml`` (section: commands, executors, jobs,
  examples) becomes ``<section>: {<name>: <content of the file>}``;
* a value that is exactly ``<<include(path)>>`` is replaced by the text of
  ``src/<path>`` (used for the shell scripts in ``src/scripts/``).

Usage:
  scripts/pack-orb.py [--src orbs/konductor/src] [--out orbs/konductor/orb.yml]
  scripts/pack-orb.py --check   # exit 1 if orb.yml differs from a fresh pack
"""

from __future__ import annotations

import argparse
import difflib
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECTIONS = ("commands", "executors", "jobs", "examples")
NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
INCLUDE = re.compile(r"^<<\s*include\(([^()]+)\)\s*>>$")
HEADER = (
    "# Packed by scripts/pack-orb.py from orbs/konductor/src/. Do not edit:\n"
    "# change src/ and run `python3 scripts/pack-orb.py`.\n"
)


class PackError(Exception):
    pass


class _Dumper(yaml.SafeDumper):
    """Block style, literal blocks for multi-line strings, no aliases."""

    def ignore_aliases(self, data):  # noqa: D401 - PyYAML hook
        return True


def _str(dumper: yaml.SafeDumper, data: str):
    if "\n" in data.rstrip("\n"):
        style = "|"  # scripts and other multi-line text: keep the lines
    elif data.endswith("\n"):
        style = ">"  # folded prose (`description: >`)
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _load(path: pathlib.Path):
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise PackError(f"{path}: not valid YAML: {exc}") from exc


def _resolve_includes(node, src: pathlib.Path, where: str):
    if isinstance(node, dict):
        return {k: _resolve_includes(v, src, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_includes(v, src, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        m = INCLUDE.match(node.strip())
        if m:
            target = (src / m.group(1).strip()).resolve()
            if src.resolve() not in target.parents:
                raise PackError(f"{where}: include {m.group(1)!r} leaves {src}")
            if not target.is_file():
                raise PackError(f"{where}: include {m.group(1)!r} does not exist")
            return target.read_text(encoding="utf-8")
        if "<<include(" in node.replace(" ", ""):
            raise PackError(f"{where}: <<include(...)>> must be the whole value")
    return node


def pack(src: pathlib.Path) -> str:
    top_file = src / "@orb.yml"
    if not top_file.is_file():
        raise PackError(f"{top_file} is missing")
    orb = _load(top_file)
    if not isinstance(orb, dict):
        raise PackError(f"{top_file}: must be a mapping")
    for entry in sorted(src.iterdir()):
        if entry.is_dir() and entry.name not in SECTIONS and entry.name != "scripts":
            raise PackError(f"{entry}: unknown section (expected one of {', '.join(SECTIONS)})")
        if entry.is_file() and entry.name != "@orb.yml":
            raise PackError(f"{entry}: stray file (put it under a section directory)")
    for section in SECTIONS:
        directory = src / section
        if not directory.is_dir():
            continue
        if section in orb:
            raise PackError(f"{top_file}: defines '{section}' inline and in {directory}")
        items = {}
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".yml", ".yaml"):
                raise PackError(f"{path}: only .yml files belong in {directory}")
            name = path.stem
            if not NAME.match(name):
                raise PackError(f"{path}: name '{name}' must match {NAME.pattern}")
            if name in items:
                raise PackError(f"{path}: '{name}' is defined twice")
            content = _load(path)
            if not isinstance(content, dict):
                raise PackError(f"{path}: must be a mapping")
            items[name] = _resolve_includes(content, src, f"{section}.{name}")
        if items:
            orb[section] = items
    body = yaml.dump(orb, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    if yaml.safe_load(body) != orb:  # the dumper must not change any value
        raise PackError("internal error: the packed YAML does not load back to the same orb")
    return HEADER + body


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=pathlib.Path, default=ROOT / "orbs/konductor/src")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "orbs/konductor/orb.yml")
    parser.add_argument("--check", action="store_true", help="fail if --out is not up to date")
    args = parser.parse_args(argv)
    try:
        packed = pack(args.src)
    except PackError as exc:
        print(f"pack-orb: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != packed:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                packed.splitlines(keepends=True),
                fromfile=str(args.out),
                tofile="packed from " + str(args.src),
                n=1,
            )
            sys.stderr.writelines(list(diff)[:40])
            print(f"pack-orb: {args.out} is out of date: run python3 scripts/pack-orb.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(packed, encoding="utf-8")
    print(f"pack-orb: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

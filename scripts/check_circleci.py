#!/usr/bin/env python3
"""Cross-reference checks for CircleCI configs and the Konductor orb (offline).

`circleci config validate` needs the CircleCI CLI and its API; the JSON schema
(check-jsonschema vendor.circle-ci) checks shapes but not references. This
script checks what the schema cannot:

* every step names a built-in step, a command of the config, or a command of
  the Konductor orb (``konductor/<name>``, resolved against the packed
  orbs/konductor/orb.yml);
* every job in a workflow exists (``konductor/<job>`` included), every
  argument passed to a job or command is a declared parameter, required
  parameters are given, enum and boolean arguments have valid values;
* ``<< parameters.x >>`` only names parameters the job/command/executor declares;
* ``requires`` names jobs of the same workflow;
* the tag rule: a job with tag filters has ``branches: ignore: /.*/``, and
  every job it requires (directly or not) has the same tag filters, or
  CircleCI would never run it for a tag;
* for the orb itself: the same reference checks inside its commands, jobs and
  executors, and in the configs of its examples.

Usage: check_circleci.py [--orb orbs/konductor/orb.yml] FILE...
Each FILE is a CircleCI config or a packed orb. Exit 1 on any error.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILTIN_STEPS = {
    "run", "checkout", "setup_remote_docker", "save_cache", "restore_cache",
    "store_artifacts", "store_test_results", "persist_to_workspace",
    "attach_workspace", "add_ssh_keys", "deploy", "when", "unless",
}
RESERVED_JOB_KEYS = {
    "name", "requires", "context", "filters", "matrix", "type", "pre-steps",
    "post-steps", "serial-group", "override-with",
}
PARAM_REF = re.compile(r"<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>")
ORB_NAME = "konductor"


class Checker:
    def __init__(self, orb: dict | None) -> None:
        self.orb = orb or {}
        self.errors: list[str] = []

    # ------------------------------------------------------------ helpers
    def err(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    def param_refs(self, node, declared: dict, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                self.param_refs(k, declared, where)
                self.param_refs(v, declared, where)
        elif isinstance(node, list):
            for v in node:
                self.param_refs(v, declared, where)
        elif isinstance(node, str):
            for name in PARAM_REF.findall(node):
                if name not in declared:
                    self.err(where, f"<< parameters.{name} >> is not a declared parameter")

    def check_args(self, where: str, params: dict, args: dict, reserved: set[str]) -> None:
        params = params or {}
        for key, value in args.items():
            if key in reserved:
                continue
            if key not in params:
                self.err(where, f"'{key}' is not a parameter (declared: {', '.join(sorted(params)) or 'none'})")
                continue
            spec = params[key] or {}
            ptype = spec.get("type")
            templated = isinstance(value, str) and "<<" in value
            if ptype == "boolean" and not templated and not isinstance(value, bool):
                self.err(where, f"'{key}' is boolean, got {value!r}")
            if ptype == "integer" and not templated and not isinstance(value, int):
                self.err(where, f"'{key}' is an integer, got {value!r}")
            if ptype == "enum" and not templated and value not in (spec.get("enum") or []):
                self.err(where, f"'{key}' must be one of {spec.get('enum')}, got {value!r}")
        for key, spec in params.items():
            if isinstance(spec, dict) and "default" not in spec and key not in args:
                self.err(where, f"required parameter '{key}' is missing")

    def declared_params(self, where: str, params: dict | None) -> dict:
        params = params or {}
        for key, spec in params.items():
            if isinstance(spec, dict) and spec.get("type") == "enum" and "default" in spec:
                if spec["default"] not in (spec.get("enum") or []):
                    self.err(where, f"default of enum parameter '{key}' is not one of its values")
        return params

    # ------------------------------------------------------------ config parts
    def commands_of(self, cfg: dict, uses_orb: bool) -> dict:
        commands = dict(cfg.get("commands") or {})
        if uses_orb:
            for name, cmd in (self.orb.get("commands") or {}).items():
                commands[f"{ORB_NAME}/{name}"] = cmd
        return commands

    def check_steps(self, steps, commands: dict, where: str) -> None:
        if not isinstance(steps, list):
            self.err(where, "steps is not a list")
            return
        for i, step in enumerate(steps):
            loc = f"{where} step {i + 1}"
            if isinstance(step, str):
                name, args = step, {}
            elif isinstance(step, dict) and len(step) == 1:
                (name, args), = step.items()
                args = args if isinstance(args, dict) else {}
            else:
                self.err(loc, f"a step is a name or a one-key mapping, got {step!r}")
                continue
            if name in ("when", "unless"):
                if "condition" not in args or "steps" not in args:
                    self.err(loc, f"{name} needs condition and steps")
                self.check_steps(args.get("steps"), commands, f"{loc} ({name})")
            elif name in BUILTIN_STEPS:
                continue
            elif name in commands:
                cmd = commands[name]
                if isinstance(cmd, dict):
                    self.check_args(f"{loc} ({name})", cmd.get("parameters") or {}, args, set())
            else:
                self.err(loc, f"unknown step or command '{name}'")

    def check_definitions(self, cfg: dict, where: str, uses_orb: bool, orb_mode: bool = False) -> None:
        commands = self.commands_of(cfg, uses_orb)
        if orb_mode:  # inside an orb, its own commands are referenced without prefix
            commands.update(cfg.get("commands") or {})
        executors = set(cfg.get("executors") or {})
        if uses_orb:
            executors |= {f"{ORB_NAME}/{n}" for n in (self.orb.get("executors") or {})}
        for kind in ("commands", "jobs", "executors"):
            for name, body in (cfg.get(kind) or {}).items():
                loc = f"{where}: {kind[:-1]} {name}"
                if not isinstance(body, dict):
                    self.err(loc, "must be a mapping")
                    continue
                params = self.declared_params(loc, body.get("parameters"))
                self.param_refs({k: v for k, v in body.items() if k != "parameters"}, params, loc)
                if "steps" in body:
                    self.check_steps(body["steps"], commands, loc)
                if kind == "jobs" and "executor" in body:
                    ex = body["executor"]
                    ex_name = ex.get("name") if isinstance(ex, dict) else ex
                    if ex_name not in executors:
                        self.err(loc, f"unknown executor '{ex_name}'")
                    elif isinstance(ex, dict):
                        ex_def = (cfg.get("executors") or {}).get(ex_name) or (
                            (self.orb.get("executors") or {}).get(ex_name.split("/", 1)[-1]))
                        self.check_args(f"{loc} executor", (ex_def or {}).get("parameters") or {},
                                        {k: v for k, v in ex.items() if k != "name"}, set())

    def check_workflows(self, cfg: dict, where: str, uses_orb: bool) -> None:
        jobs = dict(cfg.get("jobs") or {})
        if uses_orb:
            for name, job in (self.orb.get("jobs") or {}).items():
                jobs[f"{ORB_NAME}/{name}"] = job
        for wf_name, wf in (cfg.get("workflows") or {}).items():
            if wf_name == "version" or not isinstance(wf, dict):
                continue
            loc_wf = f"{where}: workflow {wf_name}"
            by_name: dict[str, dict] = {}
            for entry in wf.get("jobs") or []:
                if isinstance(entry, str):
                    job, conf = entry, {}
                elif isinstance(entry, dict) and len(entry) == 1:
                    (job, conf), = entry.items()
                    conf = conf or {}
                else:
                    self.err(loc_wf, f"bad job entry {entry!r}")
                    continue
                name = conf.get("name", job)
                loc = f"{loc_wf}, job {name}"
                if name in by_name:
                    self.err(loc, "two jobs of the workflow have this name; give one a `name:`")
                by_name[name] = conf
                if job not in jobs:
                    self.err(loc, f"unknown job '{job}'")
                    continue
                definition = jobs[job] or {}
                if conf.get("type") == "approval":
                    continue
                self.check_args(loc, definition.get("parameters") or {}, conf, RESERVED_JOB_KEYS)
            # requires + the tag rule
            for name, conf in by_name.items():
                loc = f"{loc_wf}, job {name}"
                filters = conf.get("filters") if isinstance(conf.get("filters"), dict) else {}
                tags = filters.get("tags")
                if tags is not None:
                    branches = filters.get("branches") or {}
                    if branches.get("ignore") != "/.*/" and branches.get("ignore") != ["/.*/"]:
                        self.err(loc, "a job run by tags needs `branches: ignore: /.*/`")
                for req in conf.get("requires") or []:
                    req_name = next(iter(req)) if isinstance(req, dict) else req
                    if req_name not in by_name:
                        self.err(loc, f"requires '{req_name}', which is not a job of this workflow")
                        continue
                    if tags is not None:
                        self.check_upstream_tags(loc, name, tags, req_name, by_name, set())

    def check_upstream_tags(self, loc, name, tags, req_name, by_name, seen) -> None:
        if req_name in seen:
            return
        seen.add(req_name)
        up = by_name[req_name]
        up_filters = up.get("filters") if isinstance(up.get("filters"), dict) else {}
        if up_filters.get("tags") != tags:
            self.err(loc, f"requires '{req_name}', whose tag filters {up_filters.get('tags')!r} differ from "
                          f"{tags!r}: CircleCI would not run it for this job's tags")
        for req in up.get("requires") or []:
            nxt = next(iter(req)) if isinstance(req, dict) else req
            if nxt in by_name:
                self.check_upstream_tags(loc, name, tags, nxt, by_name, seen)

    def check_config(self, cfg: dict, where: str) -> None:
        orbs = cfg.get("orbs") or {}
        uses_orb = False
        if ORB_NAME in orbs:
            ref = orbs[ORB_NAME]
            if not (isinstance(ref, str) and ref.startswith("konductor/konductor@")):
                self.err(where, f"orbs.{ORB_NAME} must reference konductor/konductor@<version>, got {ref!r}")
            uses_orb = True
        for alias, ref in orbs.items():
            if alias != ORB_NAME:
                self.err(where, f"orb '{alias}' ({ref}) cannot be checked offline; only the Konductor orb is known")
        self.check_definitions(cfg, where, uses_orb)
        self.check_workflows(cfg, where, uses_orb)

    def check_orb(self, orb: dict, where: str) -> None:
        self.check_definitions(orb, where, uses_orb=False, orb_mode=True)
        text = yaml.safe_dump(orb)
        if "<<include(" in text.replace(" ", ""):
            self.err(where, "an <<include(...)>> was left unresolved")
        for name, example in (orb.get("examples") or {}).items():
            usage = (example or {}).get("usage")
            if isinstance(usage, dict):
                self.check_config(usage, f"{where}: example {name}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orb", type=pathlib.Path, default=ROOT / "orbs/konductor/orb.yml")
    parser.add_argument("files", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            is_orb = isinstance(doc, dict) and "examples" in doc and "workflows" not in doc
            orb_path = path if is_orb else args.orb
            orb = doc if is_orb else yaml.safe_load(orb_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"check_circleci: {path}: {exc}", file=sys.stderr)
            status = 2
            continue
        if not isinstance(doc, dict):
            print(f"check_circleci: {path}: not a mapping", file=sys.stderr)
            status = 2
            continue
        checker = Checker(orb)
        if is_orb:
            checker.check_orb(doc, str(path))
        else:
            checker.check_config(doc, str(path))
        for e in checker.errors:
            print(f"check_circleci: {e}", file=sys.stderr)
        if checker.errors:
            status = max(status, 1)
        else:
            print(f"check_circleci: {path}: references, parameters and tag filters are consistent")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Check that every tag filter in the CI wiring selects exactly its step's trigger tags.

For each file given, the filters are found by the file's kind:

* CircleCI config (``workflows:``) and packed orb (``examples:``): for every
  workflow, the ``filters.tags.only`` / ``filters.tags.ignore`` of each job.
  The step is the workflow's name. A filter in slashes is a regular expression
  that must match the whole tag; any other string must equal the tag.
* GitHub Actions workflow (``on.push.tags`` / ``tags-ignore``): glob patterns
  with GitHub's filter-pattern semantics. The step is the workflow's
  ``env.KONDUCTOR_STEP``, else the file name without extension.
* Argo Events Sensor: every ``type: string`` data filter on ``body.ref`` (a Go
  regular expression, matched unanchored against ``refs/tags/<tag>``). The
  step is the label ``konductor.io/step``.

Each filter must select the trigger tags ``release=1.0=<step>.1`` and
``release=42.3=<step>.17`` (and a few more), and none of: the state tags
(``=started``, ``=success``, ``=failure``, ``=timeout``), the control tags
(``release=1.0=<step>=unblocked``, ``=skipped``, ``release=1.0=cancelled``),
train tags, and the trigger and state tags of every other step. Regular
expressions must also reject near misses (``release=1.0=<step>.x``, ...), which
Konductor never creates but a loose regex would accept.

Exit status: 0 if every file passes, 1 if a filter is wrong, 2 on unusable input.
"""

from __future__ import annotations

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The example train (sdd.yaml) and names chosen to catch sloppy patterns.
TRAIN_STEPS = [
    "unit-tests",
    "lint",
    "build_serving_image",
    "build_worker_image",
    "deploy_serving_staging_k8s",
    "verify_serving_staging",
    "complete-verification",
    "require-manual-unblock-before-prod-deploy",
    "deploy_serving_prod_k8s",
    "verify_serving_prod",
    "complete-deploy",
]
DECOY_STEPS = ["unit", "unit-tests-extra", "x-unit-tests", "lint2", "verify_serving_staging_2", "a"]
STATES = ["started", "success", "failure", "timeout"]
STEP_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def steps_from_sdd() -> list[str]:
    """Step names from sdd.yaml at the repository top, when it exists and is readable."""
    path = ROOT / "sdd.yaml"
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return []
    if not isinstance(data, dict):
        return []
    # sdd.yaml maps each step to its dependencies: `step: [deps]` or
    # `step: {needs: [...], ...}`. A `steps:` key holding the map is accepted too.
    steps = data.get("steps", data)
    names: list[str] = []
    if isinstance(steps, dict):
        for key, value in steps.items():
            if isinstance(value, (list, dict)) or value is None:
                names.append(str(key))
            needs = value.get("needs") if isinstance(value, dict) else value
            if isinstance(needs, list):
                names += [str(n) for n in needs]
    elif isinstance(steps, list):
        for item in steps:
            if isinstance(item, dict):
                name = item.get("name") or item.get("step") or item.get("id")
                if isinstance(name, str):
                    names.append(name)
            elif isinstance(item, str):
                names.append(item)
    return [n for n in names if STEP_NAME.match(n)]


def all_steps() -> list[str]:
    seen: dict[str, None] = {}
    for name in TRAIN_STEPS + steps_from_sdd() + DECOY_STEPS:
        seen.setdefault(name, None)
    return list(seen)


def positives(step: str) -> list[str]:
    return [
        f"release=1.0={step}.1",
        f"release=42.3={step}.17",
        f"release=0.0={step}.1",
        f"release=123456.78={step}.999",
    ]


def negatives(step: str, steps: list[str]) -> list[str]:
    tags = []
    for trigger in (f"release=1.0={step}.1", f"release=42.3={step}.17"):
        tags += [f"{trigger}={state}" for state in STATES]
    tags += [
        f"release=1.0={step}=unblocked",
        f"release=1.0={step}=skipped",
        "release=1.0=cancelled",
        "release=42.3=cancelled",
        "release=1.0",
        "release=42.3",
    ]
    for other in steps:
        if other != step:
            tags += [f"release=1.0={other}.1", f"release=42.3={other}.17", f"release=1.0={other}.1=started"]
    return tags


def near_misses(step: str) -> list[str]:
    """Not Konductor tags at all; a regular expression must still reject them."""
    return [
        f"release=1.0={step}.",
        f"release=1.0={step}.x",
        f"release=1.0={step}.1x",
        f"release=1.0={step}",
        f"release=1={step}.1",
        f"release=1.0.0={step}.1",
        f"xrelease=1.0={step}.1",
        f"release=1.0=x{step}.1",
        f"release=1.0={step}.1\n",
    ]


# ---------------------------------------------------------------- GitHub globs


def github_glob_to_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern syntax (docs: "Filter pattern cheat sheet").

    ``*`` zero or more characters except ``/``; ``**`` zero or more of any
    character; ``?`` zero or one of the preceding character; ``+`` one or more
    of the preceding character; ``[]`` one character listed or in a range
    (a-z, A-Z, 0-9); ``\\`` escapes the next character. Everything else is
    literal. The pattern must match the whole ref name.
    """
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError(f"pattern {pattern!r} ends with a lone backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append("[^/]*")
                i += 1
        elif c in "?+":
            if not out or out[-1] in ("[^/]*", ".*") or out[-1].endswith(("?", "+")):
                raise ValueError(f"pattern {pattern!r}: {c!r} at {i} follows nothing it can repeat")
            out[-1] = f"(?:{out[-1]}){c}"
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise ValueError(f"pattern {pattern!r}: unclosed [")
            body = pattern[i + 1 : end]
            if not body or not re.fullmatch(r"(?:[a-z]-[a-z]|[A-Z]-[A-Z]|[0-9]-[0-9]|[A-Za-z0-9])+", body):
                raise ValueError(f"pattern {pattern!r}: [{body}] may hold only letters, digits and ranges")
            out.append(f"[{body}]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def github_selects(patterns: list[str], ignore: list[str], ref: str) -> bool:
    """Evaluate `tags` (with `!` negations, later patterns winning) and `tags-ignore`."""
    selected = False
    for p in patterns:
        if p.startswith("!"):
            if github_glob_to_regex(p[1:]).fullmatch(ref):
                selected = False
        elif github_glob_to_regex(p).fullmatch(ref):
            selected = True
    if any(github_glob_to_regex(p).fullmatch(ref) for p in ignore):
        selected = False
    return selected


# ---------------------------------------------------------------- Go regexp


def go_regexp(expr: str) -> re.Pattern[str]:
    """Compile a Go (RE2) regular expression of the simple kind used in filters.

    The one difference that matters here: without the m flag, Go's ``$``
    matches only at the very end of the text, while Python's also matches
    before a final newline. Unescaped ``$`` outside brackets becomes ``\\Z``.
    """
    out = []
    i, in_class = 0, False
    while i < len(expr):
        c = expr[i]
        if c == "\\":
            out.append(expr[i : i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        elif c == "$" and not in_class:
            c = r"\Z"
        out.append(c)
        i += 1
    return re.compile("".join(out), re.ASCII)


# ---------------------------------------------------------------- CircleCI


def circleci_matcher(spec) -> "callable":
    """CircleCI branch/tag specifiers: /regex/ must match the entire string, else exact."""
    items = spec if isinstance(spec, list) else [spec]
    matchers = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"tag filter {item!r} is not a string")
        if len(item) >= 2 and item.startswith("/") and item.endswith("/"):
            rx = re.compile(item[1:-1], re.ASCII)
            matchers.append(lambda t, rx=rx: rx.fullmatch(t) is not None)
        else:
            matchers.append(lambda t, s=item: t == s)
    return lambda tag: any(m(tag) for m in matchers)


# ---------------------------------------------------------------- checking


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.checked = 0

    def check(self, where: str, step: str, selects, *, regex: bool) -> None:
        self.checked += 1
        if not STEP_NAME.match(step):
            self.errors.append(f"{where}: '{step}' is not a step name ([A-Za-z0-9_-]+)")
            return
        steps = all_steps()
        if step not in steps:
            steps.append(step)
        for tag in positives(step):
            if not selects(tag):
                self.errors.append(f"{where}: does not match the trigger tag {tag!r} of step {step}")
        for tag in negatives(step, steps):
            if selects(tag):
                self.errors.append(f"{where}: matches {tag!r}, which must not start step {step}")
        if regex:
            for tag in near_misses(step):
                if selects(tag):
                    self.errors.append(f"{where}: matches the malformed tag {tag!r}")


def check_circleci_workflows(doc: dict, where: str, report: Report) -> None:
    workflows = doc.get("workflows") or {}
    if not isinstance(workflows, dict):
        raise ValueError("workflows is not a mapping")
    for wf_name, wf in workflows.items():
        if wf_name == "version" or not isinstance(wf, dict):
            continue
        jobs = wf.get("jobs") or []
        entries = []
        for job in jobs:
            if isinstance(job, str):
                entries.append((job, {}))
            elif isinstance(job, dict) and len(job) == 1:
                (name, conf), = job.items()
                entries.append((conf.get("name", name) if isinstance(conf, dict) else name, conf or {}))
        tagged = [(n, c) for n, c in entries if isinstance(c.get("filters"), dict) and "tags" in c["filters"]]
        if not tagged:
            continue  # e.g. the scheduled konductor-tick workflow: runs for no tag
        for job_name, conf in entries:
            filters = conf.get("filters")
            loc = f"{where}: workflow {wf_name}, job {job_name}"
            if not (isinstance(filters, dict) and isinstance(filters.get("tags"), dict)):
                report.errors.append(f"{loc}: no tag filters, but other jobs of this step's workflow have them")
                continue
            tags = filters["tags"]
            if "only" not in tags:
                report.errors.append(f"{loc}: tags filter without `only` would run for every tag")
                continue
            only = circleci_matcher(tags["only"])
            ignore = circleci_matcher(tags["ignore"]) if "ignore" in tags else (lambda t: False)
            report.check(f"{loc} (tags {tags['only']!r})", str(wf_name), lambda t: only(t) and not ignore(t), regex=True)


def check_github_workflow(doc: dict, path: pathlib.Path, where: str, report: Report) -> None:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    if isinstance(on, (str, list)):
        events = [on] if isinstance(on, str) else on
        if "push" in events:
            report.errors.append(f"{where}: `on: push` without filters runs for every tag, state tags included")
        report.notes.append(f"{where}: not started by tag pushes")
        return
    push = on.get("push", "absent") if isinstance(on, dict) else "absent"
    if push == "absent":
        report.notes.append(f"{where}: not started by tag pushes")
        return  # e.g. the scheduled tick
    if not isinstance(push, dict) or not ("tags" in push or "tags-ignore" in push):
        if isinstance(push, dict) and ("branches" in push or "branches-ignore" in push):
            report.notes.append(f"{where}: started by branch pushes only")
            return
        report.errors.append(f"{where}: on.push without tag or branch filters runs for every tag, state tags included")
        return
    env = doc.get("env") or {}
    step = str(env.get("KONDUCTOR_STEP") or path.stem)
    patterns = push.get("tags") or []
    ignore = push.get("tags-ignore") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    if isinstance(ignore, str):
        ignore = [ignore]
    if patterns and patterns[0].startswith("!"):
        report.errors.append(f"{where}: the first tags pattern is negative; GitHub needs a positive one first")
    for p in patterns + ignore:
        github_glob_to_regex(p.lstrip("!"))  # raises on invalid syntax
    if "branches" not in push and "branches-ignore" not in push:
        pass  # with only tags given, branch pushes do not start the workflow
    else:
        report.errors.append(f"{where}: on.push also has branch filters; a step workflow must run for tags only")
    report.check(f"{where} (tags {patterns!r})", step, lambda t: github_selects(patterns, ignore, t), regex=False)


def check_sensor(doc: dict, where: str, report: Report) -> None:
    step = ((doc.get("metadata") or {}).get("labels") or {}).get("konductor.io/step")
    if not step:
        report.errors.append(f"{where}: Sensor has no konductor.io/step label")
        return
    found = False
    for dep in (doc.get("spec") or {}).get("dependencies") or []:
        for flt in ((dep.get("filters") or {}).get("data")) or []:
            if flt.get("path") != "body.ref":
                continue
            found = True
            if flt.get("type") != "string" or flt.get("comparator", "=") not in ("=", ""):
                report.errors.append(f"{where}: the body.ref filter must be a string equality (regex) filter")
                continue
            # Argo Events: the value list is OR-ed; each is a Go regexp, matched unanchored.
            regexes = [go_regexp(v) for v in flt.get("value") or []]

            def selects(tag: str, regexes=regexes) -> bool:
                return any(rx.search(f"refs/tags/{tag}") for rx in regexes)

            report.check(f"{where}: dependency {dep.get('name')} (body.ref {flt.get('value')!r})", step, selects, regex=True)
    if not found:
        report.errors.append(f"{where}: Sensor has no data filter on body.ref: it would fire for every push")


def check_file(path: pathlib.Path, report: Report) -> None:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from exc
    before = report.checked
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError("not a mapping")
        if doc.get("kind") == "Sensor":
            check_sensor(doc, str(path), report)
        elif "jobs" in doc and ("on" in doc or True in doc):
            check_github_workflow(doc, path, str(path), report)
        elif "examples" in doc and "commands" in doc:  # packed orb
            for name, example in (doc.get("examples") or {}).items():
                usage = (example or {}).get("usage") or {}
                check_circleci_workflows(usage, f"{path}: example {name}", report)
        elif "workflows" in doc:
            check_circleci_workflows(doc, str(path), report)
    if report.checked == before and not report.errors and not report.notes:
        raise ValueError("no tag filter found to check")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    status = 0
    for arg in argv:
        path = pathlib.Path(arg)
        report = Report()
        try:
            check_file(path, report)
        except (OSError, ValueError, re.error) as exc:
            print(f"check_filters: {path}: {exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        for err in report.errors:
            print(f"check_filters: {err}", file=sys.stderr)
        if report.errors:
            status = max(status, 1)
        elif report.checked:
            print(f"check_filters: {path}: {report.checked} filter(s) select exactly their step's trigger tags")
        else:
            print(f"check_filters: {path}: " + "; ".join(n.split(": ", 1)[1] for n in report.notes))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

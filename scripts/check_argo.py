#!/usr/bin/env python3
"""Cross-reference checks for the Argo manifests in integrations/argo (offline).

The JSON schemas in integrations/schemas check each Argo resource's shape; no
Argo controller or API server is available to check how they fit together.
This script checks that, over all the files given at once:

WorkflowTemplate
  * entrypoint, onExit and every step's template exist;
  * steps pass exactly the inputs their template declares (those without a
    value are required);
  * ``{{inputs.parameters.x}}``, ``{{workflow.parameters.x}}`` and
    ``{{steps.s.outputs.parameters.p}}`` name declared parameters / earlier
    steps / declared outputs;
  * script sources contain no ``{{...}}``: parameters reach scripts only through
    the environment (a tag name is never shell text); each script passes
    shellcheck (when --shellcheck is given);
  * volume mounts name declared volumes;
  * the ``namespace`` parameter defaults to the template's own namespace: a
    workflow cannot read Argo CD Applications in another namespace.
Sensor
  * dependencies name an EventSource and event that exist, in the Sensor's namespace;
  * trigger parameters name a dependency, and ``dest`` points at an existing
    argument of the submitted Workflow;
  * the submitted Workflow references an existing WorkflowTemplate, in that
    template's namespace, passes only its parameters and all required ones.
CronJob (the konductor tick)
  * the schedule is a valid five-field cron expression;
  * concurrencyPolicy Forbid (ticks never overlap), a non-root pod, no
    privilege escalation, CPU and memory limits, and KONDUCTOR_TOKEN or the
    GitHub App key (KONDUCTOR_GITHUB_APP_KEY) read from a Secret rather than
    written in the manifest.
  * WorkflowTemplates of the same name (one per namespace) differ in nothing
    but their namespace and the defaults of ``namespace``, ``environment`` and
    ``expected-revision``: the per-namespace copies cannot drift apart.
EventBus / Ingress
  * every Sensor and EventSource has its EventBus (``eventBusName``, else
    ``default``) in its namespace, when an EventBus is among the files;
  * an Ingress in front of an EventSource reaches its Service
    (``<name>-eventsource-svc``), on the webhook's port, at the webhook's
    endpoint.
Application / AppProject
  * targetRevision is one of the moving tags staging-k8s, k8s-production;
  * a directory source (``path``) sets ``directory.recurse: true``: Argo CD
    applies only the top folder's manifests otherwise;
  * the Application lives in its destination namespace (one verification per
    namespace); its project exists, allows its repo, namespace and destination;
  * a verification template in the same namespace verifies this Application
    (app-name) in the environment whose deploy tag it tracks (environment).

Usage: check_argo.py [--shellcheck] FILE...   Exit 1 on any error.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

# The environments of the top-level sdd.yaml and their deploy tags (the moving tags the
# Applications track).
ENVIRONMENTS = {"staging": "staging-k8s", "production": "k8s-production"}
MOVING_TAGS = set(ENVIRONMENTS.values())
INPUT_REF = re.compile(r"\{\{\s*inputs\.parameters\.([A-Za-z0-9_-]+)\s*\}\}")
WF_REF = re.compile(r"\{\{\s*workflow\.parameters\.([A-Za-z0-9_-]+)\s*\}\}")
WF_EXPR_REF = re.compile(r"workflow\.parameters\.([A-Za-z0-9_]+)")
STEP_OUT_REF = re.compile(r"\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.parameters\.([A-Za-z0-9_-]+)\s*\}\}")
DEST = re.compile(r"^spec\.arguments\.parameters\.(\d+)\.value$")


def strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


class Checker:
    def __init__(self, shellcheck: bool) -> None:
        self.errors: list[str] = []
        self.shellcheck = shellcheck
        self.docs: list[tuple[str, dict]] = []

    def err(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    def of_kind(self, kind: str):
        return [(w, d) for w, d in self.docs if d.get("kind") == kind]

    @staticmethod
    def meta(doc: dict) -> tuple[str, str]:
        m = doc.get("metadata") or {}
        return m.get("name", ""), m.get("namespace", "")

    # ------------------------------------------------------------ WorkflowTemplate
    def check_workflow_template(self, where: str, doc: dict) -> None:
        name, ns = self.meta(doc)
        where = f"{where}: WorkflowTemplate {name}"
        spec = doc.get("spec") or {}
        templates = {t.get("name"): t for t in spec.get("templates") or []}
        wf_params = {p.get("name"): p for p in (spec.get("arguments") or {}).get("parameters") or []}
        volumes = {v.get("name") for v in spec.get("volumes") or []}
        for key in ("entrypoint", "onExit"):
            if key in spec and spec[key] not in templates:
                self.err(where, f"{key} '{spec[key]}' is not a template")
        ns_param = wf_params.get("namespace")
        if ns_param is not None and ns_param.get("value") != ns:
            self.err(where, f"parameter namespace defaults to '{ns_param.get('value')}', not the template's own "
                            f"namespace '{ns}': a workflow cannot read Applications in another namespace")
        for tname, tmpl in templates.items():
            loc = f"{where}, template {tname}"
            inputs = {p.get("name"): p for p in (tmpl.get("inputs") or {}).get("parameters") or []}
            body = {k: v for k, v in tmpl.items() if k not in ("inputs", "steps")}
            for s in strings(body):
                for ref in INPUT_REF.findall(s):
                    if ref not in inputs:
                        self.err(loc, f"{{{{inputs.parameters.{ref}}}}} is not an input")
                for ref in WF_REF.findall(s) + [r for e in re.findall(r"\{\{=(.*?)\}\}", s) for r in WF_EXPR_REF.findall(e)]:
                    if ref not in wf_params:
                        self.err(loc, f"workflow parameter '{ref}' is not declared")
            for part in ("container", "script"):
                c = tmpl.get(part)
                if not isinstance(c, dict):
                    continue
                for vm in c.get("volumeMounts") or []:
                    if vm.get("name") not in volumes:
                        self.err(loc, f"volume mount '{vm.get('name')}' names no volume of the template")
            script = tmpl.get("script")
            if isinstance(script, dict):
                source = script.get("source") or ""
                if "{{" in source:
                    self.err(loc, "the script source contains {{...}}: pass parameters through env instead")
                elif self.shellcheck:
                    self.run_shellcheck(loc, source, script.get("command") or [])
            seen_steps: dict[str, str] = {}
            for group in tmpl.get("steps") or []:
                group_steps = {}
                for step in group or []:
                    sname, target = step.get("name"), step.get("template")
                    sloc = f"{loc}, step {sname}"
                    if target not in templates:
                        self.err(sloc, f"template '{target}' does not exist")
                        continue
                    tinputs = {p.get("name"): p for p in (templates[target].get("inputs") or {}).get("parameters") or []}
                    args = {a.get("name"): a for a in (step.get("arguments") or {}).get("parameters") or []}
                    for a in args:
                        if a not in tinputs:
                            self.err(sloc, f"argument '{a}' is not an input of template '{target}'")
                    for i, p in tinputs.items():
                        if i not in args and "value" not in p and "default" not in p:
                            self.err(sloc, f"input '{i}' of template '{target}' is not given")
                    for s in strings(step):
                        for ref in WF_REF.findall(s):
                            if ref not in wf_params:
                                self.err(sloc, f"workflow parameter '{ref}' is not declared")
                        for ref in INPUT_REF.findall(s):
                            if ref not in inputs:
                                self.err(sloc, f"{{{{inputs.parameters.{ref}}}}} is not an input of '{tname}'")
                        for src, out in STEP_OUT_REF.findall(s):
                            if src not in seen_steps:
                                self.err(sloc, f"steps.{src} is not an earlier step")
                                continue
                            outs = {o.get("name") for o in (templates[seen_steps[src]].get("outputs") or {}).get("parameters") or []}
                            if out not in outs:
                                self.err(sloc, f"step {src} has no output parameter '{out}'")
                    group_steps[sname] = target
                seen_steps.update(group_steps)

    def run_shellcheck(self, loc: str, source: str, command: list) -> None:
        exe = shutil.which("shellcheck")
        if exe is None:
            self.err(loc, "shellcheck is not installed")
            return
        shell = "bash" if (command and "bash" in command[0]) else "sh"
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
            fh.write(source)
            path = fh.name
        try:
            res = subprocess.run([exe, "-s", shell, "-f", "gcc", path], capture_output=True, text=True)
        finally:
            pathlib.Path(path).unlink()
        if res.returncode != 0:
            for line in res.stdout.splitlines() or [res.stderr.strip()]:
                self.err(loc, "shellcheck: " + line.split(":", 1)[-1].strip())

    # ------------------------------------------------------------ Sensor
    def check_sensor(self, where: str, doc: dict) -> None:
        name, ns = self.meta(doc)
        where = f"{where}: Sensor {name}"
        spec = doc.get("spec") or {}
        sources = {}
        for _, es in self.of_kind("EventSource"):
            es_name, es_ns = self.meta(es)
            events = set()
            for kind in ("github", "webhook"):
                events |= set(((es.get("spec") or {}).get(kind) or {}).keys())
            sources[(es_ns, es_name)] = events
        deps = {}
        for dep in spec.get("dependencies") or []:
            deps[dep.get("name")] = dep
            key = (ns, dep.get("eventSourceName"))
            if key not in sources:
                self.err(where, f"dependency {dep.get('name')}: no EventSource '{key[1]}' in namespace '{ns}'")
            elif dep.get("eventName") not in sources[key]:
                self.err(where, f"dependency {dep.get('name')}: EventSource '{key[1]}' has no event '{dep.get('eventName')}'")
        templates = {self.meta(d): d for _, d in self.of_kind("WorkflowTemplate")}
        for trig in spec.get("triggers") or []:
            tmpl = trig.get("template") or {}
            tloc = f"{where}, trigger {tmpl.get('name')}"
            awf = tmpl.get("argoWorkflow")
            if not isinstance(awf, dict):
                continue
            resource = ((awf.get("source") or {}).get("resource")) or {}
            wf_ns = (resource.get("metadata") or {}).get("namespace") or ns
            rspec = resource.get("spec") or {}
            ref = (rspec.get("workflowTemplateRef") or {}).get("name")
            target = templates.get((ref, wf_ns))
            args = (rspec.get("arguments") or {}).get("parameters") or []
            if target is None:
                self.err(tloc, f"no WorkflowTemplate '{ref}' in namespace '{wf_ns}' (the Workflow is created there)")
            else:
                tparams = {p.get("name"): p for p in ((target.get("spec") or {}).get("arguments") or {}).get("parameters") or []}
                given = {a.get("name") for a in args}
                for a in given - set(tparams):
                    self.err(tloc, f"argument '{a}' is not a parameter of WorkflowTemplate '{ref}'")
                for p, spec_p in tparams.items():
                    if "value" not in spec_p and p not in given:
                        self.err(tloc, f"required parameter '{p}' of WorkflowTemplate '{ref}' is not passed")
            for param in (awf.get("parameters") or []) + (trig.get("parameters") or []):
                src = param.get("src") or {}
                if src.get("dependencyName") not in deps:
                    self.err(tloc, f"parameter source names no dependency: '{src.get('dependencyName')}'")
                m = DEST.match(param.get("dest") or "")
                if not m:
                    self.err(tloc, f"dest '{param.get('dest')}' is not spec.arguments.parameters.N.value")
                elif int(m.group(1)) >= len(args):
                    self.err(tloc, f"dest '{param.get('dest')}' points past the {len(args)} arguments")
                elif args[int(m.group(1))].get("name") != "triggering-tag":
                    self.err(tloc, f"dest '{param.get('dest')}' sets '{args[int(m.group(1))].get('name')}', "
                                   "not triggering-tag")

    # ------------------------------------------------------------ CronJob
    CRON_FIELDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}),
                   (1, 12, {m: i + 1 for i, m in enumerate(
                       "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
                   (0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})]
    CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

    def cron_error(self, expr) -> str | None:
        if not isinstance(expr, str):
            return f"{expr!r} is not a string"
        if expr.strip() in self.CRON_MACROS:
            return None
        fields = expr.split()
        if len(fields) != 5:
            return f"'{expr}' has {len(fields)} fields, a cron schedule has 5"
        for text, (lo, hi, names) in zip(fields, self.CRON_FIELDS):
            for part in text.split(","):
                base, _, step = part.partition("/")
                if step and not (step.isdigit() and int(step) > 0):
                    return f"bad step in '{part}'"
                if base in ("*", "?"):
                    continue
                bounds = base.split("-")
                if len(bounds) > 2:
                    return f"bad range '{base}'"
                values = []
                for b in bounds:
                    v = names.get(b.lower()) if not b.isdigit() else int(b)
                    if v is None or not lo <= v <= hi:
                        return f"'{b}' is out of range {lo}-{hi} in '{expr}'"
                    values.append(v)
                if len(values) == 2 and values[0] > values[1]:
                    return f"range '{base}' runs backwards"
        return None

    def check_cronjob(self, where: str, doc: dict) -> None:
        name, _ = self.meta(doc)
        where = f"{where}: CronJob {name}"
        spec = doc.get("spec") or {}
        problem = self.cron_error(spec.get("schedule"))
        if problem:
            self.err(where, f"schedule: {problem}")
        if spec.get("concurrencyPolicy") != "Forbid":
            self.err(where, "concurrencyPolicy must be Forbid: two ticks must never run at once")
        pod = ((((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")) or {}
        if (pod.get("securityContext") or {}).get("runAsNonRoot") is not True:
            self.err(where, "the pod needs securityContext.runAsNonRoot: true")
        for c in pod.get("containers") or []:
            cloc = f"{where}, container {c.get('name')}"
            limits = (c.get("resources") or {}).get("limits") or {}
            if not {"cpu", "memory"} <= set(limits):
                self.err(cloc, "needs cpu and memory limits")
            if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
                self.err(cloc, "needs securityContext.allowPrivilegeEscalation: false")
            for env in c.get("env") or []:
                if env.get("name") in ("KONDUCTOR_TOKEN", "KONDUCTOR_GITHUB_APP_KEY") and \
                        "secretKeyRef" not in (env.get("valueFrom") or {}):
                    self.err(cloc, f"{env.get('name')} must come from a Secret (valueFrom.secretKeyRef)")

    # ------------------------------------------------------------ copies, EventBus, Ingress
    VARYING_PARAMS = {"namespace", "environment", "expected-revision"}

    def comparable_template(self, doc: dict) -> dict:
        spec = dict(doc.get("spec") or {})
        args = dict(spec.get("arguments") or {})
        args["parameters"] = [
            {k: v for k, v in p.items() if not (k == "value" and p.get("name") in self.VARYING_PARAMS)}
            for p in args.get("parameters") or []
        ]
        spec["arguments"] = args
        meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k != "namespace"}
        return {"apiVersion": doc.get("apiVersion"), "metadata": meta, "spec": spec}

    def check_template_copies(self) -> None:
        by_name: dict[str, list[tuple[str, dict]]] = {}
        for where, doc in self.of_kind("WorkflowTemplate"):
            by_name.setdefault(self.meta(doc)[0], []).append((where, doc))
        for name, copies in by_name.items():
            first_where, first = copies[0]
            base = self.comparable_template(first)
            for where, doc in copies[1:]:
                if self.comparable_template(doc) != base:
                    self.err(f"{where}: WorkflowTemplate {name}",
                             f"differs from its copy in '{self.meta(first)[1]}' ({first_where}) in more than "
                             "the namespace, the environment and the expected revision; change both copies alike")

    def check_event_bus(self, where: str, doc: dict) -> None:
        buses = {self.meta(d) for _, d in self.of_kind("EventBus")}
        if not buses:
            return
        name, ns = self.meta(doc)
        bus = (doc.get("spec") or {}).get("eventBusName") or "default"
        if (bus, ns) not in buses:
            self.err(f"{where}: {doc.get('kind')} {name}", f"no EventBus '{bus}' in namespace '{ns}'")

    def check_ingress(self, where: str, doc: dict) -> None:
        name, ns = self.meta(doc)
        where = f"{where}: Ingress {name}"
        hooks = {}
        for _, es in self.of_kind("EventSource"):
            es_name, es_ns = self.meta(es)
            spec = es.get("spec") or {}
            for kind in ("github", "webhook"):
                for ev in (spec.get(kind) or {}).values():
                    hook = ev.get("webhook") or ev if kind == "github" else ev
                    hooks.setdefault((es_ns, f"{es_name}-eventsource-svc"), []).append(
                        (str(hook.get("port")), hook.get("endpoint")))
        for rule in (doc.get("spec") or {}).get("rules") or []:
            for path in ((rule.get("http") or {}).get("paths")) or []:
                svc = ((path.get("backend") or {}).get("service")) or {}
                key = (ns, svc.get("name"))
                if key not in hooks:
                    self.err(where, f"backend service '{svc.get('name')}' is no EventSource's Service in '{ns}' "
                                    "(Argo Events names it <EventSource>-eventsource-svc)")
                    continue
                port = str((svc.get("port") or {}).get("number"))
                if not any(p == port and e == path.get("path") for p, e in hooks[key]):
                    self.err(where, f"path '{path.get('path')}' on port {port} is no webhook of "
                                    f"'{svc.get('name')}': {sorted(hooks[key])}")

    # ------------------------------------------------------------ Argo CD
    def check_application(self, where: str, doc: dict) -> None:
        name, ns = self.meta(doc)
        where = f"{where}: Application {name}"
        spec = doc.get("spec") or {}
        source = spec.get("source") or {}
        dest = spec.get("destination") or {}
        rev = source.get("targetRevision")
        if rev not in MOVING_TAGS:
            self.err(where, f"targetRevision '{rev}' is not one of the moving tags {sorted(MOVING_TAGS)}")
        if "path" in source and ((source.get("directory") or {}).get("recurse")) is not True:
            self.err(where, f"path '{source.get('path')}' without directory.recurse: true: Argo CD would apply "
                            "only the top folder's manifests and silently skip those in subfolders")
        if dest.get("namespace") != ns:
            self.err(where, f"lives in '{ns}' but deploys to '{dest.get('namespace')}': keep it in its namespace, "
                            "where its verification workflow can read it")
        projects = {self.meta(d)[0]: d for _, d in self.of_kind("AppProject")}
        proj = projects.get(spec.get("project"))
        if projects and proj is None:
            self.err(where, f"project '{spec.get('project')}' is not defined")
        elif proj is not None:
            pspec = proj.get("spec") or {}
            if ns not in (pspec.get("sourceNamespaces") or []):
                self.err(where, f"project '{spec.get('project')}' does not list '{ns}' in sourceNamespaces")
            if source.get("repoURL") not in (pspec.get("sourceRepos") or []) and "*" not in (pspec.get("sourceRepos") or []):
                self.err(where, f"project '{spec.get('project')}' does not allow repo {source.get('repoURL')}")
            if not any(d.get("namespace") == dest.get("namespace") and d.get("server") == dest.get("server")
                       for d in pspec.get("destinations") or []):
                self.err(where, f"project '{spec.get('project')}' does not allow destination {dest}")
        for _, wft in self.of_kind("WorkflowTemplate"):
            if self.meta(wft)[1] != ns:
                continue
            params = {p.get("name"): p.get("value") for p in ((wft.get("spec") or {}).get("arguments") or {}).get("parameters") or []}
            if params.get("app-name") != name:
                self.err(where, f"the verification template in '{ns}' checks app '{params.get('app-name')}', not '{name}'")
            env = params.get("environment")
            if env is not None and ENVIRONMENTS.get(env) != rev:
                self.err(where, f"the verification template in '{ns}' verifies environment '{env}' "
                                f"(deploy tag '{ENVIRONMENTS.get(env)}'), but the Application tracks '{rev}'")
            if params.get("expected-revision") not in (rev, None) and params.get("expected-revision") in MOVING_TAGS:
                self.err(where, f"the verification template in '{ns}' expects tag '{params.get('expected-revision')}', "
                                f"but the Application tracks '{rev}'")

    def run(self, files: list[pathlib.Path]) -> None:
        for path in files:
            try:
                for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                    if isinstance(doc, dict):
                        self.docs.append((str(path), doc))
            except (OSError, yaml.YAMLError) as exc:
                self.err(str(path), f"unreadable: {exc}")
        for where, doc in self.docs:
            kind = doc.get("kind")
            if kind == "WorkflowTemplate":
                self.check_workflow_template(where, doc)
            elif kind == "Sensor":
                self.check_sensor(where, doc)
            elif kind == "Application":
                self.check_application(where, doc)
            elif kind == "CronJob":
                self.check_cronjob(where, doc)
            elif kind == "Ingress":
                self.check_ingress(where, doc)
            if kind in ("Sensor", "EventSource"):
                self.check_event_bus(where, doc)
        self.check_template_copies()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shellcheck", action="store_true", help="run shellcheck on script sources")
    parser.add_argument("files", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    checker = Checker(args.shellcheck)
    checker.run(args.files)
    for e in checker.errors:
        print(f"check_argo: {e}", file=sys.stderr)
    if checker.errors:
        return 1
    kinds = sorted({d.get("kind") for _, d in checker.docs})
    print(f"check_argo: {len(checker.docs)} resources ({', '.join(kinds)}) are consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Benchmark of `konductor serve` (figures, not pass/fail). See benches/README.md.

Against a local `git daemon`:
  1. webhook -> trigger latency: a train waits for a tick (step `a` succeeded); a signed
     GitHub `push` webhook for `a`'s state tag is sent, and the time until the trigger of
     `b` exists on the server is measured (median, p99 over SERVE_EVENTS events), next to
     one plain `konductor tick --train` doing the same (SERVE_TICKS runs); goal <= 1.5x;
  2. load: SERVE_RATE webhooks/s for SERVE_SECONDS, for trains already ticked (they
     coalesce); errors, ticks run, the server's RSS and CPU.

  python3 benches/serve.py            # 200 events, 200/s for 60 s
  SERVE_EVENTS=20 SERVE_SECONDS=10 python3 benches/serve.py   # a short run

KONDUCTOR_BIN_DIR (default target/release) holds `konductor` and `locomotive`. The table
goes to stdout and to benches/serve-results.md (SERVE_OUT).
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KONDUCTOR_BIN_DIR", os.path.join(ROOT, "target/release"))
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)
K = os.path.join(BIN, "konductor")
L = os.path.join(BIN, "locomotive")
EVENTS = int(os.environ.get("SERVE_EVENTS", "200"))
TICKS = int(os.environ.get("SERVE_TICKS", "20"))
RATE = int(os.environ.get("SERVE_RATE", "200"))
SECONDS = int(os.environ.get("SERVE_SECONDS", "60"))
OUT = os.environ.get("SERVE_OUT", os.path.join(ROOT, "benches/serve-results.md"))
SECRET = "bench-secret"
SDD = "a: []\nb: [a]\ndone: {needs: [b], virtual: true}\n"


def say(msg):
    print(f"[serve bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(args, env, **kw):
    return subprocess.run(args, env=env, check=True, capture_output=True, text=True, **kw).stdout


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def proc_stats(pid):
    """(cpu seconds, rss MB, peak rss MB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return cpu, rss, hwm


def main():
    for b in (K, L):
        if not os.access(b, os.X_OK):
            sys.exit(f"benches/serve.py: {b} not found; run `cargo build --release --bins` or set KONDUCTOR_BIN_DIR")
    work = tempfile.mkdtemp(prefix="konductor-serve-bench-")
    procs = []
    try:
        srv = os.path.join(work, "srv")
        bare = os.path.join(srv, "app.git")
        os.makedirs(srv)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": work,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "KONDUCTOR_IDENTITY": "Bench <bench@example.invalid>",
        }
        run(["git", "init", "-q", "--bare", "--initial-branch=main", bare], env)
        for k, v in (("uploadpack.allowFilter", "true"), ("uploadpack.allowAnySHA1InWant", "true"), ("gc.auto", "0")):
            run(["git", "-C", bare, "config", k, v], env)
        wt = os.path.join(work, "wt")
        run(["git", "init", "-q", "--initial-branch=main", wt], env)
        with open(os.path.join(wt, "sdd.yaml"), "w") as f:
            f.write(SDD)
        run(["git", "-C", wt, "add", "."], env)
        run(["git", "-C", wt, "commit", "-qm", "first"], env)
        run(["git", "-C", wt, "push", "-q", bare, "HEAD:refs/heads/main"], env)
        sha = run(["git", "-C", wt, "rev-parse", "HEAD"], env).strip()
        gport = free_port()
        daemon = subprocess.Popen(
            [os.path.join(run(["git", "--exec-path"], env).strip(), "git-daemon"), "--reuseaddr",
             "--listen=127.0.0.1", f"--port={gport}", f"--base-path={srv}", "--export-all",
             "--enable=receive-pack"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(daemon)
        url = f"git://127.0.0.1:{gport}/app.git"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", gport), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cli = dict(env, KONDUCTOR_REMOTE=url, KONDUCTOR_CACHE_DIR=os.path.join(work, "cli-cache"))
        hport = free_port()
        server = subprocess.Popen(
            [K, "serve", "--listen", f"127.0.0.1:{hport}", "--tick-every", "3600", "--remote", f"app={url}"],
            env=dict(cli, KONDUCTOR_CACHE_DIR=os.path.join(work, "serve-cache"), KONDUCTOR_WEBHOOK_SECRET=SECRET),
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "w"))
        procs.append(server)
        conn = http.client.HTTPConnection("127.0.0.1", hport, timeout=30)

        def request(method, path, body=None, headers=None):
            nonlocal conn
            for attempt in (1, 2):
                try:
                    conn.request(method, path, body=body, headers=headers or {})
                    r = conn.getresponse()
                    return r.status, r.read()
                except (ConnectionError, http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", hport, timeout=30)
                    if attempt == 2:
                        raise

        for _ in range(300):
            try:
                if request("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            sys.exit("benches/serve.py: the server did not get ready")

        delivery = [0]

        def webhook(tag):
            delivery[0] += 1
            body = json.dumps({"ref": f"refs/tags/{tag}", "created": True, "deleted": False,
                               "repository": {"full_name": "bench/app"}}).encode()
            sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            return request("POST", "/webhook", body, {
                "X-GitHub-Event": "push", "X-GitHub-Delivery": f"bench-{delivery[0]}",
                "X-Hub-Signature-256": f"sha256={sig}", "Content-Type": "application/json"})[0]

        def waiting_train():
            t = run([K, "start", "--sha", sha], cli).strip()
            run([K, "tick", "--train", t], cli)
            run([L, "set-step-state", "--state-name", "success", "--triggering-tag", f"release={t}=a.1", "--sha", sha], cli)
            return t

        def has(tag):
            return os.path.exists(os.path.join(bare, "refs/tags", tag))

        # The plain ticks are taken in turns with the webhook events (one tick every
        # EVENTS/TICKS events), so both see the same machine load.
        def plain_tick():
            t = waiting_train()
            t0 = time.perf_counter()
            run([K, "tick", "--train", t], cli)
            plain.append((time.perf_counter() - t0) * 1000)
            assert has(f"release={t}=b.1")

        say(f"webhook -> trigger: {EVENTS} events, with {TICKS} plain ticks in turns")
        plain = []
        every = max(1, EVENTS // max(1, TICKS))
        lat = []
        last = None
        for i in range(EVENTS):
            if i % every == 0 and len(plain) < TICKS:
                plain_tick()
            t = waiting_train()
            target = f"release={t}=b.1"
            t0 = time.perf_counter()
            code = webhook(f"release={t}=a.1=success")
            assert code == 202, code
            while not has(target):
                if time.perf_counter() - t0 > 60:
                    sys.exit(f"benches/serve.py: {target} not created within 60 s")
                time.sleep(0.001)
            lat.append((time.perf_counter() - t0) * 1000)
            last = t
            if (i + 1) % 50 == 0:
                say(f"  {i + 1} events")

        def metric(text, name):
            return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))

        status, m0 = request("GET", "/metrics")
        ticks0 = metric(m0.decode(), "konductor_ticks_total")
        cpu0, rss0, _ = proc_stats(server.pid)
        say(f"load: {RATE}/s for {SECONDS} s")
        sent = errors = 0
        start = time.perf_counter()
        lags = 0.0
        while True:
            now = time.perf_counter() - start
            if now >= SECONDS:
                break
            due = int(now * RATE)
            while sent < due:
                try:
                    code = webhook(f"release={last}=a.1=success")
                    if code // 100 != 2:
                        errors += 1
                except OSError:
                    errors += 1
                sent += 1
            time.sleep(max(0.0, (sent + 1) / RATE - (time.perf_counter() - start)))
        took = time.perf_counter() - start
        time.sleep(1)
        cpu1, rss1, hwm = proc_stats(server.pid)
        _, m1 = request("GET", "/metrics")
        ticks1 = metric(m1.decode(), "konductor_ticks_total")

        med_t, med_w = statistics.median(plain), statistics.median(lat)
        rows = [
            "| measurement | figure |",
            "| --- | --- |",
            f"| one plain `konductor tick --train` (median of {TICKS}) | {med_t:.0f} ms |",
            f"| webhook → trigger on the server, median of {EVENTS} | {med_w:.0f} ms |",
            f"| webhook → trigger, p99 of {EVENTS} | {percentile(lat, 99):.0f} ms |",
            f"| median ratio webhook / tick (goal ≤ 1.5) | {med_w / med_t:.2f} |",
            f"| load: webhooks sent in {took:.0f} s | {sent} ({sent / took:.0f}/s) |",
            f"| load: errors (non-2xx or failed) | {errors} |",
            f"| load: ticks run for them (coalesced) | {ticks1 - ticks0:.0f} |",
            f"| load: server CPU | {cpu1 - cpu0:.1f} s ({100 * (cpu1 - cpu0) / took:.0f}% of one core) |",
            f"| load: server RSS before → after (peak) | {rss0:.0f} → {rss1:.0f} MB ({hwm:.0f} MB) |",
        ]
        table = "\n".join(rows)
        print(table)
        with open(OUT, "w") as f:
            f.write(f"# `konductor serve` benchmark\n\nWritten by `benches/serve.py` on {time.strftime('%Y-%m-%d')} "
                    f"(SERVE_EVENTS={EVENTS}, SERVE_TICKS={TICKS}, SERVE_RATE={RATE}, SERVE_SECONDS={SECONDS}); "
                    f"git daemon on loopback, {os.cpu_count()} cores.\n\n{table}\n")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

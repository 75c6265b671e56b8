#!/usr/bin/env python3
"""Drive headless Chromium over the DevTools protocol (--remote-debugging-pipe, std only)
for the live board test (tests/e2e/serve.rs):

  live_board.py CHROMIUM URL BEFORE_PNG AFTER_PNG SELECTOR STATE

Loads URL, marks the window (a reload would lose the mark), screenshots BEFORE_PNG, prints
`READY`, waits for a line on stdin, then waits (60 s at most) until the element SELECTOR has
`data-state` STATE, screenshots AFTER_PNG and prints one JSON line: `{"state": …,
"reloaded": …, "live": …}`.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

chromium, url, before, after, selector, want = sys.argv[1:7]
profile = tempfile.mkdtemp(prefix="konductor-cdp-")
to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()


def child_fds():
    a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
    b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
    os.dup2(a, 3)
    os.dup2(b, 4)


proc = subprocess.Popen(
    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1400,1600",
     "--hide-scrollbars", "about:blank"],
    # preexec_fn runs before close_fds would close 3 and 4; the other pipe ends are
    # close-on-exec (os.pipe), so nothing else leaks into chromium.
    preexec_fn=child_fds, close_fds=False,
    stdout=subprocess.DEVNULL, stderr=open(os.path.join(profile, "chromium.log"), "w"))
os.close(to_chrome_r)
os.close(from_chrome_w)
buf = b""
next_id = [0]
events = []


def send(method, params=None, session=None):
    next_id[0] += 1
    msg = {"id": next_id[0], "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
    return next_id[0]


def read_msg(deadline):
    global buf
    while b"\0" not in buf:
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("no answer from chromium")
        r, _, _ = select.select([from_chrome_r], [], [], left)
        if r:
            chunk = os.read(from_chrome_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            buf += chunk
    msg, buf = buf.split(b"\0", 1)
    return json.loads(msg)


def call(method, params=None, session=None, timeout=30):
    i = send(method, params, session)
    deadline = time.time() + timeout
    while True:
        m = read_msg(deadline)
        if m.get("id") == i:
            if "error" in m:
                raise RuntimeError(f"{method}: {m['error']}")
            return m.get("result", {})
        events.append(m)


def wait_event(name, timeout=30):
    deadline = time.time() + timeout
    for i, m in enumerate(events):
        if m.get("method") == name:
            del events[i]
            return m
    while True:
        m = read_msg(deadline)
        if m.get("method") == name:
            return m
        events.append(m)


def evaluate(session, expr):
    r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
    return r.get("result", {}).get("value")


def shot(session, path):
    data = call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))


try:
    targets = call("Target.getTargets")["targetInfos"]
    page = next(t for t in targets if t["type"] == "page")
    session = call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
    call("Page.enable", session=session)
    call("Runtime.enable", session=session)
    call("Page.navigate", {"url": url}, session)
    wait_event("Page.loadEventFired")
    evaluate(session, "window.__konductorMark = 42; true")
    # The stream is open once the script says so.
    deadline = time.time() + 30
    while evaluate(session, "document.getElementById('live-state').textContent") != "live":
        if time.time() > deadline:
            raise TimeoutError("the event stream did not open")
        time.sleep(0.1)
    shot(session, before)
    print("READY", flush=True)
    sys.stdin.readline()
    expr = f"(function(){{var e=document.querySelector({json.dumps(selector)});return e?e.getAttribute('data-state'):null;}})()"
    deadline = time.time() + 60
    state = evaluate(session, expr)
    while state != want and time.time() < deadline:
        time.sleep(0.2)
        state = evaluate(session, expr)
    time.sleep(0.3)
    shot(session, after)
    print(json.dumps({
        "state": state,
        "reloaded": evaluate(session, "window.__konductorMark") != 42,
        "live": evaluate(session, "document.getElementById('live-state').textContent"),
    }), flush=True)
finally:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    if os.environ.get("KONDUCTOR_CDP_DEBUG"):
        print(open(os.path.join(profile, "chromium.log")).read(), file=sys.stderr)
    shutil.rmtree(profile, ignore_errors=True)

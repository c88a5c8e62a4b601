#!/usr/bin/env python3
# A fake CLUSTERPRO command (clpstat, clpgrp, clprsc, clpcl, clpdown, clpmdstat, clpcfctrl,
# clpdiskctrl) for mirrorctl's tests. It knows nothing itself: it forwards its name, its arguments
# and, for `clpcfctrl --push`, the clp.conf of its -x directory to the test process, which answers
# from the simulated world (tests/support/fake_clp.rs); it then writes what it was given back
# (stdout, stderr, exit status, and for `clpcfctrl --pull` the clp.conf to put in -x).
# Its directory holds fakeclp.json: {"host": ..., "port": ..., "server": <the server it runs on>}.
import json
import os
import socket
import sys

here = os.path.dirname(os.path.abspath(sys.argv[0]))
with open(os.path.join(here, "fakeclp.json"), encoding="utf-8") as f:
    cfg = json.load(f)
tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]

xdir = None
if tool == "clpcfctrl" and "-x" in args:
    i = args.index("-x")
    if i + 1 < len(args):
        xdir = args[i + 1]

conf = None
if tool == "clpcfctrl" and "--push" in args and xdir is not None:
    try:
        with open(os.path.join(xdir, "clp.conf"), "rb") as f:
            conf = f.read().decode("utf-8")
    except OSError as e:
        sys.stderr.write("Failed to read the configuration file: %s\n" % e)
        sys.exit(1)

request = {"server": cfg["server"], "tool": tool, "args": args, "file": conf}
try:
    with socket.create_connection((cfg["host"], cfg["port"]), timeout=600) as s:
        s.sendall((json.dumps(request) + "\n").encode("utf-8"))
        reply = s.makefile("rb").readline()
except OSError as e:
    sys.stderr.write("fake %s: the simulator at %s:%s did not answer: %s\n" % (tool, cfg["host"], cfg["port"], e))
    sys.exit(1)
if not reply:
    sys.stderr.write("fake %s: the simulator closed the connection without an answer\n" % tool)
    sys.exit(1)
answer = json.loads(reply.decode("utf-8"))

if answer.get("file") is not None and xdir is not None:
    os.makedirs(xdir, exist_ok=True)
    with open(os.path.join(xdir, "clp.conf"), "wb") as f:
        f.write(answer["file"].encode("utf-8"))
sys.stdout.write(answer["stdout"])
sys.stderr.write(answer["stderr"])
sys.exit(answer["exit"])

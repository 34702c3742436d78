#!/usr/bin/env python3
"""A client loop for the workers tests: GET PATH on a new TCP connection each
time (so the kernel's SO_REUSEPORT choice is made afresh), C connections at
once, until the file STOP exists. Prints one JSON line: ok, failed, the
first errors. Usage: client_loop.py PORT STOPFILE [CONCURRENCY] [PATH]"""
import http.client, json, os, sys, threading, time

port, stop = int(sys.argv[1]), sys.argv[2]
conc = int(sys.argv[3]) if len(sys.argv) > 3 else 2
path = sys.argv[4] if len(sys.argv) > 4 else "/hello"
lock = threading.Lock()
res = {"ok": 0, "failed": 0, "errors": []}


def run():
    while not os.path.exists(stop):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path, headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read()
            c.close()
            good = r.status == 200
            err = None if good else "status %d %r" % (r.status, body[:80])
        except Exception as e:  # a reset, a refused connection...
            good, err = False, "%s: %s" % (type(e).__name__, e)
        with lock:
            if good:
                res["ok"] += 1
            else:
                res["failed"] += 1
                if len(res["errors"]) < 5:
                    res["errors"].append("%.3f %s" % (time.time(), err))


ts = [threading.Thread(target=run) for _ in range(conc)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(res), flush=True)

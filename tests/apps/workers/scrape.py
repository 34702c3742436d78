#!/usr/bin/env python3
"""Scrapes URL (GET /metrics) and parses it with the Prometheus client
library's own parser (Debian's python3-prometheus-client): prints one JSON
object, "name{k=v,...}" -> value, for every sample, and "_types" -> the
type of every family. Exit 3 when the library is missing."""
import json, sys, urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client missing", file=sys.stderr)
    sys.exit(3)

with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    ctype = r.headers.get("Content-Type", "")
    text = r.read().decode()
out = {"_types": {}, "_content_type": ctype}
for fam in text_string_to_metric_families(text):
    out["_types"][fam.name] = fam.type
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        key = "%s{%s}" % (s.name, labels)
        if key in out:  # the same series twice: not a valid exposition
            print("duplicate series " + key, file=sys.stderr)
            sys.exit(4)
        out[key] = s.value
print(json.dumps(out, sort_keys=True))

#!/usr/bin/env python3
"""Turn patch cases into expected outputs by running the oracle, `kubectl kustomize`.

Usage: oracle.py smp_cases.yaml > smp_cases.json

Each case: {name, resource, patch, target?, options?}. The oracle's output (or its error
message, as {"error": ...}) becomes `expected`; null means the resource was deleted.
"""
import json
import os
import subprocess
import sys
import tempfile

import yaml


def run(case):
    with tempfile.TemporaryDirectory() as d:
        res = case["resource"]
        docs = res if isinstance(res, list) else [res]
        with open(os.path.join(d, "res.yaml"), "w") as f:
            yaml.safe_dump_all(docs, f)
        patch = case["patch"]
        with open(os.path.join(d, "patch.yaml"), "w") as f:
            if isinstance(patch, str):
                f.write(patch)
            else:
                yaml.safe_dump(patch, f)
        entry = {"path": "patch.yaml"}
        for k in ("target", "options"):
            if k in case:
                entry[k] = case[k]
        kust = {"resources": ["res.yaml"], "patches": [entry]}
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            yaml.safe_dump(kust, f)
        p = subprocess.run(["/usr/bin/kubectl", "kustomize", d], capture_output=True, text=True)
        if p.returncode != 0:
            return {"error": p.stderr.strip()}
        out = [x for x in yaml.safe_load_all(p.stdout) if x is not None]
        return out


def main():
    cases = yaml.safe_load(open(sys.argv[1]))
    for c in cases:
        c["expected"] = run(c)
    json.dump(cases, sys.stdout, indent=1, sort_keys=False)
    print()


if __name__ == "__main__":
    main()

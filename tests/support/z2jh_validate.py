"""Validates Zero to JupyterHub values snippets against the chart's own schema, as Helm does.

Usage: python z2jh_validate.py CHART_DIR < snippets.json
  CHART_DIR holds the chart's values.schema.yaml and values.yaml (fixtures/z2jh).
  stdin: a JSON list of {"name": ..., "yaml": ...}.
Prints one JSON line per snippet: {"name": ..., "errors": ["path: message", ...]}.

Helm validates the merged values, not the user's file alone: the chart's values.yaml with the
user's values deep-merged over it (maps key by key; any other value, lists included, replaced;
a null deletes the key). Each snippet is merged on its own, then validated (JSON Schema draft 7).
"""
import json
import sys

import jsonschema
import yaml


def merge(base, over):
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif k in out:
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def main():
    chart = sys.argv[1]
    with open(f"{chart}/values.schema.yaml") as f:
        schema = yaml.safe_load(f)
    with open(f"{chart}/values.yaml") as f:
        defaults = yaml.safe_load(f)
    validator = jsonschema.Draft7Validator(schema)
    for s in json.load(sys.stdin):
        values = yaml.safe_load(s["yaml"]) or {}
        merged = merge(defaults, values)
        errors = [
            "/".join(str(p) for p in e.absolute_path) + ": " + e.message
            for e in sorted(validator.iter_errors(merged), key=lambda e: list(map(str, e.absolute_path)))
        ]
        print(json.dumps({"name": s["name"], "errors": errors}))


main()

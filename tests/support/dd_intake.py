#!/usr/bin/env python3
"""A local Datadog-compatible intake for hubpulse's tests.

What it is: an HTTP/1.1 server on 127.0.0.1 (a free port, printed as `PORT <n>` on stdout once it
listens) that accepts the bodies the agent sends to Datadog, decodes them by their
`Content-Encoding`, validates each against the request schema of its endpoint in Datadog's own
published OpenAPI spec (`openapi-v1.yaml` / `openapi-v2.yaml`), records everything, and answers as
the test scripts it to (202 by default).

What it is not: a model of Datadog's storage. It never aggregates; it records.

Endpoints it serves (the table `ENDPOINTS`): the request schema, the content encodings the spec's
`Content-Encoding` parameter allows, and the size limits the spec states.

Control endpoints for the test (no API key needed):
  POST /_script    JSON list of responses for the next requests, in order; each
                   {"status": int, "body": any, "headers": {..}} or {"hang": true}
                   (hold the connection open, answer nothing, until the client gives up).
                   When the list is empty the intake answers by validation: 202 `{"errors": []}`,
                   400 for a body that fails the schema, 413 over a size limit, 403 without key.
  GET  /_recorded  JSON list of every request received, in order (see `record()`).
  POST /_reset     forget the recorded requests, the script and the dashboards.

Dashboards (`/api/v1/dashboard`) behave like Datadog's Dashboards API, and need both
`DD-API-KEY` and `DD-APPLICATION-KEY` (403 otherwise): `GET` lists `{"dashboards": [{id, title,
url}]}`; `POST` validates the body against `Dashboard` and creates it (200, the dashboard with its
new `id`); `PUT /api/v1/dashboard/{id}` validates and replaces it (404 for an unknown id).

Every decision is made by the validation first and recorded, so a scripted answer never hides an
invalid body: `valid` and `errors` are recorded whatever was answered.

Requires: jsonschema, PyYAML, zstandard (tests/support/dd_intake_setup.sh installs them).
"""

import argparse
import gzip
import hashlib
import json
import os
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import yaml
import zstandard

# path -> (spec, schema component, allowed Content-Encoding values, (max wire bytes, max decoded bytes))
# Encodings: the enum of each operation's `Content-Encoding` header parameter in the spec
# (v2 MetricContentEncoding; v1 DistributionPointsContentEncoding; v2 logs ContentEncoding).
# Limits: v2 series states 512000 / 5242880 in its description; distribution_points states none,
# hubpulse holds it to the same pair; logs: 5 MB uncompressed.
ENDPOINTS = {
    "/api/v2/series": ("v2", "MetricPayload", {"deflate", "zstd1", "gzip"}, (512_000, 5_242_880)),
    "/api/v1/distribution_points": ("v1", "DistributionPointsPayload", {"deflate"}, (512_000, 5_242_880)),
    "/api/v1/dashboard": ("v1", "Dashboard", set(), (None, None)),
    "/api/v2/logs": ("v2", "HTTPLog", {"identity", "gzip", "deflate"}, (None, 5_000_000)),
    "/api/v1/events": ("v1", "EventCreateRequest", set(), (None, None)),
}


def load_spec(path, cache_dir):
    """The spec as a dict; parsing the 4 MB YAML takes seconds, so a JSON copy is cached by hash."""
    raw = open(path, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()[:32]
    cached = os.path.join(cache_dir, f"{digest}.json")
    if os.path.exists(cached):
        with open(cached) as f:
            return json.load(f)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(raw, Loader=loader)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = cached + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, default=str)  # examples hold YAML dates
    os.replace(tmp, cached)
    return doc


def to_json_schema(node, strict=False):
    """OpenAPI 3.0 schema objects -> JSON Schema (draft 4): `nullable: true` becomes a null type.
    Everything else the two specs use (type, enum, format, items, properties, required, oneOf,
    minItems/maxItems, minimum/maximum, additionalProperties, $ref) is JSON Schema already.

    `strict`: an object schema that lists `properties` and says nothing about others gets
    `additionalProperties: false`. Datadog ignores unknown fields, so a misspelt optional field
    (`resource` for `resources`) would be accepted and silently lost; the strict pass reports it
    (recorded as `unknown_fields`, never answered with 400: the spec allows them)."""
    if isinstance(node, list):
        return [to_json_schema(x, strict) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v, strict) for k, v in node.items() if k != "example"}
    if strict and "properties" in out and "additionalProperties" not in out and not any(
        k in out for k in ("oneOf", "anyOf", "allOf")
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False) is True:
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
        if "$ref" in out or "oneOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class Validators:
    def __init__(self, specs):
        self.roots = {}
        for name, doc in specs.items():
            for strict in (False, True):
                schemas = to_json_schema(doc["components"]["schemas"], strict)
                self.roots[(name, strict)] = {"components": {"schemas": schemas}}
        self.cache = {}

    def validate(self, spec, schema_name, body, strict=False):
        key = (spec, schema_name, strict)
        if key not in self.cache:
            root = dict(self.roots[(spec, strict)])
            root["$ref"] = f"#/components/schemas/{schema_name}"
            self.cache[key] = jsonschema.Draft4Validator(root)
        errs = sorted(self.cache[key].iter_errors(body), key=lambda e: list(e.absolute_path))
        return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}" for e in errs[:20]]


def decode(encoding, data):
    if encoding in (None, "", "identity"):
        return data
    if encoding == "deflate":
        return zlib.decompress(data)  # zlib-wrapped, as Datadog's clients send it
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding in ("zstd1", "zstd"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


class State:
    def __init__(self, validators):
        self.validators = validators
        self.lock = threading.Lock()
        self.recorded = []
        self.script = []
        self.release = threading.Event()
        self.dashboards = {}  # id -> body, in creation order
        self.next_id = 0


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: the test reads /_recorded
            pass

        def reply(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path == "/_recorded":
                with state.lock:
                    self.reply(200, state.recorded)
            elif self.path.split("?", 1)[0] == "/api/v1/dashboard":
                rec = {"method": "GET", "path": "/api/v1/dashboard", "api_key": self.headers.get("DD-API-KEY"),
                       "app_key": self.headers.get("DD-APPLICATION-KEY"), "valid": True, "errors": [], "body": None}
                with state.lock:
                    state.recorded.append(rec)
                    if not (rec["api_key"] and rec["app_key"]):
                        rec["answered"] = 403
                        self.reply(403, {"errors": ["Forbidden"]})
                        return
                    rec["answered"] = 200
                    listed = [{"id": i, "title": b.get("title"), "url": f"/dashboard/{i}"}
                              for i, b in state.dashboards.items()]
                self.reply(200, {"dashboards": listed})
            else:
                self.reply(404, {"errors": ["not found"]})

        def do_PUT(self):
            self.do_POST()

        def dashboard(self, rec, verdict):
            """Create (POST) or replace (PUT .../{id}) a valid dashboard: Datadog answers 200 with it."""
            if verdict[0] != 202:
                return verdict
            if not self.headers.get("DD-APPLICATION-KEY"):
                rec["errors"].append("missing DD-APPLICATION-KEY")
                return (403, {"errors": ["Forbidden"]})
            parts = self.path.split("?", 1)[0].rstrip("/").split("/")
            body = dict(rec["body"])
            with state.lock:
                if self.command == "PUT":
                    if len(parts) != 5 or parts[4] not in state.dashboards:
                        return (404, {"errors": ["Dashboard not found"]})
                    did = parts[4]
                else:
                    state.next_id += 1
                    did = f"abc-def-{state.next_id:03d}"
                body["id"] = did
                body["url"] = f"/dashboard/{did}"
                state.dashboards[did] = body
            return (200, body)

        def do_POST(self):
            raw = self.read_body()
            if self.path == "/_script":
                with state.lock:
                    state.script.extend(json.loads(raw))
                self.reply(200, {"ok": True})
                return
            if self.path == "/_reset":
                with state.lock:
                    state.recorded.clear()
                    state.script.clear()
                    state.dashboards.clear()
                self.reply(200, {"ok": True})
                return
            path = self.path.split("?", 1)[0]
            if path.startswith("/api/v1/dashboard/"):
                path = "/api/v1/dashboard"
            rec, verdict = self.check(path, raw)
            rec["method"] = self.command
            rec["app_key"] = self.headers.get("DD-APPLICATION-KEY")
            if path == "/api/v1/dashboard":
                verdict = self.dashboard(rec, verdict)
            with state.lock:
                scripted = state.script.pop(0) if state.script else None
                rec["answered"] = "hang" if scripted and scripted.get("hang") else (
                    scripted["status"] if scripted else verdict[0])
                state.recorded.append(rec)
            if scripted and scripted.get("hang"):
                state.release.wait(timeout=600)
                self.close_connection = True
                return
            if scripted:
                self.reply(scripted["status"], scripted.get("body", {"errors": []}), scripted.get("headers"))
            else:
                self.reply(*verdict)

        def check(self, path, raw):
            enc = self.headers.get("Content-Encoding")
            rec = {
                "path": path,
                "content_type": self.headers.get("Content-Type"),
                "content_encoding": enc,
                "api_key": self.headers.get("DD-API-KEY"),
                "wire_bytes": len(raw),
                "decoded_bytes": None,
                "body": None,
                "valid": False,
                "errors": [],
                "unknown_fields": [],
            }
            ep = ENDPOINTS.get(path)
            if ep is None:
                rec["errors"].append(f"unknown endpoint {path}")
                return rec, (404, {"errors": ["not found"]})
            spec, schema, encodings, (max_wire, max_decoded) = ep
            if not rec["api_key"]:
                rec["errors"].append("missing DD-API-KEY")
                return rec, (403, {"errors": ["Forbidden"]})
            if enc and enc not in encodings:
                rec["errors"].append(f"Content-Encoding {enc!r} not in the spec's enum {sorted(encodings)}")
                return rec, (400, {"errors": ["unsupported encoding"]})
            if max_wire is not None and len(raw) > max_wire:
                rec["errors"].append(f"{len(raw)} bytes on the wire > {max_wire}")
                return rec, (413, {"errors": ["Payload too large"]})
            try:
                data = decode(enc, raw)
            except Exception as e:  # noqa: BLE001 - any decoding failure is the client's fault
                rec["errors"].append(f"cannot decode {enc}: {e}")
                return rec, (400, {"errors": ["bad encoding"]})
            rec["decoded_bytes"] = len(data)
            if max_decoded is not None and len(data) > max_decoded:
                rec["errors"].append(f"{len(data)} decoded bytes > {max_decoded}")
                return rec, (413, {"errors": ["Payload too large"]})
            try:
                body = json.loads(data)
            except Exception as e:  # noqa: BLE001
                rec["errors"].append(f"not JSON: {e}")
                return rec, (400, {"errors": ["bad JSON"]})
            rec["body"] = body
            rec["errors"] = state.validators.validate(spec, schema, body)
            rec["valid"] = not rec["errors"]
            if rec["valid"]:
                rec["unknown_fields"] = state.validators.validate(spec, schema, body, strict=True)
            if rec["errors"]:
                return rec, (400, {"errors": rec["errors"]})
            return rec, (202, {"errors": []})

    return Handler


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec-dir", default=os.path.join(here, "../../fixtures/datadog/spec"))
    ap.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("HUBPULSE_BENCH_DIR", os.path.expanduser("~/.cache/hubpulse-bench")), "dd-spec"))
    ap.add_argument("--check", metavar="SCHEMA_PATH", help="validate one JSON file against the "
                    "request schema of the endpoint SCHEMA_PATH (e.g. /api/v1/dashboard) and exit")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    specs = {
        "v1": load_spec(os.path.join(a.spec_dir, "openapi-v1.yaml"), a.cache_dir),
        "v2": load_spec(os.path.join(a.spec_dir, "openapi-v2.yaml"), a.cache_dir),
    }
    validators = Validators(specs)
    if a.check:
        spec, schema, _, _ = ENDPOINTS[a.check]
        bad = 0
        for f in a.files:
            body = json.load(open(f))
            errs = validators.validate(spec, schema, body) or [
                f"(strict) {e}" for e in validators.validate(spec, schema, body, strict=True)]
            for e in errs:
                print(f"{f}: {e}")
            bad += bool(errs)
        print(f"{len(a.files) - bad} passed, {bad} failed")
        sys.exit(1 if bad else 0)
    state = State(validators)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    srv.daemon_threads = True
    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    finally:
        state.release.set()


if __name__ == "__main__":
    main()

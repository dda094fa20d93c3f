"""A standalone Kubernetes API for the end-to-end run: kmock's emulator as its own process.

    python -m tests.e2e.kmock_server --port 6443 --kubeconfig /tmp/run/kubeconfig

On top of what ``tests.support.kube_cluster.Emulator`` fills in (uid, resourceVersion,
creationTimestamp, namespace, optimistic concurrency), this server does what the real API server
does for ``kubectl``:

- a ``CustomResourceDefinition`` that is created or updated registers its resource (group, served
  versions, plural, kind, short names, scope, status subresource) for discovery and CRUD, as the
  apiextensions server does; ``kubectl apply -f crds/`` therefore makes ``bunko.dev`` exist;
- ``kubectl get`` asks for ``as=Table``: lists and single objects of a custom resource are answered
  as a ``meta.k8s.io/v1`` Table built from the CRD's ``additionalPrinterColumns`` (simple JSONPath:
  fields, ``[n]`` and ``[?(@.k=="v")]``), dates as ages, so the status columns show;
- custom objects are validated against the CRD's ``openAPIV3Schema`` (structure and types, enums,
  ranges) with ``jsonschema``; an invalid one is refused with 422 ``Invalid`` as the API server does.

KubeRay's ``RayService`` (``ray.io/v1``) is registered from the start, as if the KubeRay operator
chart had installed its CRD. The process serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml

from tests.support.kube_cluster import Emulator

CRD_RESOURCE = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
STATIC = {("ray.io", "v1", "rayservices"): ("RayService", "rayservice", ["rayservice"])}
_FILTER = re.compile(r'^\?\(@\.([A-Za-z0-9_]+)\s*==\s*["\']([^"\']*)["\']\)$')


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The values at a kubectl-style JSONPath (``.a.b``, ``.a[0]``, ``.a[?(@.k=="v")].b``)."""
    tokens = re.findall(r"\.([A-Za-z0-9_\-]+)|\[([^\]]+)\]", path)
    current = [obj]
    for field, bracket in tokens:
        nxt: list[Any] = []
        for value in current:
            if field:
                if isinstance(value, dict) and field in value:
                    nxt.append(value[field])
            elif bracket.isdigit() or bracket.lstrip("-").isdigit():
                if isinstance(value, list) and -len(value) <= int(bracket) < len(value):
                    nxt.append(value[int(bracket)])
            elif (m := _FILTER.match(bracket)) and isinstance(value, list):
                nxt.extend(v for v in value if isinstance(v, dict) and str(v.get(m[1])) == m[2])
            elif bracket == "*" and isinstance(value, list):
                nxt.extend(value)
        current = nxt
    return current


def human_age(timestamp: str, now: datetime.datetime | None = None) -> str:
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _cell(values: list[Any], column: dict[str, Any]) -> Any:
    if not values:
        return None
    value = values[0] if len(values) == 1 else ",".join(str(v) for v in values)
    if column.get("type") == "date" and isinstance(value, str):
        return human_age(value)
    return value


def _strip_schema(schema: Any) -> Any:
    """The CRD schema as plain JSON Schema: Kubernetes extensions dropped, ``int-or-string`` and
    ``preserve-unknown-fields`` honoured. Unknown fields are let through (the API server prunes
    them silently); CEL rules are not evaluated."""
    if isinstance(schema, list):
        return [_strip_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strip_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
    return out


class TableEmulator(Emulator):
    """kmock's emulator plus CRD registration, server-side printing and schema validation."""

    printer_columns: dict[tuple[str, str, str], list[dict[str, Any]]]
    schemas: dict[tuple[str, str, str], dict[str, Any]]

    def setup(self) -> None:
        self.printer_columns = {}
        self.schemas = {}
        self.resources.load_bundled()
        for (group, version, plural), (kind, singular, short) in STATIC.items():
            self.resources[f"{group}/{version}/{plural}"] = kmock.ResourceInfo(
                kind=kind, singular=singular, shortnames=set(short), namespaced=True,
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                subresources={"status"})

    def register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        group, names = spec.get("group", ""), spec.get("names") or {}
        plural = names.get("plural", "")
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            key = (group, v["name"], plural)
            self.resources[f"{group}/{v['name']}/{plural}"] = kmock.ResourceInfo(
                kind=names.get("kind"), singular=names.get("singular") or plural,
                shortnames=set(names.get("shortNames") or []),
                categories=set(names.get("categories") or []),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                verbs={"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
                subresources={"status"} if "status" in (v.get("subresources") or {}) else set())
            self.printer_columns[key] = list(v.get("additionalPrinterColumns") or [])
            schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {}
            self.schemas[key] = _strip_schema(schema)

    def _validate(self, key: tuple[str, str, str], obj: dict[str, Any]) -> None:
        import jsonschema

        schema = self.schemas.get(key)
        if not schema:
            return
        body = {k: v for k, v in obj.items() if k != "status"}
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body),
                        key=lambda e: list(e.absolute_path))
        if errors:
            causes = [{"field": ".".join(str(p) for p in e.absolute_path), "message": e.message}
                      for e in errors[:10]]
            name = (obj.get("metadata") or {}).get("name", "")
            raise kmock.KubernetesError(
                status=422, reason="Invalid",
                message=f'{obj.get("kind")} "{name}" is invalid: '
                        + "; ".join(f"{c['field']}: {c['message']}" for c in causes),
                details={"name": name, "kind": obj.get("kind"), "causes": causes})

    async def _handle(self, request: Any) -> Any:
        res = request.resource
        key = (res.group, res.version, res.plural) if res is not None else None
        if key is not None and key in self.schemas and isinstance(request.data, dict) \
                and request.subresource is None:
            if request.action == kmock.action.CREATE:
                self._validate(key, request.data)
            elif request.action == kmock.action.UPDATE and request.name:
                merged = _merged(self._current(key, request), request.data)
                if merged is not None:
                    self._validate(key, merged)
        if key is not None and key in self.printer_columns and _wants_table(request) \
                and request.action in (kmock.action.LIST, kmock.action.FETCH):
            return self._table(key, request)
        response = await super()._handle(request)
        if key == CRD_RESOURCE and request.action in (kmock.action.CREATE, kmock.action.UPDATE):
            crd = self._stored(key, None, _name_of(request))
            if crd is not None:
                self.register_crd(crd)
        return response

    def _stored(self, key: tuple[str, str, str], namespace: str | None, name: str | None) -> Any:
        for (resource, ns, nm), obj in self.objects.items():
            if (resource.group, resource.version, resource.plural) == key and nm == name \
                    and (namespace is None or ns == namespace) and not obj.deleted:
                return obj.raw
        return None

    def _current(self, key: tuple[str, str, str], request: Any) -> Any:
        return self._stored(key, request.namespace, request.name)

    def _table(self, key: tuple[str, str, str], request: Any) -> aiohttp.web.StreamResponse:
        columns = self.printer_columns[key]
        items = []
        for (resource, ns, nm), obj in self.objects.items():
            if (resource.group, resource.version, resource.plural) != key or obj.deleted:
                continue
            if request.namespace and ns != request.namespace:
                continue
            if request.action == kmock.action.FETCH and nm != request.name:
                continue
            items.append(obj.raw)
        if request.action == kmock.action.FETCH and not items:
            raise kmock.KubernetesError(status=404, reason="NotFound",
                                        message=f'{key[2]} "{request.name}" not found')
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                        "description": "Name must be unique within a namespace."}]
        definitions += [{"name": c["name"], "type": c.get("type", "string"),
                         "format": c.get("format", ""), "priority": c.get("priority", 0),
                         "description": c.get("description", "")} for c in columns]
        rows = [{"cells": [o["metadata"]["name"], *(_cell(jsonpath(o, c["jsonPath"]), c)
                                                   for c in columns)],
                 "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                            "metadata": o["metadata"]}} for o in items]
        table = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                 "metadata": {"resourceVersion": "1"}, "columnDefinitions": definitions, "rows": rows}
        return aiohttp.web.json_response(table)


def _wants_table(request: Any) -> bool:
    accept = ""
    for k, v in (request.headers or {}).items():
        if k.lower() == "accept":
            accept = v
    return "as=Table" in accept


def _name_of(request: Any) -> str | None:
    if request.name:
        return str(request.name)
    if isinstance(request.data, dict):
        return (request.data.get("metadata") or {}).get("name")
    return None


def _merged(current: Any, patch: Any) -> Any:
    """A JSON merge patch applied to ``current`` (None values delete keys)."""
    if current is None:
        return None
    if not isinstance(patch, dict) or not isinstance(current, dict):
        return patch
    out = dict(current)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merged(out.get(k), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_kubeconfig(path: Path, host: str, port: int) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": f"http://{host}:{port}"}}],
        "users": [{"name": "kmock", "user": {"token": "e2e"}}],
        "contexts": [{"name": "kmock",
                      "context": {"cluster": "kmock", "user": "kmock", "namespace": "default"}}],
    }))


async def serve(host: str, port: int, kubeconfig: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with TableEmulator() as k, kmock.Server(k, host=host, port=port) as srv:
        k.setup()
        if kubeconfig is not None:
            write_kubeconfig(kubeconfig, host, srv.port)
        print(json.dumps({"event": "kmock.ready", "port": srv.port}), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.kubeconfig))


if __name__ == "__main__":
    main()

"""A Kubernetes API for tests: kmock's emulator, filled in where kmock stores objects verbatim.

``FakeCluster`` runs the emulator on 127.0.0.1 (free port) in a thread with its own event loop,
writes a kubeconfig pointing at it, and offers ``apply`` / ``get`` / ``patch_status`` / ``delete``
through the real ``kubernetes`` client, the way ``kubectl`` would reach a cluster.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

import kmock
import yaml
from kmock._internal import parsing as _kmock_parsing
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

_parse_path = _kmock_parsing.parse_path


def _parse_path_with_namespaces(path: str) -> Any:
    """kmock 0.8 reads ``/api/v1/namespaces[/NAME]`` as a namespaced path with nothing after it
    and fails (500); it is the Namespace resource itself, which kopf lists when it watches chosen
    namespaces (``--namespace``, the chart's default mode)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        return _kmock_parsing.ParsedPath("", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None, None)
    return _parse_path(path)


_kmock_parsing.parse_path = _parse_path_with_namespaces

PLURALS = {
    "Pipeline": ("bunko.dev", "v1alpha1", "pipelines"),
    "DocumentCollection": ("bunko.dev", "v1alpha1", "documentcollections"),
    "RayService": ("ray.io", "v1", "rayservices"),
}


class Emulator(kmock.KubernetesEmulator):
    """Fills what an API server fills on create (uid, resourceVersion, generation, timestamp,
    namespace), bumps resourceVersion on every change and generation on every change of spec."""

    _versions = itertools.count(1)
    # The current resourceVersion per object, kept here: the emulator's own object view is keyed
    # in a way a status-subresource write does not find, which let stale status writes through.
    @property
    def _object_versions(self) -> dict[tuple[str, str | None, str], str]:
        return self.__dict__.setdefault("_current_versions", {})  # type: ignore[no-any-return]

    @property
    def _object_generations(self) -> dict[tuple[str, str | None, str], int]:
        return self.__dict__.setdefault("_current_generations", {})  # type: ignore[no-any-return]

    @staticmethod
    def _key(request: Any, name: str | None) -> tuple[str, str | None, str]:
        return (str(getattr(request.resource, "plural", request.resource)), request.namespace, name or "")

    async def _handle(self, request: Any) -> Any:
        if request.resource is not None and request.action == kmock.action.DELETE and request.name:
            self._object_versions.pop(self._key(request, request.name), None)
            self._object_generations.pop(self._key(request, request.name), None)
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == kmock.action.CREATE:
                meta = request.data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault(
                    "creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                )
                meta.setdefault("generation", 1)
                self._object_generations[self._key(request, meta.get("name"))] = int(meta["generation"])
                if request.namespace:
                    meta.setdefault("namespace", request.namespace)
                meta["resourceVersion"] = str(next(self._versions))
                self._object_versions[self._key(request, meta.get("name"))] = meta["resourceVersion"]
            elif request.action == kmock.action.UPDATE:
                if not isinstance(request.data.get("metadata"), dict):
                    request.data["metadata"] = {}
                meta = request.data["metadata"]
                # Optimistic concurrency, as the API server does it: a write that names a
                # resourceVersion fails with 409 Conflict unless that is still the current one.
                expected = meta.get("resourceVersion")
                key = self._key(request, request.name)
                current = self._object_versions.get(key)
                if expected is not None and current is not None and current != expected:
                    raise kmock.KubernetesError(
                        status=409, reason="Conflict", message="the object has been modified"
                    )
                meta["resourceVersion"] = str(next(self._versions))
                self._object_versions[key] = meta["resourceVersion"]
                # As the API server: a change of spec (not of status, not of metadata alone) is a
                # new generation; controllers report the one they acted on as observedGeneration.
                if request.subresource is None and "spec" in request.data:
                    self._object_generations[key] = self._object_generations.get(key, 1) + 1
                    meta["generation"] = self._object_generations[key]
        return await super()._handle(request)


class FakeCluster:
    def __init__(self, tmp: Path) -> None:
        self.kubeconfig = tmp / "kubeconfig"
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.emulator: Emulator | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with Emulator() as k, kmock.Server(k) as srv:
            k.resources.load_bundled()
            for kind, (group, version, plural) in PLURALS.items():
                k.resources[f"{group}/{version}/{plural}"] = kmock.ResourceInfo(
                    kind=kind,
                    singular=kind.lower(),
                    namespaced=True,
                    verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                    subresources={"status"},
                )
            self.emulator, self.port = k, srv.port
            self._ready.set()
            await self._stop.wait()

    def start(self) -> FakeCluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the kmock emulator did not start in 10 s")
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "kmock",
                    "clusters": [{"name": "kmock", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "kmock", "user": {"token": "test"}}],
                    "contexts": [
                        {
                            "name": "kmock",
                            "context": {"cluster": "kmock", "user": "kmock", "namespace": "default"},
                        }
                    ],
                }
            )
        )
        # The namespace the tests use exists, as in any cluster: kopf watching chosen namespaces
        # (--namespace) lists the Namespace objects to learn which of them exist.
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        client.CoreV1Api(client.ApiClient(cfg)).create_namespace({"metadata": {"name": "default"}})
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # --- kubectl-like access -----------------------------------------------------------------

    def api(self) -> client.CustomObjectsApi:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        return client.CustomObjectsApi(client.ApiClient(cfg))

    def apply(self, body: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        group, version, plural = PLURALS[body["kind"]]
        name = body["metadata"]["name"]
        live = self.get(body["kind"], name, namespace)
        if live is None:
            created = self.api().create_namespaced_custom_object(group, version, namespace, plural, body)
            return cast(dict[str, Any], created)
        patched = self.api().patch_namespaced_custom_object(
            group, version, namespace, plural, name, {"spec": body["spec"]}
        )
        return cast(dict[str, Any], patched)

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        group, version, plural = PLURALS[kind]
        try:
            obj = self.api().get_namespaced_custom_object(group, version, namespace, plural, name)
            return cast(dict[str, Any], obj)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch(self, kind: str, name: str, patch: dict[str, Any], namespace: str = "default") -> None:
        group, version, plural = PLURALS[kind]
        self.api().patch_namespaced_custom_object(group, version, namespace, plural, name, patch)

    def patch_status(self, kind: str, name: str, status: dict[str, Any], namespace: str = "default") -> None:
        group, version, plural = PLURALS[kind]
        self.api().patch_namespaced_custom_object_status(
            group, version, namespace, plural, name, {"status": status}
        )

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        group, version, plural = PLURALS[kind]
        self.api().delete_namespaced_custom_object(group, version, namespace, plural, name)

    def writes(self, kind: str) -> list[tuple[str, str | None]]:
        """(method, subresource) of every create/patch/update/delete request made on ``kind``."""
        assert self.emulator is not None
        _, _, plural = PLURALS[kind]
        out = []
        for r in list(self.emulator):
            if (
                r.resource is not None
                and r.resource.plural == plural
                and r.method.value in ("POST", "PATCH", "PUT", "DELETE")
            ):
                out.append((r.method.value, r.subresource))
        return out


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")

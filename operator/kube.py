"""The only module that talks to the Kubernetes API (besides kopf itself): read, create, patch.

A fresh client per call from the in-cluster service account or ``KUBECONFIG``: handlers run in
kopf's thread pool, and a client holds no state worth sharing between them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from bunko.errors import Conflict, Unavailable
from bunko.operator.kinds.base import GROUP, VERSION
from bunko.operator.status import contains, merge_patch

RAY_GROUP, RAY_VERSION, RAYSERVICES = "ray.io", "v1", "rayservices"
SPEC_HASH = "bunko.dev/spec-hash"
MANAGED_LABEL = "bunko.dev/pipeline"

Applied = Literal["created", "patched", "unchanged"]


@contextmanager
def custom_objects() -> Iterator[client.CustomObjectsApi]:
    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        path = os.environ.get("KUBECONFIG", "")
        config.load_kube_config(
            config_file=path if path and os.pathsep not in path else None, client_configuration=cfg
        )
    with client.ApiClient(cfg) as api:
        yield client.CustomObjectsApi(api)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        if exc.status in (429, 500, 502, 503, 504):
            raise Unavailable(f"Kubernetes API unavailable during {what}: {exc.status} {exc.reason}") from exc
        raise
    except (HTTPError, OSError) as exc:
        raise Unavailable(f"cannot reach the Kubernetes API during {what}: {exc}") from exc


def get(group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    with _translated(f"get {plural}/{name}"), custom_objects() as api:
        try:
            obj = cast(
                dict[str, Any], api.get_namespaced_custom_object(group, version, namespace, plural, name)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    return obj


def get_pipeline(namespace: str, name: str) -> dict[str, Any] | None:
    return get(GROUP, VERSION, "pipelines", namespace, name)


def collections_using(namespace: str, pipeline: str) -> list[dict[str, Any]]:
    """The DocumentCollections of ``namespace`` whose spec.pipelineRef names ``pipeline``."""
    with _translated("list documentcollections"), custom_objects() as api:
        found = cast(dict[str, Any],
                     api.list_namespaced_custom_object(GROUP, VERSION, namespace, "documentcollections"))
    return [c for c in found.get("items", [])
            if ((c.get("spec") or {}).get("pipelineRef") or {}).get("name") == pipeline]


def annotate(plural: str, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
    with _translated(f"annotate {plural}/{name}"), custom_objects() as api:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, {"metadata": {"annotations": dict(annotations)}}
        )


def patch_status(
    group: str,
    version: str,
    plural: str,
    namespace: str,
    name: str,
    status: Mapping[str, Any],
    resource_version: str | None = None,
) -> bool:
    """Merge ``status`` in; with ``resource_version``, only if nobody wrote since (False: conflict)."""
    body: dict[str, Any] = {"status": dict(status)}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    with _translated(f"patch {plural}/{name}/status"), custom_objects() as api:
        try:
            api.patch_namespaced_custom_object_status(group, version, namespace, plural, name, body)
        except ApiException as exc:
            if exc.status == 409 and resource_version is not None:
                return False
            raise
    return True


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def apply_rayservice(desired: Mapping[str, Any]) -> Applied:
    """Create the RayService, or patch it only where it differs from ``desired``."""
    meta = desired["metadata"]
    ns, name = meta["namespace"], meta["name"]
    digest = spec_hash(desired["spec"])
    annotations = {**meta.get("annotations", {}), SPEC_HASH: digest}
    body = {**desired, "metadata": {**meta, "annotations": annotations}}
    live = get(RAY_GROUP, RAY_VERSION, RAYSERVICES, ns, name)
    with _translated(f"apply rayservices/{name}"), custom_objects() as api:
        if live is None:
            api.create_namespaced_custom_object(RAY_GROUP, RAY_VERSION, ns, RAYSERVICES, body)
            return "created"
        live_meta = live.get("metadata", {})
        if MANAGED_LABEL not in (live_meta.get("labels") or {}):
            raise Conflict(
                f"RayService {ns}/{name} exists and is not managed by Bunko; delete it or rename the Pipeline"
            )
        live_annotations = live_meta.get("annotations") or {}
        if all(live_annotations.get(k) == v for k, v in annotations.items()) and contains(
            live.get("spec"), desired["spec"]
        ):
            return "unchanged"
        patch = {
            "metadata": {
                "annotations": annotations,
                "labels": meta.get("labels", {}),
                "ownerReferences": meta.get("ownerReferences", []),
            },
            "spec": merge_patch(live.get("spec", {}), desired["spec"]),
        }
        api.patch_namespaced_custom_object(RAY_GROUP, RAY_VERSION, ns, RAYSERVICES, name, patch)
        return "patched"

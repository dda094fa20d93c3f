"""The only module that talks to the Kubernetes API (besides kopf itself): read, create, patch.

Through lightkube (a few MB over httpx) rather than the official client (~125 MB, a seventh of the
operator image): a fresh client per call from the in-cluster service account or ``KUBECONFIG``,
because handlers run in kopf's thread pool and a client holds no state worth sharing between them.
kopf logs in by itself (its own kubeconfig and service-account readers when the official client is
not installed, as in the operator image).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.types import PatchType

from bunko.errors import Conflict, Unavailable
from bunko.operator.kinds import collection as collection_kind
from bunko.operator.kinds import pipeline as pipeline_kind
from bunko.operator.kinds.base import GROUP, VERSION
from bunko.operator.status import contains, merge_patch

RAY_GROUP, RAY_VERSION, RAYSERVICES = "ray.io", "v1", "rayservices"
SPEC_HASH = "bunko.dev/spec-hash"
MANAGED_LABEL = "bunko.dev/pipeline"

Applied = Literal["created", "patched", "unchanged"]

# (group, plural) -> kind: lightkube addresses a custom resource by its kind as well.
_KINDS = {
    (GROUP, pipeline_kind.KIND.plural): pipeline_kind.KIND.kind,
    (GROUP, collection_kind.KIND.plural): collection_kind.KIND.kind,
    (RAY_GROUP, RAYSERVICES): "RayService",
}


def resource(group: str, version: str, plural: str) -> type[GenericNamespacedResource]:
    return create_namespaced_resource(group, version, _KINDS[(group, plural)], plural)


@contextmanager
def client() -> Iterator[Client]:
    # The service account in a pod, else KUBECONFIG or ~/.kube/config; trust_env=False only keeps
    # HTTP(S)_PROXY out (lightkube would otherwise read the kubeconfig the same way).
    made = Client(KubeConfig.from_env(), field_manager="bunko-operator", trust_env=False)
    try:
        yield made
    finally:
        made.close()


# lightkube raises ApiError where the server answers with a JSON Status (a real API server always
# does) and httpx's HTTPStatusError otherwise; the HTTP status is what counts in either case.
StatusError = httpx2.HTTPStatusError


def _code(exc: StatusError) -> int:
    return int(exc.response.status_code)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except StatusError as exc:
        code = _code(exc)
        if code in (429, 500, 502, 503, 504):
            reason = exc.status.reason if isinstance(exc, ApiError) else exc.response.reason_phrase
            raise Unavailable(f"Kubernetes API unavailable during {what}: {code} {reason}") from exc
        raise
    except (httpx2.TransportError, ConfigError, OSError) as exc:
        raise Unavailable(f"cannot reach the Kubernetes API during {what}: {exc}") from exc


def get(group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    with _translated(f"get {plural}/{name}"), client() as api:
        try:
            obj = api.get(resource(group, version, plural), name, namespace=namespace)
        except StatusError as exc:
            if _code(exc) == 404:
                return None
            raise
    return obj.to_dict()


def get_pipeline(namespace: str, name: str) -> dict[str, Any] | None:
    return get(GROUP, VERSION, pipeline_kind.KIND.plural, namespace, name)


def collections_using(namespace: str, pipeline: str) -> list[dict[str, Any]]:
    """The DocumentCollections of ``namespace`` whose spec.pipelineRef names ``pipeline``."""
    with _translated(f"list {collection_kind.KIND.plural}"), client() as api:
        found = [c.to_dict() for c in api.list(resource(GROUP, VERSION, collection_kind.KIND.plural),
                                           namespace=namespace)]
    return [c for c in found if ((c.get("spec") or {}).get("pipelineRef") or {}).get("name") == pipeline]


def annotate(plural: str, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
    with _translated(f"annotate {plural}/{name}"), client() as api:
        api.patch(resource(GROUP, VERSION, plural), name, {"metadata": {"annotations": dict(annotations)}},
                  namespace=namespace, patch_type=PatchType.MERGE)


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
    with _translated(f"patch {plural}/{name}/status"), client() as api:
        try:
            api.patch(resource(group, version, plural).Status, name, body, namespace=namespace,
                      patch_type=PatchType.MERGE)
        except StatusError as exc:
            if _code(exc) == 409 and resource_version is not None:
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
    rayservice = resource(RAY_GROUP, RAY_VERSION, RAYSERVICES)
    with _translated(f"apply rayservices/{name}"), client() as api:
        if live is None:
            api.create(rayservice.from_dict(body), namespace=ns)
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
        api.patch(rayservice, name, patch, namespace=ns, patch_type=PatchType.MERGE)
        return "patched"

"""Pipeline → GPU plan → RayService, and the RayService's status back into the Pipeline's.

Thin wiring: ``planner.plan_pipeline`` and ``rayservice.render_rayservice`` decide everything;
these handlers validate, call them, apply the result and report it (status, Events, metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from bunko.errors import Conflict, InvalidInput, Unavailable
from bunko.operator import kube, metrics, planner, rayservice, schemas
from bunko.operator.status import condition, generation_of, get_condition, merge_conditions, status_changes

PLURAL = "pipelines"
RETRY_DELAY_S = 30


def write_status(status: Mapping[str, Any] | None, patch: kopf.Patch, desired: dict[str, Any]) -> None:
    """Put into ``patch.status`` only the fields of ``desired`` that differ from ``status``."""
    current = dict(status or {})
    if "conditions" in desired:
        desired = {
            **desired,
            "conditions": merge_conditions(current.get("conditions"), desired["conditions"]),
        }
    for key, value in status_changes(current, desired).items():
        patch.status[key] = value


def refuse(
    body: kopf.Body,
    status: Mapping[str, Any] | None,
    patch: kopf.Patch,
    reason: str,
    message: str,
    condition_type: str = "Planned",
) -> None:
    """An invalid spec: say so in a condition and an Event, and stop retrying until the spec changes."""
    gen = generation_of(body)
    write_status(
        status,
        patch,
        {
            "phase": "Failed",
            "message": message,
            "observedGeneration": gen,
            "conditions": [condition(condition_type, False, reason, message, generation=gen)],
        },
    )
    kopf.warn(body, reason=reason, message=message)
    raise kopf.PermanentError(message)


@kopf.on.resume(kube.GROUP, kube.VERSION, PLURAL)
@kopf.on.create(kube.GROUP, kube.VERSION, PLURAL)
@kopf.on.update(kube.GROUP, kube.VERSION, PLURAL, field="spec")
def reconcile_pipeline(
    spec: kopf.Spec,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    assert namespace is not None  # a namespaced resource
    gen = generation_of(body)
    with metrics.reconciling("Pipeline"):
        try:
            typed = schemas.parse_pipeline(spec)
            plan = planner.plan_pipeline(typed)
        except InvalidInput as exc:
            refuse(body, status, patch, "InvalidSpec", exc.message)
        tell_collections(namespace, name, typed.embedding.model)
        metrics.PLAN_FEASIBLE.labels(namespace, name).set(1 if plan.feasible else 0)
        if not plan.feasible:
            write_status(
                status,
                patch,
                {
                    "phase": "Infeasible",
                    "message": plan.message,
                    "observedGeneration": gen,
                    "placement": [],
                    "conditions": [condition("Planned", False, plan.reason, plan.message, generation=gen)],
                },
            )
            kopf.warn(body, reason=plan.reason, message=plan.message)
            return

        desired = rayservice.render_rayservice(name, namespace, typed, plan, generation=gen)
        kopf.adopt(desired)
        try:
            applied = kube.apply_rayservice(desired)
        except Unavailable as exc:
            raise kopf.TemporaryError(exc.message, delay=RETRY_DELAY_S) from exc
        except Conflict as exc:
            refuse(body, status, patch, "RayServiceConflict", exc.message, condition_type="Ready")
        if applied != "unchanged":
            kopf.info(
                body,
                reason=f"RayService{applied.title()}",
                message=f"RayService {name} {applied}. {plan.message}",
            )

        conditions = [condition("Planned", True, "Planned", plan.message, generation=gen)]
        ready = get_condition(status, "Ready")
        phase = status.get("phase") if status else None
        if applied != "unchanged" or ready is None or phase not in ("Ready", "Degraded", "Deploying"):
            phase = "Deploying"
            conditions.append(
                condition(
                    "Ready",
                    False,
                    "Deploying",
                    f"RayService {name} {applied}; waiting for KubeRay to report it ready",
                    generation=gen,
                )
            )
        write_status(
            status,
            patch,
            {
                "phase": phase,
                "message": plan.message,
                "observedGeneration": gen,
                "rayService": name,
                "placement": plan.placement_status(),
                "endpoints": rayservice.endpoints(name, namespace, typed),
                "conditions": conditions,
            },
        )


# On the DocumentCollections that use a Pipeline: the embedding model it serves. A change reaches
# their handler (bunko.operator.collection), which marks them ReindexRequired or re-queues their
# documents. Not under kopf's own "bunko.dev/" prefix, which kopf leaves out of its diffs.
EMBEDDING_ANNOTATION = f"pipeline.{kube.GROUP}/embedding-model"


def tell_collections(namespace: str, pipeline: str, model: str) -> None:
    """Annotate each DocumentCollection using ``pipeline`` with its embedding model, where it differs."""
    try:
        for coll in kube.collections_using(namespace, pipeline):
            meta = coll.get("metadata") or {}
            if (meta.get("annotations") or {}).get(EMBEDDING_ANNOTATION) != model:
                kube.annotate("documentcollections", namespace, meta["name"], {EMBEDDING_ANNOTATION: model})
    except Unavailable as exc:
        raise kopf.TemporaryError(exc.message, delay=RETRY_DELAY_S) from exc


def owning_pipeline(rs: Mapping[str, Any]) -> str | None:
    for ref in rs.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("kind") == "Pipeline" and str(ref.get("apiVersion", "")).startswith(kube.GROUP + "/"):
            return str(ref["name"])
    return None


@kopf.on.event(kube.RAY_GROUP, kube.RAY_VERSION, kube.RAYSERVICES, labels={kube.MANAGED_LABEL: kopf.PRESENT})
def mirror_rayservice_status(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **_: Any) -> None:
    """Every RayService event re-derives the owning Pipeline's readiness (level-, not edge-triggered)."""
    owner = owning_pipeline(body)
    if owner is None or namespace is None:
        return
    with metrics.reconciling("RayServiceStatus"):
        # Read-modify-write of the Pipeline's conditions, guarded by its resourceVersion: the
        # Pipeline handler may write them at the same moment.
        for _attempt in range(5):
            try:
                pipeline = kube.get_pipeline(namespace, owner)
            except Unavailable as exc:
                kopf.warn(body, reason="PipelineUnreachable", message=exc.message)
                return
            if pipeline is None or _mirror(event, body, namespace, owner, pipeline):
                return
        kopf.warn(
            body,
            reason="StatusConflict",
            message=f"Pipeline {owner} kept changing; will retry on the next RayService event",
        )


def _mirror(
    event: kopf.RawEvent, body: kopf.Body, namespace: str, owner: str, pipeline: dict[str, Any]
) -> bool:
    """Write the RayService's readiness into the Pipeline's status; False on a write conflict."""
    r: dict[str, Any]
    if event.get("type") == "DELETED":
        r = {
            "phase": "Deploying",
            "ready": False,
            "reason": "RayServiceDeleted",
            "message": "the RayService was deleted; change the Pipeline or restart the operator to "
            "re-create it",
            "deployments": {},
        }
    else:
        rendered_for = (body.get("metadata", {}).get("annotations") or {}).get(rayservice.ANNOTATION_GENERATION)
        pipeline_gen = generation_of(pipeline)
        r = rayservice.readiness(
            body.get("status"),
            generation=generation_of(body),
            pipeline_current=rendered_for is None or pipeline_gen is None or rendered_for == str(pipeline_gen),
        )
    current = pipeline.get("status") or {}
    ready_condition = condition("Ready", r["ready"], r["reason"], r["message"], generation=generation_of(pipeline))
    desired: dict[str, Any] = {
        "deployments": r["deployments"],
        "conditions": merge_conditions(current.get("conditions"), [ready_condition]),
    }
    if current.get("phase") not in ("Infeasible", "Failed"):
        desired["phase"] = r["phase"]
    changes = status_changes(current, desired)
    if not changes:
        return True
    if not kube.patch_status(
        kube.GROUP,
        kube.VERSION,
        PLURAL,
        namespace,
        owner,
        changes,
        resource_version=pipeline["metadata"].get("resourceVersion"),
    ):
        return False
    metrics.PIPELINE_READY.labels(namespace, owner).set(1 if r["ready"] else 0)
    if changes.get("phase") and changes["phase"] != current.get("phase"):
        kopf.event(
            cast(kopf.Body, pipeline),
            type="Normal" if r["ready"] else "Warning",
            reason=r["reason"],
            message=f"phase {current.get('phase')} -> {changes['phase']}: {r['message']}",
        )
    return True

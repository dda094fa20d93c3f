"""Status bookkeeping shared by the handlers: conditions, and patches that carry only what changed.

Writing only what differs is what makes re-delivered events change nothing: an unchanged object
gets an empty patch, so no write, no new resourceVersion, no new watch event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def generation_of(body: Mapping[str, Any]) -> int | None:
    """An object's metadata.generation (None where the API server set none, as emulators may)."""
    value = (body.get("metadata") or {}).get("generation")
    return int(value) if value is not None else None


def condition(
    type_: str, status: bool | None, reason: str, message: str = "", *, generation: int | None = None
) -> dict[str, Any]:
    """A condition; ``generation`` is the object's metadata.generation it was judged for
    (``observedGeneration``, as in metav1.Condition), so a tool can tell a stale one."""
    value = "Unknown" if status is None else ("True" if status else "False")
    out: dict[str, Any] = {"type": type_, "status": value, "reason": reason, "message": message}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def merge_conditions(
    current: Sequence[Mapping[str, Any]] | None, updates: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``current`` with ``updates`` applied by type; a condition's time moves only when its status does."""
    out = [dict(c) for c in current or []]
    for new in updates:
        old = next((c for c in out if c.get("type") == new["type"]), None)
        if old is None:
            out.append({**new, "lastTransitionTime": now_iso()})
            continue
        moved = old.get("status") != new["status"]
        old.update(new)
        if moved or "lastTransitionTime" not in old:
            old["lastTransitionTime"] = now_iso()
    return out


def get_condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    for c in (status or {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return c  # type: ignore[no-any-return]
    return None


def status_changes(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields of ``desired`` that differ from ``current``.

    Conditions compare without their timestamps: re-stating a condition is not a change.
    """
    current = current or {}
    out: dict[str, Any] = {}
    for key, value in desired.items():
        if key == "conditions":
            if _strip_times(current.get(key)) != _strip_times(value):
                out[key] = value
        elif current.get(key) != value:
            out[key] = value
    return out


def _strip_times(conditions: Any) -> Any:
    if not isinstance(conditions, list):
        return conditions
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions]


def merge_patch(live: Any, desired: Any) -> Any:
    """An RFC 7386 JSON merge patch that turns ``live`` into ``desired`` (None deletes a key)."""
    if not isinstance(live, Mapping) or not isinstance(desired, Mapping):
        return desired
    patch: dict[str, Any] = {}
    for key in live:
        if key not in desired:
            patch[key] = None
    for key, value in desired.items():
        if key not in live:
            patch[key] = value
        elif live[key] != value:
            patch[key] = merge_patch(live[key], value)
    return patch


def contains(live: Any, desired: Any) -> bool:
    """Whether ``live`` holds everything ``desired`` says (extra keys, e.g. server defaults, allowed)."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and contains(live[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)

"""The operator's RBAC in the chart, derived from what the operator code does.

Two sources in bunko.operator decide which Kubernetes API calls the operator makes:
- kopf's handler registry: a resource with change handlers (create/update/delete/resume) is
  listed, watched and patched (kopf's progress annotations and finalizers); a resource with only
  event/timer handlers is listed and watched; the status of our resources is patched;
- bunko.operator.kube, "the only module that talks to the Kubernetes API (besides kopf)": the
  lightkube client methods it calls, mapped to verbs (on ``<resource>.Status``: the status
  subresource).
The table built here must equal OPERATOR_API_CALLS in tests/integration/test_chart_render.py,
which is compared with the rendered Role there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kopf
import pytest

from bunko.operator import kube, main  # noqa: F401  (importing main registers every handler)
from tests.integration.test_chart_render import OPERATOR_API_CALLS

ROOT = Path(__file__).resolve().parents[2]

# lightkube Client method -> verb
METHOD_VERBS = {
    "get": "get",
    "list": "list",
    "create": "create",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
}


def _kopf_resources() -> dict[tuple[str, str], set[str]]:
    registry = kopf.get_default_registry()
    out: dict[tuple[str, str], set[str]] = {}
    for sub, verbs in (
        (registry._changing, {"get", "list", "watch", "patch"}),
        (registry._watching, {"list", "watch"}),
        (registry._spawning, {"list", "watch", "patch"}),
    ):
        for handler in sub._handlers:
            sel = handler.selector
            plural = sel.plural or sel.any_name
            assert sel.group and plural, f"handler {handler.id} has a fuzzy selector: RBAC cannot be exact"
            out.setdefault((sel.group, plural), set()).update(verbs)
    return out


def _kube_api_methods() -> set[tuple[str, bool]]:
    """(method, on the status subresource?) of every ``api.<method>(...)`` call in kube.py."""
    tree = ast.parse((ROOT / "operator" / "kube.py").read_text())
    return {
        (node.func.attr,
         bool(node.args) and isinstance(node.args[0], ast.Attribute) and node.args[0].attr == "Status")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "api"
    }


def test_every_kubernetes_call_of_the_operator_is_granted_and_nothing_more():
    expected = _kopf_resources()
    own = {(g, p) for g, p in expected if g == kube.GROUP}
    # kopf writes the handlers' results into the status subresource of our own resources.
    for group, plural in own:
        expected.setdefault((group, f"{plural}/status"), set()).update({"get", "patch"})
    methods = _kube_api_methods()
    unknown = {m for m, _ in methods} - set(METHOD_VERBS)
    assert not unknown, (
        f"bunko.operator.kube calls {unknown}: add them to METHOD_VERBS and to the chart's Role"
    )
    # kube.py: get() reads our resources and RayServices, apply_rayservice() creates and patches
    # RayServices, patch_status() patches our resources' status.
    ray = (kube.RAY_GROUP, kube.RAYSERVICES)
    for method, status in methods:
        verb = METHOD_VERBS[method]
        if status:
            targets = [(g, f"{p}/status") for g, p in own]
        elif verb == "get":
            targets = [*own, ray]
        else:
            targets = [ray]
        for target in targets:
            expected.setdefault(target, set()).add(verb)
    # kopf posts Events for every handler outcome (settings.posting).
    expected[("", "events")] = {"create"}
    assert expected == OPERATOR_API_CALLS


def test_operator_never_needs_secrets_or_cluster_scanning():
    # The stores' credentials come from the environment; kopf runs --standalone without scanning.
    assert ("", "secrets") not in OPERATOR_API_CALLS
    assert not any(g in ("kopf.dev", "apiextensions.k8s.io") for g, _ in OPERATOR_API_CALLS)


@pytest.mark.parametrize("method", sorted(METHOD_VERBS))
def test_method_table_names_real_client_methods(method):
    from lightkube import Client

    assert callable(getattr(Client, method, None))

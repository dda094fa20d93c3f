"""A KubeRay stand-in that runs what a RayService asks for.

No kube-apiserver (and so no KubeRay) runs here. Without one the operator's RayService would
only ever be checked on paper, so this plays KubeRay's part in earnest. For each RayService it
starts a Ray head of its own, as KubeRay gives each RayService its own RayCluster:
``ray start --head`` on loopback, with the dashboard on, because that is where ``serve deploy``
and KubeRay talk to Serve. It deploys the object's ``spec.serveConfigV2`` with the real
``serve deploy`` CLI, reads Serve's application and deployment states from the dashboard's
``/api/serve/applications/`` (where KubeRay reads them), and writes them back as the
RayService's status in KubeRay v1.7's shape (``kuberay_status``). A config Serve refuses, or
replicas that fail to start, then show as DEPLOY_FAILED or UNHEALTHY. The operator's readiness
reads exactly that, so a wrong config fails instead of being marked Ready.

One change is made to the config before it is deployed: an ``http_options`` that puts Serve's
proxy on a free loopback port. On a cluster each head pod has its own network namespace and
port 8000. Here several heads share one machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from bunko.testing.servers import free_port
from tests.support.ray_serve import PROXY_READY_ENV, PROXY_READY_S

BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
# Ray's own defaults for these collide between two heads on one machine (52365, 10001, ...).
_RAY_PORT_FLAGS = ("node-manager-port", "object-manager-port", "ray-client-server-port",
                   "dashboard-agent-grpc-port", "dashboard-agent-listen-port", "metrics-export-port",
                   "runtime-env-agent-port", "dashboard-port")
_SERVE_FAILED = ("DEPLOY_FAILED", "UNHEALTHY")


class RayHead:
    """One local Ray head with its dashboard: the RayCluster KubeRay would start for a RayService."""

    def __init__(self, root: Path, *, num_cpus: int, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.num_cpus = num_cpus
        # Serve's 5 s proxy readiness is too short on 2 busy cores (tests/support/ray_serve.py).
        # Ray turns token authentication on by itself once any Ray run here has left a token in
        # ~/.ray, and the dashboard then answers 401 to the polling below. This head is bound to
        # loopback and lives for one test, so it runs without (as the e2e's own Ray head does).
        self.env = {PROXY_READY_ENV: PROXY_READY_S, "RAY_AUTH_MODE": "disabled", **(env or {})}
        self.ports = {flag: free_port() for flag in _RAY_PORT_FLAGS}
        self.gcs_port = free_port()
        self.serve_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Ray's unix sockets live under the temp dir, whose path must stay under 107 characters.
        self.temp_dir = Path(f"/tmp/bkrs-{os.getpid()}-{self.gcs_port}")

    @property
    def dashboard(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['dashboard-port']}"

    @property
    def serve_url(self) -> str:
        return f"http://{LOOPBACK}:{self.serve_port}"

    def start(self, timeout_s: float = 180) -> RayHead:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
                "--node-ip-address", LOOPBACK, "--port", str(self.gcs_port),
                "--num-cpus", str(self.num_cpus), "--num-gpus", "0",
                "--include-dashboard", "true", "--dashboard-host", LOOPBACK,
                "--temp-dir", str(self.temp_dir), "--object-store-memory", str(100 * 1024 * 1024),
                *(f"--{flag}={port}" for flag, port in self.ports.items())]
        log = (self.root / "ray-head.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}: see {self.root / 'ray-head.log'}")
            try:
                code = httpx.get(f"{self.dashboard}/api/serve/applications/", timeout=2).status_code
            except httpx.HTTPError:
                code = 0
            if code == 200:
                return self
            if code in (401, 403):
                raise RuntimeError(f"the Ray head's dashboard answers {code}: token authentication is on "
                                   "(RAY_AUTH_MODE); this stand-in polls it without a token")
            time.sleep(1)
        raise TimeoutError(f"the Ray head's dashboard did not answer in {timeout_s} s")

    def serve_deploy(self, serve_config_v2: str) -> None:
        """``serve deploy`` of the RayService's config; raises with the CLI's words when it refuses."""
        config = yaml.safe_load(serve_config_v2) or {}
        config["http_options"] = {"host": LOOPBACK, "port": self.serve_port}
        path = self.root / "serve-config.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        out = subprocess.run([str(BIN / "serve"), "deploy", str(path), "--address", self.dashboard],
                             capture_output=True, text=True, timeout=300, env={**os.environ, **self.env})
        if out.returncode != 0:
            raise ServeDeployRefused((out.stderr or out.stdout).strip()[-2000:])

    def serve_details(self) -> dict[str, Any]:
        """What Serve says of its applications (the dashboard's REST API, as KubeRay polls it)."""
        r = httpx.get(f"{self.dashboard}/api/serve/applications/", timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class ServeDeployRefused(Exception):
    """``serve deploy`` exited non-zero: the config did not reach the cluster."""


def kuberay_status(details: Mapping[str, Any], *, generation: int | None) -> dict[str, Any]:
    """The RayService status KubeRay v1.7 writes from Serve's application details.

    Ready only when every application is RUNNING. KubeRay's reasons: ``Initializing`` while
    deploying and ``NonZeroServeEndpoints`` once serving. A failing application or deployment
    keeps Serve's own status and message, which is what the operator's readiness reports."""
    apps: dict[str, Any] = {}
    for name, app in sorted((details.get("applications") or {}).items()):
        apps[name] = {
            "status": app.get("status", "NOT_STARTED"),
            "message": app.get("message") or "",
            "serveDeploymentStatuses": {
                dep: {"status": d.get("status", "UPDATING"), "message": d.get("message") or ""}
                for dep, d in sorted((app.get("deployments") or {}).items())
            },
        }
    running = bool(apps) and all(a["status"] == "RUNNING" for a in apps.values())
    failed = [f"{n}: {a['message'] or a['status']}" for n, a in apps.items() if a["status"] in _SERVE_FAILED]
    if running:
        ready = {"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints",
                 "message": "Number of serve endpoints is greater than 0"}
    else:
        ready = {"type": "Ready", "status": "False", "reason": "Initializing",
                 "message": "; ".join(failed)[:1000] or "Serve applications are deploying"}
    status: dict[str, Any] = {
        "serviceStatus": "Running" if running else "",
        "conditions": [ready, {"type": "UpgradeInProgress", "status": "False", "reason": "NoPendingCluster",
                               "message": ""}],
        "activeServiceStatus": {"applicationStatuses": apps},
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def refused_status(message: str, *, generation: int | None) -> dict[str, Any]:
    """What the RayService says when ``serve deploy`` itself refused its config."""
    status: dict[str, Any] = {
        "serviceStatus": "",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ServeConfigInvalid",
                        "message": message[:1000]}],
        "activeServiceStatus": {"applicationStatuses": {
            "serveConfigV2": {"status": "DEPLOY_FAILED", "message": message[:1000],
                              "serveDeploymentStatuses": {}}}},
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


class KubeRayStandIn(threading.Thread):
    """Watches RayServices through a kubernetes ``CustomObjectsApi`` and keeps each one's Ray head,
    Serve deployment and status as KubeRay would: a new generation is deployed again in place (a
    Serve config change, KubeRay's in-place update), and a deleted RayService's head is stopped."""

    def __init__(self, api: Callable[[], Any], root: Path, *, namespace: str = "default", num_cpus: int = 3,
                 env: Mapping[str, str] | None = None, say: Callable[[str], None] = print) -> None:
        super().__init__(daemon=True, name="kuberay-stand-in")
        self.api = api
        self.root = root
        self.namespace = namespace
        self.num_cpus = num_cpus
        self.env = dict(env or {})
        self.say = say
        self.heads: dict[str, RayHead] = {}
        self.deployed: dict[str, int] = {}  # RayService name -> generation deployed
        self.refused: dict[str, str] = {}
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)
        for head in self.heads.values():
            head.stop()
        self.heads.clear()

    def head(self, name: str) -> RayHead | None:
        return self.heads.get(name)

    def run(self) -> None:
        while not self._halt.wait(1.0):
            try:
                self.step()
            except Exception as exc:  # the stand-in must outlive an API hiccup (kmock restarts, operator kills)
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def step(self) -> None:
        api = self.api()
        items = api.list_namespaced_custom_object("ray.io", "v1", self.namespace, "rayservices")["items"]
        present = set()
        for rs in items:
            name = rs["metadata"]["name"]
            present.add(name)
            generation = rs["metadata"].get("generation")
            config = (rs.get("spec") or {}).get("serveConfigV2") or ""
            if self.deployed.get(name) != generation:
                head = self.heads.get(name)
                if head is None:
                    self.say(f"    KubeRay stand-in: starting a Ray head for RayService {name}")
                    head = self.heads[name] = RayHead(self.root / name, num_cpus=self.num_cpus, env=self.env)
                    try:
                        head.start()
                    except Exception:
                        self.heads.pop(name).stop()
                        raise
                try:
                    head.serve_deploy(config)
                    self.refused.pop(name, None)
                    self.say(f"    KubeRay stand-in: serve deploy of RayService {name} (generation {generation})")
                except ServeDeployRefused as exc:
                    self.refused[name] = str(exc)
                    self.say(f"    KubeRay stand-in: serve deploy refused RayService {name}'s config: {exc}")
                self.deployed[name] = generation
            if name in self.refused:
                status = refused_status(self.refused[name], generation=generation)
            else:
                status = kuberay_status(self.heads[name].serve_details(), generation=generation)
            if _differs(rs.get("status") or {}, status):
                api.patch_namespaced_custom_object_status("ray.io", "v1", self.namespace, "rayservices", name,
                                                          {"status": status})
        for name in set(self.heads) - present:
            self.say(f"    KubeRay stand-in: RayService {name} deleted; stopping its Ray head")
            self.heads.pop(name).stop()
            self.deployed.pop(name, None)


def _differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in desired.items())

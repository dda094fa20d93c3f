"""Serving overhead: embeddings/s and rerank pairs/s through Ray Serve (HTTP) vs in-process.

    .venv/bin/python bench/serving.py [--embedder PATH] [--reranker PATH] [--texts 512] [--pairs 256]

Without model paths it builds the tiny test models (so the figures measure the serving path's
overhead, not a model). One local Ray cluster (loopback, 2 CPUs) with the embedding and reranker
applications; the same model directories are loaded in-process for the comparison. Prints one
line per measurement and the ratio Serve / in-process (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bunko.models.embedding import SentenceTransformerEmbedder
from bunko.models.http import HttpEmbedder, HttpReranker
from bunko.models.rerank import CrossEncoderReranker
from bunko.serving.config import build_serve_config
from bunko.serving.local import deploy_config, start_local_ray
from bunko.serving.spec import EmbeddingSpec, RerankerSpec, ServingSpec
from bunko.testing.servers import free_port
from bunko.testing.tiny_models import CORPUS, make_tiny_embedder, make_tiny_reranker


def rate(n: int, fn) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--embedder")
    p.add_argument("--reranker")
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--pairs", type=int, default=256)
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients for Serve")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads in-process; Ray gives each replica OMP_NUM_THREADS=1, so 1 is fair")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bunko-bench-"))
    emb_path = args.embedder or str(make_tiny_embedder(tmp / "embedder"))
    rr_path = args.reranker or str(make_tiny_reranker(tmp / "reranker"))
    texts = [CORPUS[i % len(CORPUS)] + f" {i}" for i in range(args.texts)]
    passages = [CORPUS[i % len(CORPUS)] for i in range(args.pairs)]
    query = "売上高はどうなった？"

    local_emb = SentenceTransformerEmbedder(emb_path, device="cpu", batch_size=64)
    local_rr = CrossEncoderReranker(rr_path, device="cpu", batch_size=32)
    local = {
        "embed": rate(len(texts), lambda: local_emb.embed_documents(texts)),
        "rerank": rate(len(passages), lambda: local_rr.score(query, passages)),
    }

    spec = ServingSpec(
        embedding=EmbeddingSpec(model=emb_path, num_cpus=0.5, max_batch_size=64),
        reranker=RerankerSpec(model=rr_path, num_cpus=0.5, max_batch_size=32),
        env_vars={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    port = free_port()
    start_local_ray(num_cpus=2, num_gpus=0, env_vars=spec.env_vars, attach=False)
    try:
        deploy_config(build_serve_config(spec), port=port)
        base = f"http://127.0.0.1:{port}"
        remote_emb, remote_rr = HttpEmbedder(base, timeout_s=300), HttpReranker(base, timeout_s=300)
        k = args.clients

        def embed_parallel() -> None:
            parts = [texts[i::k] for i in range(k)]
            with ThreadPoolExecutor(k) as pool:
                list(pool.map(remote_emb.embed_documents, parts))

        def rerank_parallel() -> None:
            parts = [passages[i::k] for i in range(k)]
            with ThreadPoolExecutor(k) as pool:
                list(pool.map(lambda ps: remote_rr.score(query, ps), parts))

        served = {"embed": rate(len(texts), embed_parallel), "rerank": rate(len(passages), rerank_parallel)}
    finally:
        from ray import serve

        serve.shutdown()
        import ray

        ray.shutdown()

    units = {"embed": "embeddings/s", "rerank": "rerank pairs/s"}
    for key in ("embed", "rerank"):
        print(
            f"{units[key]:>15}: in-process {local[key]:9.1f}   serve {served[key]:9.1f}   "
            f"ratio serve/in-process {served[key] / local[key]:.2f}"
        )


if __name__ == "__main__":
    main()

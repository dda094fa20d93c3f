"""One rule decides where every model runs: at BUNKO_MODEL_ENDPOINT when it is set, in this process
otherwise; and a process installed without the in-process models says what to set."""

from __future__ import annotations

import sys

import pytest

from bunko.errors import ConfigError
from bunko.models.http import HttpOcrEngine, HttpReranker
from bunko.runtime import Runtime
from bunko.settings import Settings

ENDPOINT = "http://127.0.0.1:9"  # nothing listens: constructing a client must not connect


def runtime(tmp_path, **values):
    return Runtime(Settings(_env_file=None, data_dir=tmp_path / "data", **values))  # type: ignore[call-arg]


def test_with_an_endpoint_every_model_runs_there(tmp_path):
    rt = runtime(tmp_path, model_endpoint=ENDPOINT, reranker_model="served-reranker")
    assert isinstance(rt.reranker, HttpReranker)
    engines = rt.ocr_engines
    assert len(engines) == 1 and isinstance(engines[0], HttpOcrEngine)
    rt.close()


def test_no_reranker_model_means_no_reranker_in_either_place(tmp_path):
    assert runtime(tmp_path / "a", model_endpoint=ENDPOINT).reranker is None
    assert runtime(tmp_path / "b").reranker is None


def test_without_an_endpoint_ocr_runs_in_process(tmp_path):
    engines = runtime(tmp_path, ocr_engines=["rapidocr"]).ocr_engines
    assert [type(e).__module__ for e in engines] == ["bunko.models.ocr"]


@pytest.mark.parametrize(("part", "module"), [("embedder", "bunko.models.embedding"),
                                              ("ocr_engines", "bunko.models.ocr"),
                                              ("reranker", "bunko.models.rerank")])
def test_an_install_without_local_models_says_what_to_set(tmp_path, monkeypatch, part, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as in an image without bunko[local]
    rt = runtime(tmp_path, reranker_model="some/reranker")
    with pytest.raises(ConfigError, match="set BUNKO_MODEL_ENDPOINT") as exc:
        getattr(rt, part)
    assert "bunko[local]" in exc.value.message

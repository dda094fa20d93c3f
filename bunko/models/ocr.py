"""In-process OCR engines that work offline on a CPU.

- :class:`RapidOcrEngine`: ``rapidocr`` 3.x with the PP-OCRv6 "small" multilingual detection and
  recognition models that ship inside its wheel (they read Japanese; ~0.98–0.995 character
  accuracy at 150–300 dpi here). The model paths are pinned to the bundled files, so it never
  tries to download anything.
- :class:`TesseractEngine`: the ``tesseract`` CLI (Debian ``tesseract-ocr-jpn``), TSV output for
  boxes and confidences. ``recognize_vertical`` uses ``jpn_vert`` with ``--psm 5``, the only engine
  here that reads vertical text (縦書き) in the right order: columns right to left.

Both put each line's cross-script look-alikes right (入カ → 入力: bunko.text.confusions) and
return blocks with bounding boxes in page points (pixel / dpi × 72, origin top-left), a
Markdown text in reading order and a confidence in [0, 1]. Engines are created once per process
(:func:`load_ocr_engines`) and load their models on first use.
"""

from __future__ import annotations

import io
import itertools
import shutil
import statistics
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from bunko.domain import OcrBlock
from bunko.errors import ConfigError, ModelUnavailable, OcrFailed
from bunko.models.base import OcrEngine, OcrResult
from bunko.text.confusions import fix_confusions
from bunko.text.normalize import join_runs, normalize_text


@runtime_checkable
class VerticalOcrEngine(Protocol):
    """An engine that can also read a page as vertical Japanese (columns right to left)."""

    name: str
    version: str
    vertical_version: str

    def recognize_vertical(self, image: Image.Image, *, dpi: int) -> OcrResult: ...


# --- layout helpers shared by the engines ------------------------------------------------------


@dataclass
class Line:
    text: str
    bbox: tuple[float, float, float, float]  # points, origin top-left
    confidence: float
    paragraph: int = -1  # engine-given paragraph id, -1 when the engine has none


def weighted_confidence(lines: Sequence[Line]) -> float:
    total = sum(len(ln.text) for ln in lines)
    if total == 0:
        return 0.0
    return float(sum(ln.confidence * len(ln.text) for ln in lines) / total)


def horizontal_markdown(lines: list[Line]) -> str:
    """Lines (already in reading order) as Markdown: a line that runs to the right edge and is
    followed closely by the next is a wrapped line of one paragraph and is joined to it, so a
    sentence is never cut; a wider gap starts a new paragraph."""
    if not lines:
        return ""
    heights = [ln.bbox[3] - ln.bbox[1] for ln in lines]
    line_h = statistics.median(heights) if heights else 1.0
    right = max(ln.bbox[2] for ln in lines)
    paragraphs: list[str] = [lines[0].text]
    for prev, line in itertools.pairwise(lines):
        gap = line.bbox[1] - prev.bbox[3]
        same_para = prev.paragraph == line.paragraph if prev.paragraph >= 0 else gap < 0.9 * line_h
        wrapped = prev.bbox[2] >= right - 2.0 * line_h
        if same_para and wrapped:
            paragraphs[-1] = join_runs(paragraphs[-1], line.text)
        elif same_para or gap < 0.9 * line_h:
            paragraphs[-1] += "\n" + line.text
        else:
            paragraphs.append(line.text)
    return "\n\n".join(paragraphs)


def vertical_markdown(lines: list[Line]) -> str:
    """Vertical columns, already ordered right to left: consecutive columns of one paragraph are
    joined (a column break is a line wrap), paragraphs separated by a blank line."""
    paragraphs: list[str] = []
    last_para: int | None = None
    for line in lines:
        if paragraphs and line.paragraph == last_para and line.paragraph >= 0:
            paragraphs[-1] = join_runs(paragraphs[-1], line.text)
        else:
            paragraphs.append(line.text)
        last_para = line.paragraph
    return "\n\n".join(paragraphs)


def looks_vertical(blocks: Sequence[OcrBlock]) -> bool:
    """Most of the text sits in tall, narrow boxes of several characters: a 縦書き page."""
    tall = total = 0
    for b in blocks:
        n = len(b.text)
        if n == 0:
            continue
        w, h = b.bbox[2] - b.bbox[0], b.bbox[3] - b.bbox[1]
        total += n
        if n >= 2 and h > 1.5 * w:
            tall += n
    return total > 0 and tall / total >= 0.5


# Part of each engine's version, and so of the OCR cache's keys: a page read before a change to
# what happens to the recogniser's lines (fix_confusions) is read again, not taken from the cache.
POSTPROCESSING = "-fix1"


def ocr_result(engine: str, lines: list[Line], markdown: str) -> OcrResult:
    blocks = [OcrBlock(text=ln.text, bbox=ln.bbox, confidence=ln.confidence) for ln in lines]
    return OcrResult(engine=engine, blocks=blocks, markdown=markdown, confidence=weighted_confidence(lines))


# --- rapidocr ----------------------------------------------------------------------------------


def _rapidocr_models() -> dict[str, Path]:
    import rapidocr

    root = Path(rapidocr.__file__).resolve().parent / "models"
    return {
        "Det.model_path": root / "PP-OCRv6_det_small.onnx",
        "Rec.model_path": root / "PP-OCRv6_rec_small.onnx",
        "Cls.model_path": root / "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    }


# rapidocr shrinks every image to 2,000 px on its long side: an A4 page rendered at the 300 dpi
# Bunko OCRs at (3,508 px) is read at ~170 dpi. bench/ocr_settings.py on 14 real scanned pages
# (200 dpi grey JPEG, some rotated): 1 - CER mean 0.816 at 2,000 px, 0.828 at 3,600 px (the whole
# page), but 8.1 s instead of 4.5 s a page on 2 CPU cores, and the Serve OCR deployment then ran
# past its 60 s model timeout on a loaded 2-core machine. 1.2 points do not pay for 1.8x the time:
# the cap stays at 2,000, named here so the next measurement (a GPU, YomiToku) can move it.
RAPIDOCR_MAX_SIDE_PX = 2000


class RapidOcrEngine:
    """PP-OCRv6 (small, multilingual incl. Japanese) through rapidocr + ONNX Runtime."""

    name = "rapidocr"

    def __init__(self) -> None:
        import rapidocr  # noqa: F401 - fail here (ConfigError in load_ocr_engines), not on first page

        self.version = f"{_dist_version('rapidocr')}-ppocrv6s{POSTPROCESSING}"
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._engine is None:
                from rapidocr import RapidOCR

                models = _rapidocr_models()
                missing = [str(p) for p in models.values() if not p.exists()]
                if missing:
                    raise ModelUnavailable(
                        f"rapidocr's bundled models are missing ({', '.join(missing)}); reinstall it "
                        "with `pip install --force-reinstall 'rapidocr>=3.10'` (not rapidocr-onnxruntime)."
                    )
                params: dict[str, Any] = {k: str(v) for k, v in models.items()}
                params["Global.log_level"] = "warning"
                params["Global.max_side_len"] = RAPIDOCR_MAX_SIDE_PX
                self._engine = RapidOCR(params=params)
            return self._engine

    def recognize(self, image: Image.Image, *, dpi: int) -> OcrResult:
        engine = self._load()
        rgb = np.asarray(image.convert("RGB"))
        out = engine(rgb)
        if out.boxes is None or out.txts is None:
            return OcrResult(engine=self.name)
        scale = 72.0 / dpi
        lines: list[Line] = []
        for box, text, score in zip(out.boxes, out.txts, out.scores, strict=False):
            text = fix_confusions(normalize_text(str(text)))
            if not text:
                continue
            xs, ys = box[:, 0], box[:, 1]
            bbox = (
                float(xs.min()) * scale, float(ys.min()) * scale,
                float(xs.max()) * scale, float(ys.max()) * scale,
            )
            lines.append(Line(text, bbox, float(score)))
        blocks = [OcrBlock(ln.text, ln.bbox, ln.confidence) for ln in lines]
        if looks_vertical(blocks):
            lines.sort(key=lambda ln: (-ln.bbox[2], ln.bbox[1]))
            return ocr_result(self.name, lines, "\n".join(ln.text for ln in lines))
        lines = _merge_same_row(sorted(lines, key=lambda ln: (ln.bbox[1], ln.bbox[0])))
        return ocr_result(self.name, lines, horizontal_markdown(lines))


def _merge_same_row(lines: list[Line]) -> list[Line]:
    """rapidocr may split one printed line into several boxes; put boxes whose vertical centres
    fall inside each other's extent on one row, left to right."""
    rows: list[list[Line]] = []
    for line in lines:
        centre = (line.bbox[1] + line.bbox[3]) / 2
        if rows and rows[-1][0].bbox[1] <= centre <= rows[-1][0].bbox[3]:
            rows[-1].append(line)
        else:
            rows.append([line])
    merged = []
    for row in rows:
        row.sort(key=lambda ln: ln.bbox[0])
        text = row[0].text
        for piece in row[1:]:
            text = join_runs(text, piece.text)
        bbox = (
            min(ln.bbox[0] for ln in row), min(ln.bbox[1] for ln in row),
            max(ln.bbox[2] for ln in row), max(ln.bbox[3] for ln in row),
        )
        merged.append(Line(text, bbox, weighted_confidence(row)))
    return merged


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# --- tesseract ---------------------------------------------------------------------------------


class TesseractEngine:
    """The ``tesseract`` CLI: ``jpn`` for horizontal pages, ``jpn_vert --psm 5`` for vertical ones."""

    name = "tesseract"

    def __init__(self, binary: str = "tesseract", *, timeout_s: float = 300.0) -> None:
        found = shutil.which(binary)
        if not found:
            raise ConfigError(
                "the OCR engine 'tesseract' needs the tesseract CLI, which is not installed; install "
                "`tesseract-ocr tesseract-ocr-jpn tesseract-ocr-jpn-vert` "
                "or remove it from BUNKO_OCR_ENGINES."
            )
        self.binary = found
        self.timeout_s = timeout_s
        langs = self._langs()
        missing = [lang for lang in ("jpn",) if lang not in langs]
        if missing:
            raise ConfigError(
                f"tesseract lacks the {missing} language data; install `tesseract-ocr-jpn` "
                "(and `tesseract-ocr-jpn-vert` for vertical text)."
            )
        self.has_vertical = "jpn_vert" in langs
        first = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
        words = (first.stdout or first.stderr).split()
        base = words[1] if len(words) > 1 else "unknown"
        self.version = f"{base}-jpn{POSTPROCESSING}"
        self.vertical_version = f"{base}-jpn_vert"

    def _langs(self) -> set[str]:
        out = subprocess.run([self.binary, "--list-langs"], capture_output=True, text=True, check=False)
        return {ln.strip() for ln in (out.stdout + out.stderr).splitlines()[1:] if ln.strip()}

    def _run(self, image: Image.Image, dpi: int, lang: str, psm: int) -> list[dict[str, str]]:
        buf = io.BytesIO()
        image.convert("L").save(buf, format="PPM")  # PGM: no compression cost, leptonica reads it
        cmd = [self.binary, "stdin", "stdout", "-l", lang, "--psm", str(psm), "--dpi", str(dpi), "tsv"]
        try:
            proc = subprocess.run(
                cmd, input=buf.getvalue(), capture_output=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise OcrFailed(f"tesseract took longer than {self.timeout_s:g} s on one page") from e
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")[-500:]
            raise OcrFailed(f"tesseract failed ({proc.returncode}): {stderr}")
        text = proc.stdout.decode("utf-8", errors="replace")
        rows = text.splitlines()
        if not rows:
            return []
        header = rows[0].split("\t")
        return [dict(zip(header, r.split("\t"), strict=False)) for r in rows[1:] if r]

    def _lines(self, rows: list[dict[str, str]], dpi: int) -> list[Line]:
        scale = 72.0 / dpi
        grouped: dict[tuple[int, int, int], list[dict[str, str]]] = {}
        order: list[tuple[int, int, int]] = []
        para_ids: dict[tuple[int, int], int] = {}
        for r in rows:
            if r.get("level") != "5" or not r.get("text", "").strip():
                continue
            key = (int(r["block_num"]), int(r["par_num"]), int(r["line_num"]))
            if key not in grouped:
                grouped[key] = []
                order.append(key)
            grouped[key].append(r)
        lines = []
        for key in order:
            words = grouped[key]
            text = ""
            for w in words:
                text = join_runs(text, w["text"])
            text = fix_confusions(normalize_text(text))
            if not text:
                continue
            left = min(int(w["left"]) for w in words)
            top = min(int(w["top"]) for w in words)
            right = max(int(w["left"]) + int(w["width"]) for w in words)
            bottom = max(int(w["top"]) + int(w["height"]) for w in words)
            n = sum(len(w["text"]) for w in words)
            conf = sum(max(float(w["conf"]), 0.0) * len(w["text"]) for w in words) / max(n, 1) / 100.0
            para = para_ids.setdefault((key[0], key[1]), len(para_ids))
            lines.append(Line(text, (left * scale, top * scale, right * scale, bottom * scale), conf, para))
        return lines

    def recognize(self, image: Image.Image, *, dpi: int) -> OcrResult:
        lines = self._lines(self._run(image, dpi, "jpn", 3), dpi)
        return ocr_result(self.name, lines, horizontal_markdown(lines))

    def recognize_vertical(self, image: Image.Image, *, dpi: int) -> OcrResult:
        if not self.has_vertical:
            raise OcrFailed("tesseract has no jpn_vert data; install `tesseract-ocr-jpn-vert`")
        lines = self._lines(self._run(image, dpi, "jpn_vert", 5), dpi)
        return ocr_result(self.name, lines, vertical_markdown(lines))


# --- registry ----------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], OcrEngine]] = {
    "rapidocr": RapidOcrEngine,
    "tesseract": TesseractEngine,
}
_NOT_HERE = {
    "yomitoku": "runs in the GPU serving deployment (the [yomitoku] extra and BUNKO_MODEL_ENDPOINT)",
    "paddleocr": "runs in the serving deployment (install the [paddle] extra and set BUNKO_MODEL_ENDPOINT)",
    "serve": "needs BUNKO_MODEL_ENDPOINT (the Ray Serve application); it is not an in-process engine",
}
_engines: dict[str, OcrEngine] = {}
_engines_lock = threading.Lock()


def load_ocr_engines(names: list[str]) -> list[OcrEngine]:
    """The in-process engines for ``names``, in order; each created once per process and reused."""
    if not names:
        raise ConfigError('no OCR engine configured; set BUNKO_OCR_ENGINES, e.g. ["rapidocr", "tesseract"]')
    out: list[OcrEngine] = []
    with _engines_lock:
        for name in names:
            if name in _NOT_HERE:
                raise ConfigError(
                    f"the OCR engine {name!r} is not available in-process: it {_NOT_HERE[name]}."
                )
            factory = _FACTORIES.get(name)
            if factory is None:
                raise ConfigError(
                    f"unknown OCR engine {name!r}; choose from {sorted(_FACTORIES)} (in-process) "
                    f"or {sorted(_NOT_HERE)} (serving)."
                )
            if name not in _engines:
                try:
                    _engines[name] = factory()
                except ImportError as e:
                    raise ConfigError(
                        f"the OCR engine {name!r} cannot be imported ({e}); install `rapidocr>=3.10` "
                        "and `onnxruntime`."
                    ) from e
            out.append(_engines[name])
    return out

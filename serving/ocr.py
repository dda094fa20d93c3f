"""Serve deployment ``ocr``: page images in, the core's ``OcrResult`` out.

Routes (under ``/ocr`` by default):

``POST /ocr`` ``{"image_b64": "<PNG or JPEG, base64>", "dpi": 300, "engines": ["rapidocr"]?,
"vertical": false}``
    → ``{"engine", "version", "blocks": [{"text", "bbox": [x0, y0, x1, y1], "confidence", "kind"}],
    "markdown", "confidence"}``, bboxes in page points (1/72 inch, origin top-left). The engines
    are tried in order (default: the role's engine, then its fallbacks) until one succeeds;
    ``vertical`` asks for 縦書き reading where the engine can (Tesseract ``jpn_vert``).
``GET /ocr/health`` → ``{"status": "ok", "engines": [{"name", "version"}]}``

Confidence-based retries (a higher dpi, another engine) stay the caller's decision: the core's
extraction step owns that policy whichever side of HTTP the engines are on.
"""

# No `from __future__ import annotations`: FastAPI must see the request models as classes, and
# Ray's class-based views rebuild the route signatures without this module's globals.

import asyncio
import base64
import binascii
import io
import logging
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI
from PIL import Image
from pydantic import BaseModel, Field
from ray import serve

from bunko.errors import InvalidInput, OcrFailed
from bunko.models.base import OcrEngine, OcrResult
from bunko.serving.errors_http import install_error_handlers
from bunko.serving.gpu import cap_gpu_memory
from bunko.serving.spec import OcrSpec
from bunko.serving.traced import trace_app

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 80_000_000

app = FastAPI(title="Bunko OCR", docs_url=None, redoc_url=None)
install_error_handlers(app)


class OcrRequest(BaseModel):
    image_b64: str = Field(max_length=MAX_IMAGE_BYTES * 4 // 3 + 4)
    dpi: int = Field(default=300, ge=36, le=1200)
    engines: list[str] | None = None
    vertical: bool = False


def decode_image(b64: str) -> Image.Image:
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"image_b64 is not valid base64: {exc}") from exc
    try:
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > MAX_PIXELS:
            raise InvalidInput(
                f"image of {image.width}×{image.height} pixels exceeds {MAX_PIXELS}; lower the dpi"
            )
        image.load()
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"image_b64 does not hold a PNG/JPEG image: {exc}") from exc
    return image


def result_json(result: OcrResult, version: str) -> dict[str, Any]:
    body = asdict(result)
    body["version"] = version
    return body


def run_engines(engines: list[OcrEngine], image: Image.Image, dpi: int, vertical: bool) -> dict[str, Any]:
    """The first engine that succeeds; ``OcrFailed`` naming every engine's error when none does."""
    errors = []
    for engine in engines:
        try:
            recognize_vertical = getattr(engine, "recognize_vertical", None)
            if vertical and recognize_vertical is not None:
                result = recognize_vertical(image, dpi=dpi)
            else:
                result = engine.recognize(image, dpi=dpi)
            return result_json(result, engine.version)
        except Exception as exc:
            log.warning("OCR engine %s failed: %s", engine.name, exc)
            errors.append(f"{engine.name}: {type(exc).__name__}: {exc}")
    raise OcrFailed("every OCR engine failed on this page: " + "; ".join(errors), detail={"errors": errors})


@serve.deployment(name="ocr")
@serve.ingress(app)
class OcrDeployment:
    def __init__(self, args: dict[str, Any]) -> None:
        trace_app(app)
        from bunko.serving.ocr_engines import load_engine

        self.spec = OcrSpec.model_validate(args)
        self.device = self.spec.effective_device
        cap_gpu_memory(self.spec.effective_gpu_memory_fraction, self.device)
        self.engines: dict[str, OcrEngine] = {
            name: load_engine(name, source=self.spec.source, device=self.device) for name in self.spec.engines
        }

    @app.post("/")
    async def ocr(self, req: OcrRequest) -> dict[str, Any]:
        names = req.engines or list(self.engines)
        unknown = [n for n in names if n not in self.engines]
        if unknown:
            raise InvalidInput(
                f"OCR engine(s) {unknown} are not loaded here; this deployment has {list(self.engines)}"
            )
        image = await asyncio.to_thread(decode_image, req.image_b64)
        return await asyncio.to_thread(
            run_engines, [self.engines[n] for n in names], image, req.dpi, req.vertical
        )

    @app.get("/health")
    async def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "engines": [{"name": e.name, "version": e.version} for e in self.engines.values()],
            "device": self.device,
        }

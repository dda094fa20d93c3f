"""The web page: the single-page app in ``web/`` (TypeScript, built by Vite into ``api/static``,
package data of ``bunko.api``) served by the api itself at ``/``, so a browser needs nothing from
another origin.

``mount_web(app)`` adds ``GET /`` (``index.html``, revalidated on every load) and ``/assets``
(content-hashed files, cached for a year). The page routes with the URL fragment (``#/documents``),
so no catch-all route competes with the API. Where the page is not built, ``/`` says how to build
it instead of failing the whole app.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

BUILD_COMMAND = "npm --prefix web ci && npm --prefix web run build"

_NOT_BUILT = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>Bunko</title></head>
<body><h1>Bunko</h1>
<p>ウェブ画面がまだビルドされていません。 / The web page has not been built.</p>
<p>Run <code>make setup</code> (or <code>{BUILD_COMMAND}</code>) and restart the server.
The REST API under <code>/api/v1</code> works without it.</p>
</body></html>
"""


def web_dir() -> Path:
    """Where the built page lives: ``static/`` in the installed ``bunko.api`` package."""
    # A plain directory: Bunko is installed from a wheel or in place, never imported from a zip.
    return Path(str(files("bunko.api") / "static"))


class HashedAssets(StaticFiles):
    """Vite names every asset after its content hash, so a file never changes under its name."""

    async def check_config(self) -> None:
        # An unbuilt page answers 404 per asset (and ``/`` explains), not a 500 from a missing dir.
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def mount_web(app: FastAPI, directory: Path | None = None) -> None:
    """Serve the built page on ``app``; call it after the API routers are included."""
    root = directory or web_dir()
    index = root / "index.html"

    async def web_page() -> Response:
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
        return FileResponse(index, media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", web_page, methods=["GET", "HEAD"], include_in_schema=False,
                      response_class=Response, name="web_page")
    app.mount("/assets", HashedAssets(directory=root / "assets", check_dir=False), name="web_assets")

"""End-to-end fixtures for the web page: a real ``bunko serve`` process and headless Chromium.

- ``bunko_server``: ``bunko serve`` on a free loopback port with a temp data directory (embedded
  default: SQLite, Milvus Lite, directory object store, in-process worker) and a bootstrap admin,
  answering through the scripted OpenAI-compatible server of ``scripted_llm.py`` (no real LLM
  here); waits for ``/health``; stopped with SIGTERM (SIGKILL if it hangs) at session end.
- ``browser``: Debian's ``/usr/bin/chromium`` driven by Playwright (no ``playwright install``:
  the wheel carries the driver, Debian the browser), with a fresh profile directory.
- ``page_factory``: a new browser context (own cookies and storage) per role, phone or laptop size.
- ``shot(page, name)``: a screenshot under ``tests/e2e/out/screenshots/``.

The built page must exist (``npm --prefix web ci && npm --prefix web run build``, part of
``make setup``); a missing build or browser is a failure that says how to fix it, not a skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bunko.testing.servers import free_port
from tests.e2e.scripted_llm import scripted_llm


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e-args", default="", help="options of the system run (tests/e2e/test_system.py), "
                     'e.g. "--users 10 --load-seconds 20"')


REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "tests" / "e2e" / "out" / "screenshots"
CHROMIUM = Path(os.environ.get("BUNKO_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-e2e-password"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
START_TIMEOUT_S = 120


@dataclass
class Server:
    url: str
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def token(self, username: str, password: str) -> str:
        r = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": username, "password": password})
        r.raise_for_status()
        return str(r.json()["access_token"])

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"},
                             timeout=60, **kwargs)


@pytest.fixture(scope="session")
def bunko_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with scripted_llm() as llm_url:
        yield from _serve(tmp_path_factory, llm_url)


def _serve(tmp_path_factory: pytest.TempPathFactory, llm_url: str) -> Iterator[Server]:
    from bunko.api.web import BUILD_COMMAND, web_dir

    if not (web_dir() / "index.html").is_file():
        pytest.fail(f"the web page is not built into {web_dir()}: run `{BUILD_COMMAND}` (part of `make setup`)")
    data_dir = tmp_path_factory.mktemp("bunko-e2e")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
    env.update({
        "BUNKO_DATA_DIR": str(data_dir / "data"),
        "BUNKO_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
        "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # The documents screen polls while something is processing; two browsers and the test's
        # own API calls share the admin's window, so the default 100/min is raised for the run.
        "BUNKO_RATE_LIMIT_PER_MINUTE": "1000",
        "BUNKO_LLM_URL": llm_url,
        "BUNKO_LLM_MODEL": "scripted",
    })
    log_path = data_dir / "serve.log"
    bunko = Path(sys.executable).with_name("bunko")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(bunko), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bunko serve exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"bunko serve was not healthy within {START_TIMEOUT_S} s:\n{server.log()}")
            time.sleep(0.3)
        if httpx.get(f"{server.url}/", timeout=10).status_code == 404:
            pytest.fail("bunko serve does not serve the web page at /: create_app must call "
                        "`mount_web(app)` (from bunko.api.web) after including the API routers")
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (part of `make setup`)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a 2-core machine shared with other work: be patient
    with sync_playwright() as p:
        # Playwright gives each launch a fresh temporary user-data-dir and removes it on close.
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_factory(browser: Any, bunko_server: Server) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def make(*, phone: bool = False, lang: str = "ja") -> Any:
        ctx = browser.new_context(viewport=PHONE if phone else LAPTOP, locale="ja-JP",
                                  base_url=bunko_server.url, is_mobile=phone, has_touch=phone)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        # Script errors and CSP refusals ("Refused to ..."); a 4xx the page handles and shows is
        # logged by Chromium as "Failed to load resource" and is not a fault of the page.
        page.on("console", lambda m: errors.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.console_errors = errors  # type: ignore[attr-defined]
        if lang == "en":
            page.add_init_script("localStorage.setItem('bunko.lang', 'en')")
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def shot() -> Callable[[Any, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take

"""A PDF printed by Chromium (the commonest way a web manual becomes a PDF) reads as written.

Chromium places glyphs one by one, and pdfium then reports one text rectangle per glyph with
overlapping neighbours: read rectangle by rectangle, ``(F6)`` came out as ``( F 6 )`` and
``FAQ`` as ``FA FA Q`` (seen on aptitude-doc-ja's manual), which no BM25 term matches.
"""

import shutil
import subprocess

import pytest

from bunko.ingest.extract import extract_document

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = """<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>t</title></head><body>
<h1>第2章 画面の使い方</h1>
<table border="1" style="width:100%">
<tr><th>コマンド</th><th>説明</th></tr>
<tr><td>表示 → 次 (F6)</td><td>次のアクティブな画面に切り換えます。</td></tr>
<tr><td>ヘルプ → FAQ</td><td>aptitude FAQ を表示します。</td></tr>
</table>
<p>バージョンの比較には dpkg --compare-versions ver1 op ver2 を使います。</p>
<p>Debtags によってパッケージを分類します。</p>
</body></html>"""


@pytest.fixture(scope="module")
def chromium_pages(tmp_path_factory):
    from bunko.settings import Settings

    tmp = tmp_path_factory.mktemp("chromium")
    html, pdf = tmp / "page.html", tmp / "page.pdf"
    html.write_text(PAGE, encoding="utf-8")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (part of `make setup`)")
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp / 'profile'}",
         "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri()],
        check=True, capture_output=True, timeout=180,
    )
    settings = Settings(_env_file=None, data_dir=tmp / "data")
    return extract_document(pdf, sandbox=settings.sandbox, ocr=settings.ocr, engines=[])


def test_latin_words_keep_their_letters_together(chromium_pages):
    text = chromium_pages[0].markdown
    for expected in ("(F6)", "aptitude FAQ", "dpkg --compare-versions ver1 op ver2", "Debtags"):
        assert expected in text, (expected, text)
    for garbled in ("F 6", "FA FA", "a p t"):
        assert garbled not in text, (garbled, text)


def test_a_space_the_document_has_is_kept_between_japanese_words(chromium_pages):
    first = chromium_pages[0].markdown.splitlines()[0]
    assert first == "# 第2章 画面の使い方"


def test_table_rows_stay_rows(chromium_pages):
    rows = [ln for ln in chromium_pages[0].markdown.splitlines() if ln.startswith("|")]
    assert any("表示→次(F6)" in r.replace(" ", "") and "次のアクティブな画面に切り換えます" in r for r in rows), rows

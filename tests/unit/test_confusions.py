"""OCR's cross-script look-alikes (入カ → 入力) are put right by Sudachi's lattice cost, and correct
Japanese is left as it is. The misreadings are the ones rapidocr made on the real scans of
bench/realdocs.py. The correct sentences are the kind of text where a blind swap would do harm."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bunko.models.ocr import RapidOcrEngine
from bunko.text.confusions import fix_confusions


@pytest.mark.parametrize(("ocr", "right"), [
    ("標準入カを伸長します", "標準入力を伸長します"),
    ("すべての入カファイル", "すべての入力ファイル"),
    ("プロンプトを出カします。", "プロンプトを出力します。"),
    ("使うのがー般的です", "使うのが一般的です"),
    ("-Cと同ーです。", "-Cと同一です。"),
    ("ユーザをー人記入する", "ユーザを一人記入する"),
    ("ファイルをすベて調べ、", "ファイルをすべて調べ、"),
    ("アクセスすベきではない", "アクセスすべきではない"),
    ("口ケール表", "ロケール表"),
])
def test_an_ocr_look_alike_is_put_right(ocr, right):
    assert fix_confusions(ocr) == right


@pytest.mark.parametrize("text", [
    "アンカー点を置いてください",      # ー after katakana is the long vowel, whatever 一点 reads as
    "サーバへ接続する",                # the particle へ after a katakana word
    "入力ストリームを読む",            # 力 before katakana stays the kanji of 入力
    "パッケージ一覧を表示する",        # 一覧 after a katakana word
    "その一例です",                    # 一 between hiragana and kanji
    "カテゴリを選ぶ",                  # カ starting a katakana word
    "データベースを作る",
    "ニュースを読む",
    "エラーが出ます",
    "タブを開く",
])
def test_correct_japanese_is_left_as_it_is(text):
    assert fix_confusions(text) == text


def test_a_word_split_by_a_line_break_is_not_joined_across_it():
    # "カーソル" broken after カ: the ー that starts the next line is not the kanji 一.
    assert fix_confusions("を置いて、カ\nーソルをドラッグ") == "を置いて、カ\nーソルをドラッグ"


def test_text_without_a_look_alike_is_returned_as_is():
    text = "ASCII only, 123 and 漢字かな"
    assert fix_confusions(text) is text


def test_rapidocr_lines_go_through_the_fix(monkeypatch):
    """The engine's own post-processing, on what its recogniser returned for a scan of gzip(1):
    the recogniser's output is given (reading a page image that makes exactly this mistake is
    not something a test can rely on); the boxes, normalisation and fix are the engine's."""

    class Output:
        boxes = np.array([[[0, 0], [300, 0], [300, 40], [0, 40]]], dtype=float)
        txts = ("標準入カを伸長します",)
        scores = (0.97,)

    engine = RapidOcrEngine()
    monkeypatch.setattr(engine, "_load", lambda: lambda image: Output())
    result = engine.recognize(Image.new("RGB", (400, 60), "white"), dpi=300)
    assert [b.text for b in result.blocks] == ["標準入力を伸長します"]
    assert result.markdown == "標準入力を伸長します"
    assert engine.version.endswith("-fix1")

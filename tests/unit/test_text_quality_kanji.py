"""The wrong-kanji check of the text-layer quality gate, on plain strings."""

import random

from bunko.ingest.quality import rare_kanji_ratio, text_layer_is_good

A4 = 595.0 * 842.0
PROSE = ("パッケージの名前は英小文字と数字、プラスとマイナス記号、ピリオドだけから成るように選ばなければ"
         "いけません。少なくとも二文字以上で、英数字で始まり、既存のパッケージと同じではいけません。") * 3


def test_everyday_japanese_passes():
    ratio, kanji = rare_kanji_ratio(PROSE)
    assert kanji >= 20 and ratio < 0.05
    assert text_layer_is_good(PROSE, A4) == (True, "ok")


def test_valid_but_random_ideographs_go_to_ocr():
    rng = random.Random(7)
    garbled = "".join(chr(0x4E00 + rng.randrange(0x5000)) for _ in range(len(PROSE)))
    good, why = text_layer_is_good(garbled, A4)
    assert not good and "implausible text layer" in why


def test_too_few_kanji_are_not_judged():
    # A page of Latin text with a handful of rare kanji (a name, a symbol) is not a broken map.
    text = "The options are listed below. " * 10 + "鑁蠹燕"
    assert text_layer_is_good(text, A4) == (True, "ok")

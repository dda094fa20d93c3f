from bunko.text.normalize import normalize_text


def test_ligatures_are_unfolded():
    assert normalize_text("eﬀective ﬁle ﬂow") == "effective file flow"


def test_full_width_latin_and_digits_become_ascii():
    assert normalize_text("ＢＵＮＫＯ　２０２５年") == "BUNKO 2025年"


def test_half_width_katakana_becomes_full_width():
    assert normalize_text("ｶﾀｶﾅﾃﾞｰﾀ") == "カタカナデータ"


def test_japanese_text_gets_no_spaces_inserted():
    s = "文庫は日本語のPDFを検索可能にする仕組みです。"
    assert normalize_text(s) == s


def test_controls_and_replacement_characters_are_dropped():
    assert normalize_text("売上\x00高\ufffd\x07は\u200b増加") == "売上高は増加"


def test_space_runs_collapse_but_newlines_stay():
    raw = "第1章  はじめに\t\t本文\r\n次の行  \n\n\n\n段落"
    assert normalize_text(raw) == "第1章 はじめに 本文\n次の行\n\n段落"


def test_ideographic_space_becomes_one_space():
    assert normalize_text("第1章\u3000\u3000目的") == "第1章 目的"

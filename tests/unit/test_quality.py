import pytest

from bunko.ingest.quality import A4_AREA_PT2, text_layer_is_good

GOOD = "文庫は日本語のPDF文書を検索可能な知識ベースに変える仕組みです。" * 3


def test_a_normal_japanese_layer_is_good():
    assert text_layer_is_good(GOOD, A4_AREA_PT2) == (True, "ok")


def test_a_latin_layer_is_good_too():
    ok, _ = text_layer_is_good("Quarterly report: revenue grew 12% to 1,234 million yen.", A4_AREA_PT2)
    assert ok


@pytest.mark.parametrize("text", ["", "   \n ", "3", "- 12 -"])
def test_near_empty_page_goes_to_ocr(text):
    ok, reason = text_layer_is_good(text, A4_AREA_PT2)
    assert not ok
    assert "near-empty" in reason


def test_replacement_characters_go_to_ocr():
    ok, reason = text_layer_is_good("\ufffd" * 30 + "です。", A4_AREA_PT2)
    assert not ok
    assert "garbage" in reason


def test_private_use_code_points_go_to_ocr():
    junk = "".join(chr(0xE000 + i) for i in range(40))
    ok, reason = text_layer_is_good(junk + "あいう", A4_AREA_PT2)
    assert not ok and "garbage" in reason


def test_cid_tokens_go_to_ocr():
    ok, reason = text_layer_is_good("(cid:12)(cid:345)(cid:9) " * 10 + "売上高", A4_AREA_PT2)
    assert not ok and "CID" in reason


def test_a_few_stray_junk_characters_are_tolerated():
    ok, _ = text_layer_is_good(GOOD + "\ufffd", A4_AREA_PT2)
    assert ok


def test_minimum_scales_with_page_area():
    text = "第2部 資料編"  # 6 visible characters
    assert text_layer_is_good(text, 200 * 200)[0]  # a small card
    assert not text_layer_is_good(text, A4_AREA_PT2)[0]

"""PII detection on Japanese text (Presidio over GiNZA's ja_ginza, loaded for real) and the
redact policy applied to pages and their blocks."""

from __future__ import annotations

import pytest

from bunko.domain import OcrBlock, PageText
from bunko.ingest.privacy import screen_pages
from bunko.pii.detect import PiiDetector, redact
from bunko.pii.recognizers import my_number_check_digit


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector()


def _found(detector: PiiDetector, text: str) -> set[tuple[str, str]]:
    return {(f.entity, text[f.start:f.end]) for f in detector.find(text)}


def test_my_number_check_digit_matches_a_hand_computed_case():
    # 12345678901: from the right 1,0,9,8,7,6 weighted 2..7 and 5,4,3,2,1 weighted 2..6 sum to
    # 212; 212 mod 11 = 3, so the check digit is 11 - 3 = 8.
    assert my_number_check_digit("12345678901") == 8
    # A remainder of 0 or 1 gives 0: 00000000001 sums to 2 (weight 2), 2 mod 11 = 2 -> 9; and
    # 00000000000 sums to 0 -> 0.
    assert my_number_check_digit("00000000000") == 0
    assert my_number_check_digit("00000000001") == 9


@pytest.mark.parametrize(("text", "entity", "value"), [
    ("マイナンバーは 1234 5678 9018 です。", "JP_MY_NUMBER", "1234 5678 9018"),
    ("個人番号：123456789018", "JP_MY_NUMBER", "123456789018"),
    ("お問い合わせは電話 03-5555-0123 まで。", "PHONE_NUMBER", "03-5555-0123"),
    ("携帯は 090-1234-5678 です", "PHONE_NUMBER", "090-1234-5678"),
    ("連絡先: hanako.sato@example.co.jp", "EMAIL_ADDRESS", "hanako.sato@example.co.jp"),
    ("〒530-0001 大阪府大阪市北区梅田3丁目1番3号", "JP_POSTAL_CODE", "〒530-0001"),
    ("〒530-0001 大阪府大阪市北区梅田3丁目1番3号", "JP_ADDRESS", "大阪府大阪市北区梅田3丁目1番3号"),
    ("カード番号 4111 1111 1111 1111 で決済", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("担当の鈴木一郎さんが対応します。", "PERSON", "鈴木一郎"),
    # Values touching kana: Presidio's own patterns need a \b there and miss these.
    ("連絡はtaro.yamada@example.co.jpまで。", "EMAIL_ADDRESS", "taro.yamada@example.co.jp"),
    ("カード番号は4111111111111111、コードは123です。", "CREDIT_CARD", "4111111111111111"),
    ("電話：０３－１２３４－５６７８（代表）", "PHONE_NUMBER", "０３－１２３４－５６７８"),
])
def test_each_kind_is_found(detector, text, entity, value):
    assert (entity, value) in _found(detector, text)


@pytest.mark.parametrize("text", [
    "注文番号 123456789012 の商品を発送しました。",  # 12 digits failing the My Number check
    "マイナンバーは 1234 5678 9012 です。",  # wrong check digit, even with the context word
    "カード番号 4111 1111 1111 1112",  # fails Luhn
    "リリースは 2024-01-15、バージョン 1.2.3-4 です。",  # a date and a version, not a phone
    "東京都の人口は約1400万人です。",  # a prefecture alone is no address
    "部品番号 123-4567 を注文する。",  # a bare 3-4 code with no 郵便 near it
])
def test_near_misses_are_not_personal_information(detector, text):
    assert _found(detector, text) == set()


def test_a_name_never_holds_digits(detector):
    # GiNZA reads "090-2345" after a name as part of a Person; the phone number wins instead.
    text = "緊急連絡先：加藤 直樹（父）090-2345-6789"
    assert _found(detector, text) == {("PERSON", "加藤 直樹"), ("PHONE_NUMBER", "090-2345-6789")}


def test_redact_replaces_each_finding_with_its_label(detector):
    text = "山田太郎さんの電話は 03-5555-0123、メールは taro@example.jp です。"
    assert redact(text, detector.find(text)) == "＜氏名＞さんの電話は ＜電話番号＞、メールは ＜メールアドレス＞ です。"


def test_a_long_page_is_read_in_pieces_with_offsets_kept(detector):
    filler = "この段落には個人情報がありません。\n" * 800  # ~14,000 characters: several pieces
    text = filler + "電話 03-5555-0123 まで。\n" + filler
    (found,) = detector.find(text)
    assert text[found.start:found.end] == "03-5555-0123"


def _page() -> PageText:
    line1, line2 = "担当：山田太郎", "電話 03-5555-"
    return PageText(page_no=1, markdown=f"{line1}\n{line2}0123\n会議室は3階です。", source="layer",
                    confidence=1.0, blocks=[
                        OcrBlock(line1, (10, 10, 100, 20), 1.0),
                        OcrBlock(line2, (10, 30, 80, 40), 1.0),
                        OcrBlock("0123", (80, 30, 100, 40), 1.0),  # the number split over two spans
                        OcrBlock("会議室は3階です。", (10, 50, 100, 60), 1.0),
                    ])


def test_redact_policy_redacts_the_page_and_marks_the_blocks_that_held_it(detector):
    (page,), found = screen_pages(detector, [_page()], "redact")
    assert {f.finding.entity for f in found} == {"PERSON", "PHONE_NUMBER"}
    assert "山田太郎" not in page.markdown and "5555" not in page.markdown
    assert "＜氏名＞" in page.markdown and "会議室は3階です。" in page.markdown
    assert [b.redacted for b in page.blocks] == [True, False, True, False]
    assert page.blocks[0].text == "担当：＜氏名＞"
    assert page.blocks[2].text == "＜電話番号＞"


def test_flag_policy_keeps_the_text_and_reports_the_findings(detector):
    original = _page()
    (page,), found = screen_pages(detector, [original], "flag")
    assert page == original
    assert {(f.page_no, f.finding.entity) for f in found} == {(1, "PERSON"), (1, "PHONE_NUMBER")}


def test_off_policy_reads_nothing():
    class Refuses:
        def find(self, text: str) -> list:
            raise AssertionError("the detector must not run")

    page = _page()
    assert screen_pages(Refuses(), [page], "off") == ([page], [])  # type: ignore[arg-type]


def test_a_block_spaced_differently_from_the_page_is_still_redacted(detector):
    page = PageText(page_no=1, markdown="担当：山田太郎\n電話 03-5555-0123", source="layer", confidence=1.0,
                    blocks=[OcrBlock("担当：山田 太郎", (10, 10, 100, 20), 1.0),
                            OcrBlock("電話 03 - 5555 - 0123", (10, 30, 100, 40), 1.0)])
    (out,), _ = screen_pages(detector, [page], "redact")
    assert [b.text for b in out.blocks] == ["担当：＜氏名＞", "電話 ＜電話番号＞"]
    assert all(b.redacted for b in out.blocks)

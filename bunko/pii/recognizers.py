"""Japanese recognisers for Presidio: My Number, postal codes and addresses of their own; phone
numbers, e-mail addresses and credit cards as Presidio's, told to work in Japanese.

Presidio's own recognisers are English by default (their context words, and ``supported_language``
"en"), so each is built here for "ja" with the words a Japanese document puts beside the value.
Context words are matched against GiNZA's lemmas, one token at a time, so they are the tokens
Sudachi makes (電話, not 電話番号).
"""

from __future__ import annotations

from typing import Any

import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    PhoneRecognizer,
)

LANGUAGE = "ja"

# Presidio entity names, and how a redacted page shows each (one source for both).
MY_NUMBER = "JP_MY_NUMBER"
POSTAL_CODE = "JP_POSTAL_CODE"
ADDRESS = "JP_ADDRESS"
PHONE = "PHONE_NUMBER"
EMAIL = "EMAIL_ADDRESS"
CREDIT_CARD = "CREDIT_CARD"
PERSON = "PERSON"

LABELS = {
    MY_NUMBER: "個人番号",
    POSTAL_CODE: "郵便番号",
    ADDRESS: "住所",
    PHONE: "電話番号",
    EMAIL: "メールアドレス",
    CREDIT_CARD: "カード番号",
    PERSON: "氏名",
}
ENTITIES = tuple(LABELS)

PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)

_DIGITS = str.maketrans("０１２３４５６７８９－ー−‐", "0123456789----")


def my_number_check_digit(first11: str) -> int:
    """The check digit of an individual number (個人番号) from its first 11 digits, as the
    Ministry's ordinance defines it: weights 2..7 then 2..6 from the right, mod 11."""
    total = 0
    for n, ch in enumerate(reversed(first11), start=1):
        total += int(ch) * (n + 1 if n <= 6 else n - 5)
    rem = total % 11
    return 0 if rem <= 1 else 11 - rem


_D4 = "[0-9０-９]{4}"
# Not a part of a longer run of digit groups (a 16-digit card number written 4-4-4-4).
_MY_NUMBER_RE = rf"(?<![0-9０-９\-－])(?<![0-9０-９][ \-－]){_D4}[ \-－]?{_D4}[ \-－]?{_D4}(?![ \-－]?[0-9０-９])"


class MyNumberRecognizer(PatternRecognizer):
    """12 digits (optionally 4-4-4) whose last is the check digit of the first 11. A 12-digit
    order or account number passes the check one time in eleven, so the base score is low and
    マイナンバー / 個人番号 beside it raise it."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity=MY_NUMBER,
            supported_language=LANGUAGE,
            patterns=[Pattern("my number", _MY_NUMBER_RE, 0.3)],
            context=["マイナンバー", "個人", "番号", "個人番号", "通知", "カード"],
        )

    def validate_result(self, pattern_text: str) -> bool:
        digits = "".join(c for c in pattern_text.translate(_DIGITS) if c.isdigit())
        return len(digits) == 12 and my_number_check_digit(digits[:11]) == int(digits[11])


class PostalCodeRecognizer(PatternRecognizer):
    """〒123-4567 is a postal code; a bare 123-4567 only with 郵便 or 〒 near it."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity=POSTAL_CODE,
            supported_language=LANGUAGE,
            patterns=[
                Pattern("with mark", r"〒\s?[0-9０-９]{3}[\-－ー−][0-9０-９]{4}(?![0-9０-９])", 0.9),
                Pattern("bare", r"(?<![0-9０-９\-])[0-9０-９]{3}[\-－][0-9０-９]{4}(?![0-9０-９\-])", 0.2),
            ],
            context=["郵便", "郵便番号", "〒", "住所", "所在地"],
        )


class AddressRecognizer(PatternRecognizer):
    """A prefecture, a municipality and a block number: 東京都千代田区千代田1-1, 大阪府大阪市北区梅田
    3丁目1番3号. A prefecture alone (東京都の人口) is not an address."""

    def __init__(self) -> None:
        prefecture = "(?:" + "|".join(PREFECTURES) + ")"
        municipality = r"[^\s、。,，()（）「」]{1,12}?[市区町村郡]"
        rest = r"[^\s、。,，()（）「」]{0,20}?"
        number = r"[0-9０-９一二三四五六七八九十]+(?:(?:丁目|番地?|号|[\-－ー−の])[0-9０-９一二三四五六七八九十]*)*"
        super().__init__(
            supported_entity=ADDRESS,
            supported_language=LANGUAGE,
            patterns=[Pattern("prefecture+municipality+number", prefecture + municipality + rest + number, 0.75)],
            context=["住所", "所在地", "住む", "在住", "〒"],
        )


# Presidio's patterns start and end at \b, and in Japanese text a value often touches a kana or
# kanji (連絡はtaro@example.jpまで), which \w counts as a word character: no boundary, no match.
# These bound the value by what cannot continue it instead.
_EMAIL_RE = r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9])"
_CARD_RE = (r"(?<![0-9\-])(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))"
            r"[- ]?(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})(?![0-9])")


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recogniser with a domain check that never fetches the public suffix
    list: tldextract's default extractor downloads it on first use, and Bunko runs offline."""

    _extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def __init__(self) -> None:
        super().__init__(supported_language=LANGUAGE, patterns=[Pattern("email", _EMAIL_RE, 0.5)],
                         context=["メール", "アドレス", "mail", "e-mail", "連絡"])

    def validate_result(self, pattern_text: str) -> bool:
        return self._extract(pattern_text).fqdn != ""


def recognizers() -> list[EntityRecognizer]:
    """Every pattern recogniser; person names come from the NLP engine (GiNZA's NER)."""
    made: list[Any] = [
        MyNumberRecognizer(),
        PostalCodeRecognizer(),
        AddressRecognizer(),
        OfflineEmailRecognizer(),
        # phonenumbers' matcher, Japan's numbering plan only: 03-1234-5678, 090-1234-5678,
        # +81 3 1234 5678; a date or a version number is not a valid number there.
        PhoneRecognizer(supported_language=LANGUAGE, supported_regions=("JP",), leniency=3,
                        context=["電話", "tel", "携帯", "連絡", "fax", "ファックス", "問い合わせ"]),
        # Presidio's Luhn check.
        CreditCardRecognizer(supported_language=LANGUAGE, patterns=[Pattern("card", _CARD_RE, 0.3)],
                             context=["クレジット", "カード", "card", "visa", "mastercard", "jcb", "決済"]),
    ]
    return made

"""The project's own sample PDFs, made deterministically on the spot (no downloads).

Good samples (:func:`make_samples`) for the demo, the benchmark and the tests:

- ``born_digital.pdf``: Japanese prose with a heading per section and a page with a real table, as
  a real text layer (fpdf2 embeds a subset of IPA Gothic with a ToUnicode map).
- ``scanned.pdf``: the same kind of text rendered to a 300 dpi greyscale image with a little
  noise, embedded as an image-only page (no text layer at all).
- ``broken_layer.pdf``: visible Japanese text whose font's ToUnicode map points at U+FFFD and
  private-use code points, as in real PDFs with broken CID fonts: it *looks* right but extracts as
  junk, so the quality check must send it to OCR.
- ``vertical.pdf``: a page of vertical Japanese (縦書き, right-to-left columns) as an image.

Hostile and invalid ones (:func:`make_invalid_samples`) for the refusal tests.

The module constants are what each sample says; tests and the demo compare against them.
"""

from __future__ import annotations

import io
import random
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

GOTHIC_FONT = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
# --- what the samples say ----------------------------------------------------------------------

BORN_DIGITAL_TITLE = "文庫サンプル 年次報告書"
BORN_DIGITAL_SECTIONS: list[tuple[str, list[str]]] = [
    (
        "第1章 文庫の目的",
        [
            "文庫は日本語のPDF文書を検索可能な知識ベースに変える仕組みです。",
            "利用者が質問すると、関連する頁を探し出し、出典となる頁番号を添えて回答します。",
            "社内の規程集、技術資料、議事録など、大量の文書を抱える組織での利用を想定しています。",
        ],
    ),
    (
        "第2章 取り込みの流れ",
        [
            "取り込みでは、まずファイルの形式と大きさを検証し、重複した文書を検出します。",
            "テキスト層が正しく埋め込まれた頁はそのまま抽出し、壊れた頁や画像だけの頁は光学文字認識で読み取ります。",
            "抽出した本文は見出しと表を保ったまま分割され、ベクトルと索引語の両方で検索できるようになります。",
        ],
    ),
    (
        "第3章 安全性への配慮",
        [
            "悪意のあるPDFは、展開すると数ギガバイトに膨らむ圧縮ストリームを含むことがあります。",
            "そのため解析と描画は独立した子プロセスで行い、メモリと時間に上限を設けています。",
            "JavaScriptや埋め込みファイルが実行されることはありません。",
        ],
    ),
]
BORN_DIGITAL_TABLE_HEADING = "第4章 業績の概要"
BORN_DIGITAL_TABLE_INTRO = "当社の過去二年間の主要な業績は次の表のとおりです。"
BORN_DIGITAL_TABLE: list[list[str]] = [
    ["年度", "項目", "金額"],
    ["2024年度", "売上高", "1,102億円"],
    ["2025年度", "売上高", "1,234億円"],
    ["2025年度", "営業利益", "215億円"],
]
# The one cell that answers 「2025年度の売上高は？」, unique in the document.
BORN_DIGITAL_TABLE_FACT = ("2025年度", "売上高", "1,234億円")
BORN_DIGITAL_SENTENCES: list[str] = [s for _, body in BORN_DIGITAL_SECTIONS for s in body] + [
    BORN_DIGITAL_TABLE_INTRO
]
BORN_DIGITAL_PAGES = len(BORN_DIGITAL_SECTIONS) + 1

# One (heading, sentences) per page of scanned.pdf.
SCANNED_PAGES: list[tuple[str, list[str]]] = [
    (
        "第5章 紙の資料の電子化",
        [
            "古い紙の資料は、スキャナーで読み取った画像として保存されていることが多いです。",
            "画像だけの頁には文字の情報がないため、光学文字認識で本文を復元します。",
            "認識の信頼度が低い場合は、より高い解像度で読み直します。",
        ],
    ),
    (
        "第6章 検索と回答",
        [
            "質問は意味の近さと語の一致の両方で検索されます。",
            "回答には必ず文書名と頁番号が引用として添えられます。",
        ],
    ),
]
SCANNED_SENTENCES: list[str] = [s for _, body in SCANNED_PAGES for s in body]

BROKEN_LAYER_SENTENCES: list[str] = [
    "この頁のテキスト層は壊れていますが、見た目は正しく表示されます。",
    "品質検査が不正な文字を検出し、光学文字認識に回します。",
]

# Columns in reading order (right to left on the page).
VERTICAL_COLUMNS: list[str] = [
    "縦書きの文章は右から左へ読みます。",
    "日本の小説や新聞で広く使われています。",
    "文庫はこの順序を守って取り込みます。",
]

SCAN_DPI = 300
# Fixed creation date: the same inputs give byte-identical files (a stable sha256 across runs).
_FIXED_DATE = datetime(2025, 4, 1, tzinfo=UTC)
A4_MM = (210.0, 297.0)


# --- good samples ------------------------------------------------------------------------------


def _font_path() -> Path:
    if not GOTHIC_FONT.exists():
        raise FileNotFoundError(
            f"the Japanese font {GOTHIC_FONT} is missing; install it with "
            "`apt-get install fonts-ipafont-gothic fonts-ipafont-mincho`"
        )
    return GOTHIC_FONT


def _new_pdf(title: str) -> FPDF:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_creation_date(_FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author("Bunko")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    font = str(_font_path())
    pdf.add_font("ipag", fname=font)
    pdf.add_font("ipag", style="B", fname=font)  # tables render their header row in bold
    return pdf


def _heading(pdf: FPDF, text: str) -> None:
    pdf.set_font("ipag", size=18)
    pdf.multi_cell(0, 12, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _paragraph(pdf: FPDF, text: str) -> None:
    pdf.set_font("ipag", size=11)
    pdf.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def make_born_digital(path: Path) -> Path:
    pdf = _new_pdf(BORN_DIGITAL_TITLE)
    for heading, body in BORN_DIGITAL_SECTIONS:
        pdf.add_page()
        _heading(pdf, heading)
        for sentence in body:
            _paragraph(pdf, sentence)
    pdf.add_page()
    _heading(pdf, BORN_DIGITAL_TABLE_HEADING)
    _paragraph(pdf, BORN_DIGITAL_TABLE_INTRO)
    pdf.set_font("ipag", size=11)
    with pdf.table(col_widths=(40, 40, 40), width=120, align="LEFT") as table:
        for row in BORN_DIGITAL_TABLE:
            cells = table.row()
            for value in row:
                cells.cell(value)
    pdf.output(str(path))
    return path


def _render_text_page(
    lines: list[tuple[str, int]], *, dpi: int = SCAN_DPI, seed: int = 7, noise: float = 0.002
) -> Image.Image:
    """A4 page image of ``(text, point size)`` lines, wrapped to the margins, with speckle noise."""
    width, height = round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi)
    margin = round(20 / 25.4 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    y = margin
    for text, points in lines:
        font = ImageFont.truetype(str(_font_path()), round(points / 72 * dpi))
        line_h = round(points / 72 * dpi * 1.7)
        current = ""
        for ch in text:
            if draw.textlength(current + ch, font=font) > width - 2 * margin:
                draw.text((margin, y), current, font=font, fill=20)
                y += line_h
                current = ""
            current += ch
        draw.text((margin, y), current, font=font, fill=20)
        y += line_h + round(points / 72 * dpi * 0.6)
    _speckle(image, seed=seed, fraction=noise)
    return image


def _speckle(image: Image.Image, *, seed: int, fraction: float) -> None:
    rng = random.Random(seed)
    px = image.load()
    assert px is not None
    for _ in range(int(image.width * image.height * fraction)):
        x, y = rng.randrange(image.width), rng.randrange(image.height)
        px[x, y] = rng.randrange(90, 200)


def _image_pdf(images: list[Image.Image], path: Path, title: str) -> Path:
    """Image-only pages: each image fills an A4 page; no text layer at all."""
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_creation_date(_FIXED_DATE)
    pdf.set_title(title)
    for image in images:
        pdf.add_page()
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)
        buf.seek(0)
        pdf.image(buf, x=0, y=0, w=A4_MM[0], h=A4_MM[1])
    pdf.output(str(path))
    return path


def make_scanned(path: Path) -> Path:
    images = [
        _render_text_page([(heading, 16)] + [(s, 12) for s in body], seed=7 + i)
        for i, (heading, body) in enumerate(SCANNED_PAGES)
    ]
    return _image_pdf(images, path, "スキャン文書サンプル")


_BFCHAR = re.compile(rb"<([0-9A-Fa-f]{4})> <([0-9A-Fa-f]{4})>")


def _remapped_layer(path: Path, title: str, destination: Callable[[int], str]) -> Path:
    """The broken-layer sentences, with every glyph's ToUnicode entry pointed at
    ``destination(cid)`` (four hex digits: same byte length, so the xref stays valid)."""
    pdf = _new_pdf(title)
    pdf.set_compression(False)  # keeps the ToUnicode CMap readable for the rewrite below
    pdf.add_page()
    for sentence in BROKEN_LAYER_SENTENCES:
        _paragraph(pdf, sentence)
    data = bytes(pdf.output())

    def remap(m: re.Match[bytes]) -> bytes:
        cid = int(m.group(1), 16)
        if cid in (0, 0x20):
            return m.group(0)
        return b"<" + m.group(1) + b"> <" + destination(cid).encode() + b">"

    start = data.index(b"beginbfchar")
    end = data.index(b"endbfchar", start)
    data = data[:start] + _BFCHAR.sub(remap, data[start:end]) + data[end:]
    path.write_bytes(data)
    return path


def make_broken_layer(path: Path) -> Path:
    """Visible text whose ToUnicode map is rewritten to junk: every glyph extracts as U+FFFD or a
    private-use code point."""
    return _remapped_layer(path, "壊れたテキスト層のサンプル",
                           lambda cid: "FFFD" if cid % 2 else f"{0xE000 + cid:04X}")


def make_wrong_kanji_layer(path: Path) -> Path:
    """Visible text whose ToUnicode map points every glyph at a valid but wrong ideograph: the
    layer reads as plausible-looking kanji, none of them the page's."""
    return _remapped_layer(path, "誤った漢字のテキスト層", lambda cid: f"{0x4E00 + (cid * 7919) % 0x5000:04X}")


def _render_vertical_page(columns: list[str], *, dpi: int = SCAN_DPI, points: int = 14) -> Image.Image:
    width, height = round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi)
    size = round(points / 72 * dpi)
    font = ImageFont.truetype(str(_font_path()), size)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    x = width - round(25 / 25.4 * dpi) - size
    top = round(25 / 25.4 * dpi)
    for column in columns:
        y = top
        for ch in column:
            if ch in "。、":  # punctuation sits top-right of its cell in vertical writing
                draw.text((x + size * 0.55, y - size * 0.45), ch, font=font, fill=20)
            else:
                draw.text((x, y), ch, font=font, fill=20)
            y += round(size * 1.1)
        x -= round(size * 1.9)
    _speckle(image, seed=11, fraction=0.001)
    return image


def make_vertical(path: Path) -> Path:
    return _image_pdf([_render_vertical_page(VERTICAL_COLUMNS)], path, "縦書きサンプル")


# A staff contact sheet with made-up personal information of every kind bunko.pii detects (the
# My Number passes its check digit, the card number the Luhn check), and numbers that are not
# personal information (an order number, a date, a version) beside them.
PERSONAL_TITLE = "社員連絡先一覧（サンプル）"
PERSONAL_LINES = (
    "総務部の山田太郎さんの電話番号は 03-5555-0123 です。",
    "山田さんへのメールは taro.yamada@example.co.jp に送ってください。",
    "本社の住所は 〒100-0005 東京都千代田区丸の内1-9-1 です。",
    "山田さんのマイナンバー（個人番号）は 1234 5678 9018 として届け出られています。",
    "経費精算用のクレジットカード番号は 4111 1111 1111 1111 です。",
    "営業部の佐藤花子さんの携帯電話は 090-1234-5678 です。",
    "注文番号 123456789012 の備品は 2025年4月1日に納品され、社内規程は第3版に改定されました。",
    "会議室の予約は総務部の受付で行います。",
)
PERSONAL_VALUES = ("山田太郎", "03-5555-0123", "taro.yamada@example.co.jp", "100-0005",
                   "東京都千代田区丸の内1-9-1", "1234 5678 9018", "4111 1111 1111 1111", "佐藤花子",
                   "090-1234-5678")


def make_personal_record(path: Path) -> Path:
    pdf = _new_pdf(PERSONAL_TITLE)
    pdf.add_page()
    _heading(pdf, PERSONAL_TITLE)
    for line in PERSONAL_LINES:
        _paragraph(pdf, line)
    pdf.output(str(path))
    return path


def make_samples(out_dir: Path) -> dict[str, Path]:
    """Write the good samples into ``out_dir``; returns ``{file name: path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    makers = {
        "born_digital.pdf": make_born_digital,
        "scanned.pdf": make_scanned,
        "broken_layer.pdf": make_broken_layer,
        "vertical.pdf": make_vertical,
    }
    return {name: make(out_dir / name) for name, make in makers.items()}


# --- hostile and invalid samples ---------------------------------------------------------------


def _raw_pdf(objects: list[bytes]) -> bytes:
    """A minimal PDF from object bodies (object n is ``objects[n-1]``; 1 is the catalog)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    length = str(len(data)).encode()
    return b"<< " + dictionary + b" /Length " + length + b" >>\nstream\n" + data + b"\nendstream"


def _deflate_zeros(total: int, chunk: int = 1 << 20) -> bytes:
    """A zlib stream that inflates to ``total`` zero bytes, made in milliseconds.

    With a full flush after each chunk the deflate state resets, so every chunk of zeros
    compresses to the same bytes: compress one, repeat it. Adler-32 of n zeros is (n mod 65521,
    1), so the trailer needs no pass over the data either.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    rest = total % chunk
    tail = (comp.compress(bytes(rest)) if rest else b"") + comp.flush(zlib.Z_FINISH)
    adler = ((total % 65521) << 16) | 1
    return b"\x78\xda" + block * (total // chunk) + tail + adler.to_bytes(4, "big")


def make_bomb(path: Path, *, inflated_bytes: int = 4 << 30) -> Path:
    """A one-page PDF whose content stream inflates to ``inflated_bytes`` (4 GiB by default).

    Zeros deflate ~1000:1 and the result is itself repetitive, so a second FlateDecode shrinks the
    file to a few kilobytes.
    """
    once = _deflate_zeros(inflated_bytes)
    twice = zlib.compress(once, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>",
        _stream(b"/Filter [/FlateDecode /FlateDecode]", twice),
    ]
    path.write_bytes(_raw_pdf(objects))
    return path


def make_image_bomb(path: Path, *, side: int = 60_000) -> Path:
    """A page drawing a ``side``² greyscale image (3.6 GB decoded by default) of zeros."""
    once = _deflate_zeros(side * side)
    twice = zlib.compress(once, 9)
    content = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /XObject << /Im0 5 0 R >> >> >>",
        _stream(b"", content),
        _stream(
            f"/Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceGray "
            "/BitsPerComponent 8 /Filter [/FlateDecode /FlateDecode]".encode(),
            twice,
        ),
    ]
    path.write_bytes(_raw_pdf(objects))
    return path


def make_huge_page(path: Path, *, side_pt: int = 200_000) -> Path:
    """A valid page whose MediaBox is ``side_pt``² points (70 m square) with no text layer."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {side_pt} {side_pt}] /Contents 4 0 R "
        "/Resources << >> >>".encode(),
        _stream(b"", b"0 g 0 0 1000 1000 re f"),
    ]
    path.write_bytes(_raw_pdf(objects))
    return path


def make_no_pages(path: Path) -> Path:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    path.write_bytes(_raw_pdf(objects))
    return path


def make_page_tree_cycle(path: Path) -> Path:
    """A page tree whose only kid is the tree itself."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"]
    path.write_bytes(_raw_pdf(objects))
    return path


def make_encrypted(path: Path, *, user_password: str) -> Path:
    """RC4-128 (fpdf2's pure-Python scheme). An empty ``user_password`` opens without a prompt
    but still carries an /Encrypt dictionary with owner restrictions."""
    pdf = _new_pdf("暗号化されたサンプル")
    pdf.set_encryption(owner_password="bunko-owner", user_password=user_password)
    pdf.add_page()
    _paragraph(pdf, BORN_DIGITAL_SENTENCES[0])
    pdf.output(str(path))
    return path


def make_invalid_samples(out_dir: Path) -> dict[str, Path]:
    """Write the refusal and containment samples; returns ``{name: path}``:

    ``corrupt`` (a real PDF truncated after 400 bytes), ``encrypted`` (user password),
    ``encrypted_no_password`` (owner restrictions only), ``empty`` (0 bytes), ``no_pages``,
    ``page_tree_cycle``, ``not_pdf`` (a PNG named .pdf), ``bomb`` (content stream → 4 GiB),
    ``image_bomb`` (a 60 000² image), ``huge_page`` (a 200 000 pt square page).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    whole = make_born_digital(out_dir / "_whole.pdf")
    data = whole.read_bytes()
    whole.unlink()
    paths["corrupt"] = out_dir / "corrupt.pdf"
    paths["corrupt"].write_bytes(data[:400])

    paths["encrypted"] = make_encrypted(out_dir / "encrypted.pdf", user_password="secret")
    paths["encrypted_no_password"] = make_encrypted(out_dir / "encrypted_no_password.pdf", user_password="")

    paths["empty"] = out_dir / "empty.pdf"
    paths["empty"].write_bytes(b"")
    paths["no_pages"] = make_no_pages(out_dir / "no_pages.pdf")
    paths["page_tree_cycle"] = make_page_tree_cycle(out_dir / "page_tree_cycle.pdf")

    png = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(png, format="PNG")
    paths["not_pdf"] = out_dir / "not_pdf.pdf"
    paths["not_pdf"].write_bytes(png.getvalue())

    paths["bomb"] = make_bomb(out_dir / "bomb.pdf")
    paths["image_bomb"] = make_image_bomb(out_dir / "image_bomb.pdf")
    paths["huge_page"] = make_huge_page(out_dir / "huge_page.pdf")
    return paths

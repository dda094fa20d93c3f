"""The PDFs the end-to-end run uploads: many distinct documents, each with facts only it holds.

Born-digital reports are made the way ``bunko.samples`` makes its own (fpdf2, IPA Gothic, a real
text layer), one per company, so every document has different bytes (no duplicate refusals) and a
question with exactly one right document and page. Scanned ones are rendered to images with no text
layer (OCR); the broken-text-layer and vertical samples are ``bunko.samples``' own. Invalid files
are ``bunko.samples.make_invalid_samples``' cheap ones (not the bombs: those belong to the
containment tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bunko import samples

COMPANIES = [
    "青葉商事", "桜川電機", "北斗製薬", "白樺食品", "朝霧運輸", "若竹建設", "紅葉銀行", "銀河通信",
    "富士見化学", "七海水産", "翠嶺鉱業", "明星出版", "旭日重工", "千鳥航空", "雪原乳業", "琥珀酒造",
    "大和精機", "月影書房", "潮騒海運", "杉並印刷", "葵生命", "晴嵐自動車", "碧空電力", "黎明製鉄",
    "清流製紙", "鳳凰百貨", "松風楽器", "稲穂農産", "黒潮漁業", "光彩硝子", "萌黄繊維", "天馬玩具",
]
CITIES = ["札幌", "仙台", "金沢", "静岡", "名古屋", "京都", "神戸", "岡山", "広島", "松山", "博多",
          "熊本", "那覇", "新潟", "長野", "甲府"]
PRODUCTS = ["蓄電池", "医療機器", "冷凍食品", "半導体", "光ファイバー", "産業用ロボット", "浄水器",
            "太陽電池", "精密歯車", "香辛料", "合成樹脂", "人工衛星部品"]


@dataclass(frozen=True)
class Fact:
    """A question whose answer is on one page of one document."""

    question: str
    expected: str  # a string the right passage contains
    filename: str
    page: int


@dataclass(frozen=True)
class CorpusDoc:
    path: Path
    kind: str  # born_digital | scanned | broken_layer | vertical
    facts: tuple[Fact, ...] = ()

    @property
    def filename(self) -> str:
        return self.path.name


def _report(path: Path, i: int) -> CorpusDoc:
    """A three-page report of company ``i``: revenue on page 2, head office and product on page 3."""
    company = COMPANIES[i % len(COMPANIES)] + ("" if i < len(COMPANIES) else f"第{i}")
    city = CITIES[i % len(CITIES)]
    product = PRODUCTS[i % len(PRODUCTS)]
    revenue = f"{1000 + 37 * i:,}億円"
    employees = f"{1200 + 113 * i:,}名"
    pdf = samples._new_pdf(f"{company} 年次報告書")
    pdf.add_page()
    samples._heading(pdf, f"{company} 年次報告書")
    samples._paragraph(pdf, f"本書は{company}の事業の概況をまとめた年次報告書です。")
    samples._paragraph(pdf, "当社は創業以来、品質と信頼を第一に事業を進めてまいりました。"
                       "株主の皆様のご支援に心より感謝申し上げます。")
    pdf.add_page()
    samples._heading(pdf, "第1章 業績")
    samples._paragraph(pdf, f"{company}の2025年度の売上高は{revenue}でした。")
    samples._paragraph(pdf, f"{company}の従業員数は{employees}です。前年度より採用を増やしました。")
    pdf.add_page()
    samples._heading(pdf, "第2章 拠点と製品")
    samples._paragraph(pdf, f"{company}の本社は{city}にあります。")
    samples._paragraph(pdf, f"{company}の主力製品は{product}です。海外への輸出も伸びています。")
    pdf.output(str(path))
    name = path.name
    return CorpusDoc(path, "born_digital", (
        Fact(f"{company}の2025年度の売上高はいくらですか？", revenue, name, 2),
        Fact(f"{company}の本社はどこにありますか？", f"{company}の本社は{city}", name, 3),
    ))


def _private_memo(path: Path) -> CorpusDoc:
    pdf = samples._new_pdf("極秘メモ")
    pdf.add_page()
    samples._heading(pdf, "極秘メモ")
    samples._paragraph(pdf, "新規事業の暗号名は「紫陽花計画」です。この文書は作成者だけが読めます。")
    samples._paragraph(pdf, "紫陽花計画の予算は四十二億円で、開始は来年の春を予定しています。")
    pdf.output(str(path))
    return CorpusDoc(path, "born_digital", (
        Fact("紫陽花計画の予算はいくらですか？", "紫陽花計画の予算は四十二億円", path.name, 1),
    ))


def _scanned(path: Path, i: int) -> CorpusDoc:
    company = ["湖畔織物", "霧島陶器", "夕凪造船"][i % 3]
    year = 1931 + 7 * i
    lines = [(f"{company} 沿革", 16), (f"{company}は{year}年に創業しました。", 12),
             ("当時の帳簿は紙のまま保管されており、この頁はその写しです。", 12)]
    image = samples._render_text_page(lines, dpi=200, seed=20 + i)
    samples._image_pdf([image], path, f"{company} 沿革")
    return CorpusDoc(path, "scanned", (
        Fact(f"{company}は何年に創業しましたか？", f"{year}", path.name, 1),
    ))


def make_corpus(out: Path, *, reports: int, scanned: int = 2) -> list[CorpusDoc]:
    """The main upload set: ``reports`` born-digital reports, a private memo (uploaded by a plain
    User), ``scanned`` scanned pages, the broken-text-layer sample and the vertical sample."""
    out.mkdir(parents=True, exist_ok=True)
    docs = [_report(out / f"report_{i:02d}.pdf", i) for i in range(reports)]
    docs.append(_private_memo(out / "private_memo.pdf"))
    docs += [_scanned(out / f"scanned_{i}.pdf", i) for i in range(scanned)]
    docs.append(CorpusDoc(samples.make_broken_layer(out / "broken_layer.pdf"), "broken_layer"))
    docs.append(CorpusDoc(samples.make_vertical(out / "vertical.pdf"), "vertical"))
    return docs


def make_extra_reports(out: Path, start: int, count: int) -> list[CorpusDoc]:
    """More distinct reports for the later phases (faults, load), numbered after the first set."""
    out.mkdir(parents=True, exist_ok=True)
    return [_report(out / f"report_{i:02d}.pdf", i) for i in range(start, start + count)]


def make_invalid(out: Path) -> dict[str, tuple[Path, set[int]]]:
    """Files the upload must refuse: ``{name: (path, acceptable 4xx statuses)}``."""
    import io

    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    whole = samples.make_born_digital(out / "_whole.pdf").read_bytes()
    (out / "_whole.pdf").unlink()
    corrupt = out / "corrupt.pdf"
    corrupt.write_bytes(whole[:400])
    empty = out / "empty.pdf"
    empty.write_bytes(b"")
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(png, format="PNG")
    not_pdf = out / "not_pdf.pdf"
    not_pdf.write_bytes(png.getvalue())
    encrypted = samples.make_encrypted(out / "encrypted.pdf", user_password="secret")
    return {
        "corrupt": (corrupt, {422}),
        "empty": (empty, {422}),
        "not_pdf": (not_pdf, {415}),
        "encrypted": (encrypted, {422}),
    }

"""The development set of real documents: Japanese manuals no one on the team wrote, built from
Debian packages, and their image-only "scans".

    .venv/bin/python bench/realdocs.py [--out bench/.realdocs]

Needs the network for ``apt-get download`` (Debian's archive) the first time, and Chromium,
poppler-utils and mandoc (``scripts/system-deps.sh chromium poppler mandoc``). Nothing built here
is committed; the questions are (``bench/realdocs_questions.yaml``).

What it builds, in ``--out``:

* ``pdf/<doc>.pdf``: maint-guide-ja's own PDF, and HTML manuals printed by Chromium
  (``--headless --print-to-pdf``, its default date/title/URL/page header and footer kept, as a
  user printing a manual gets them): debian-policy-ja, aptitude-doc-ja, lilypond-doc-html-ja's
  usage manual, kicad-doc-ja (partly still English: the cross-lingual questions), a part of
  gimp-help-ja; and manpages-ja. groff 1.22 has no CJK fonts (``-Tpdf`` drops every kana, ``-Thtml``
  puts a space between every character), so the man pages go through ``mandoc -Thtml`` and
  Chromium instead.
* ``scan/<doc>.pdf``: image-only copies of every page a question cites, rendered at 200 dpi,
  grey, JPEG quality 75; every third page rotated 1.5° with sensor noise, as a flatbed scan is.
  ``scan/pages.json`` maps (doc, original page) → page of the scan.
* ``gold.json``: every question with its gold pages resolved: a question names its pages by
  ``anchor`` (a phrase that is on the gold page), because where Chromium breaks a page depends on
  its version and fonts; ``pages`` as written are checked against the anchors and the build says
  when a rendering moved them.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "realdocs_questions.yaml"
DEFAULT_OUT = HERE / ".realdocs"

PACKAGES = [
    "maint-guide-ja", "debian-policy-ja", "aptitude-doc-ja", "lilypond-doc-html-ja",
    "kicad-doc-ja", "gimp-help-ja", "manpages-ja",
]

# Man pages of everyday commands and files (manpages-ja has ~1,300; these keep the set at a size
# a 2-core machine embeds in minutes).
MAN_PAGES = [
    "man1/ls", "man1/cp", "man1/mv", "man1/rm", "man1/chmod", "man1/chown", "man1/find",
    "man1/grep", "man1/tar", "man1/gzip", "man1/df", "man1/du", "man1/date", "man1/sort",
    "man1/uniq", "man1/head", "man1/tail", "man1/wc", "man1/cut", "man1/ln", "man1/mkdir",
    "man1/touch", "man1/kill", "man1/ps", "man1/top", "man1/nice", "man1/ssh", "man1/scp",
    "man1/crontab", "man1/passwd", "man1/su", "man1/sed", "man1/diff", "man1/patch",
    "man5/crontab", "man5/passwd", "man5/fstab", "man5/hosts", "man5/services", "man5/shadow",
    "man8/useradd", "man8/userdel", "man8/mount", "man8/cron", "man8/shutdown",
]

# Browser furniture that is not the manual: DocBook's and Sphinx's navigation bars.
_HIDE_CSS = (
    ".navheader,.navfooter,.sphinxsidebar,div.related,div.footer,div.header,"
    "#searchbox,div.nav-footer,.nav-header{display:none!important}"
    "section,div.chapter,div.sect1,div.appendix{break-before:auto}"
)


@dataclass(frozen=True)
class HtmlDoc:
    name: str
    title: str
    package: str
    root: str  # folder inside the extracted package
    files: tuple[str, ...]  # globs, in reading order


HTML_DOCS = [
    HtmlDoc("debian-policy", "Debian ポリシーマニュアル", "debian-policy-ja",
            "usr/share/doc/debian-policy/ja/policy.html",
            ("index.html", "ch-scope.html", "ch-archive.html", "ch-binary.html", "ch-source.html",
             "ch-controlfields.html", "ch-maintainerscripts.html", "ch-relationships.html",
             "ch-sharedlibs.html", "ch-opersys.html", "ch-files.html",
             "ch-customized-programs.html", "ch-docs.html", "ap-*.html")),
    HtmlDoc("aptitude", "aptitude ユーザマニュアル", "aptitude-doc-ja",
            "usr/share/doc/aptitude/html/ja", ("index.html", "pr01.html", "ch*.html", "re*.html")),
    HtmlDoc("lilypond-usage", "LilyPond 使用方法", "lilypond-doc-html-ja",
            "usr/share/doc/lilypond/html/Documentation", ("usage-big-page.ja.html",)),
    HtmlDoc("kicad", "KiCad", "kicad-doc-ja", "usr/share/doc/kicad/help/ja",
            ("kicad.html", "pl_editor.html", "gerbview.html")),
    HtmlDoc("gimp", "GNU Image Manipulation Program ユーザーマニュアル", "gimp-help-ja",
            "usr/share/gimp/2.0/help/ja",
            ("gimp-concepts-*.html", "gimp-using-*.html", "gimp-tool-*.html")),
]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)  # type: ignore[call-overload]


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: run scripts/system-deps.sh chromium poppler mandoc")


def extract_packages(work: Path) -> dict[str, Path]:
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            print(f"apt-get download {pkg}", flush=True)
            run(["apt-get", "download", pkg], cwd=debs)
            found = sorted(debs.glob(f"{pkg}_*.deb"))
        root = work / "x" / pkg
        if not root.exists():
            tmp = root.with_suffix(".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            run(["dpkg-deb", "-x", str(found[-1]), str(tmp)])
            tmp.rename(root)
        out[pkg] = root
    return out


def _body(text: str) -> str:
    m = re.search(r"<body[^>]*>(.*)</body>", text, re.S | re.I)
    body = m.group(1) if m else text
    return re.sub(r"<script\b.*?</script>", "", body, flags=re.S | re.I)


def _head_links(text: str) -> str:
    return "\n".join(re.findall(r"<link[^>]+stylesheet[^>]*>|<style\b.*?</style>", text, re.S | re.I))


def print_pdf(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
             "--run-all-compositor-stages-before-draw", "--virtual-time-budget=20000",
             f"--print-to-pdf={dest}", src.as_uri()], timeout=600)


def build_html_doc(doc: HtmlDoc, root: Path, dest: Path) -> None:
    folder = root / doc.root
    files: list[Path] = []
    for pattern in doc.files:
        for f in sorted(folder.glob(pattern)):
            if f not in files:
                files.append(f)
    first = files[0].read_text(encoding="utf-8", errors="replace")
    parts = [
        "<!DOCTYPE html><html lang='ja'><head><meta charset='utf-8'>",
        f"<base href='{folder.as_uri()}/'><title>{html.escape(doc.title)}</title>",
        _head_links(first), f"<style>{_HIDE_CSS}</style></head><body>",
    ]
    for i, f in enumerate(files):
        style = "" if i == 0 else " style='break-before:page'"
        parts.append(f"<div class='bunko-part'{style}>{_body(f.read_text(encoding='utf-8', errors='replace'))}</div>")
    parts.append("</body></html>")
    page = folder / f".bunko-{doc.name}.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    print_pdf(page, dest)


def build_man_doc(root: Path, dest: Path) -> None:
    man = root / "usr/share/man/ja"
    parts = ["<!DOCTYPE html><html lang='ja'><head><meta charset='utf-8'><title>manpages-ja</title>",
             "<style>body{font-family:serif} .man{break-before:page}</style></head><body>"]
    for name in MAN_PAGES:
        src = man / f"{name}.{name.split('/')[0][3:]}.gz"
        if not src.exists():
            continue
        source = gzip.decompress(src.read_bytes())
        page = run(["mandoc", "-Thtml", "-Ios=Debian", "-Ofragment"], input=source).stdout.decode()
        parts.append(f"<div class='man'>{page}</div>")
    parts.append("</body></html>")
    page_file = root / ".bunko-man.html"
    page_file.write_text("\n".join(parts), encoding="utf-8")
    print_pdf(page_file, dest)


def page_count(pdf: Path) -> int:
    info = run(["pdfinfo", str(pdf)]).stdout.decode()
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]


def page_texts(pdf: Path) -> list[str]:
    """Each physical page's text as ``pdftotext -f N -l N`` gives it (one call, split on \\f)."""
    text = run(["pdftotext", "-layout", str(pdf), "-"]).stdout.decode("utf-8", errors="replace")
    pages = text.split("\f")
    return pages[: page_count(pdf)]


def squash(text: str) -> str:
    """NFKC, no whitespace: how anchors and key terms are compared with page text."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


def resolve(questions: list[dict], texts: dict[str, list[str]]) -> tuple[list[dict], list[str]]:
    """Gold pages from anchors; returns the questions with ``pages`` set and the problems found."""
    squashed = {d: [squash(t) for t in pages] for d, pages in texts.items()}
    problems: list[str] = []
    out = []
    for q in questions:
        q = dict(q)
        golds = []
        for g in q.get("gold", []):
            doc, anchor = g["doc"], squash(g["anchor"])
            where = [i + 1 for i, t in enumerate(squashed[doc]) if anchor in t]
            if not where:
                problems.append(f"{q['id']}: anchor {g['anchor']!r} is on no page of {doc}")
                continue
            written = g.get("page")
            page = written if written in where else where[0]
            if written is not None and written not in where:
                problems.append(f"{q['id']}: {doc} page {written} moved to {where}")
            golds.append({"doc": doc, "page": page})
        q["gold"] = golds
        if q["kind"] != "unanswerable" and not golds:
            continue
        out.append(q)
    return out, problems


def build_scans(pdfs: dict[str, Path], gold: list[dict], out: Path) -> None:
    """Image-only copies of the cited pages (see the module docstring)."""
    from PIL import Image

    rng = random.Random(13)
    cited: dict[str, list[int]] = {}
    for q in gold:
        for g in q["gold"]:
            cited.setdefault(g["doc"], [])
            if g["page"] not in cited[g["doc"]]:
                cited[g["doc"]].append(g["page"])
    out.mkdir(parents=True, exist_ok=True)
    wanted = {doc: {str(p): i + 1 for i, p in enumerate(sorted(pages))} for doc, pages in cited.items()}
    index = out / "pages.json"
    if (index.exists() and json.loads(index.read_text()) == wanted
            and all((out / f"{doc}.pdf").exists() for doc in wanted)):
        # Built already (pages.json is written last). Rebuilding would give other PDF bytes (the
        # writer stamps a date) and so OCR every scan again, for the same pixels.
        return
    mapping: dict[str, dict[int, int]] = {}
    for doc, pages in sorted(cited.items()):
        pages.sort()
        images = []
        with tempfile.TemporaryDirectory() as tmp:
            for n, p in enumerate(pages):
                stem = Path(tmp) / f"p{p}"
                run(["pdftoppm", "-r", "200", "-gray", "-f", str(p), "-l", str(p), "-singlefile",
                     "-png", str(pdfs[doc]), str(stem)])
                img = Image.open(f"{stem}.png").convert("L")
                if n % 3 == 2:
                    img = img.rotate(1.5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
                    img = _add_noise(img, rng)
                jpeg = Path(tmp) / f"p{p}.jpg"
                img.save(jpeg, "JPEG", quality=75)
                images.append(Image.open(jpeg))
            images[0].save(out / f"{doc}.pdf", "PDF", resolution=200.0, save_all=True,
                           append_images=images[1:])
        mapping[doc] = {p: i + 1 for i, p in enumerate(pages)}
    (out / "pages.json").write_text(json.dumps(mapping, indent=1))


def _add_noise(img, rng: random.Random):  # type: ignore[no-untyped-def]
    """Salt-and-pepper specks and a slightly uneven exposure, as a flatbed scan has."""
    px = img.load()
    w, h = img.size
    for _ in range(w * h // 400):
        x, y = rng.randrange(w), rng.randrange(h)
        px[x, y] = 0 if rng.random() < 0.5 else 255
    return img.point(lambda v: min(255, int(v * 0.93 + 12)))


def build(out: Path, *, scans: bool = True) -> dict:
    need("chromium", "pdftotext", "pdfinfo", "pdftoppm", "mandoc", "dpkg-deb", "apt-get")
    out.mkdir(parents=True, exist_ok=True)
    roots = extract_packages(out)
    pdf_dir = out / "pdf"
    pdf_dir.mkdir(exist_ok=True)
    pdfs: dict[str, Path] = {}
    src = roots["maint-guide-ja"] / "usr/share/doc/maint-guide-ja/maint-guide.ja.pdf"
    pdfs["maint-guide"] = pdf_dir / "maint-guide.pdf"
    if not pdfs["maint-guide"].exists():
        shutil.copyfile(src, pdfs["maint-guide"])
    for doc in HTML_DOCS:
        pdfs[doc.name] = pdf_dir / f"{doc.name}.pdf"
        if not pdfs[doc.name].exists():
            print(f"printing {doc.name}", flush=True)
            build_html_doc(doc, roots[doc.package], pdfs[doc.name])
    pdfs["manpages"] = pdf_dir / "manpages.pdf"
    if not pdfs["manpages"].exists():
        print("printing manpages", flush=True)
        build_man_doc(roots["manpages-ja"], pdfs["manpages"])
    texts = {name: page_texts(p) for name, p in pdfs.items()}
    questions = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    gold, problems = resolve(questions, texts)
    for p in problems:
        print("gold:", p, flush=True)
    (out / "gold.json").write_text(json.dumps(gold, ensure_ascii=False, indent=1))
    if scans:
        build_scans(pdfs, gold, out / "scan")
    summary = {"documents": {n: len(t) for n, t in texts.items()}, "questions": len(gold)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-scans", action="store_true")
    args = ap.parse_args()
    summary = build(args.out, scans=not args.no_scans)
    docs = summary["documents"]
    print(f"{len(docs)} documents, {sum(docs.values())} pages: "
          + ", ".join(f"{n} {c}" for n, c in docs.items()))
    print(f"{summary['questions']} questions with resolved gold pages")


if __name__ == "__main__":
    main()

# ruff: noqa: E501  (data tables read better on one line)
"""A Japanese retrieval test set that the project builds itself (not the test fixtures).

Deterministic: about 50 small fictional documents of four kinds that look alike on purpose (the same
templates with different facts), so that retrieval has to find the right entity, not just the right
topic, and questions of three styles:

* ``direct`` — uses the document's words (``青葉町の特産品は何ですか``);
* ``paraphrase`` — asks the same with other words (``青葉町で名産として知られる作物は``);
* ``keyword`` — hinges on an exact string: a command option, a package version, a model number.

Each question names the one page that answers it (``doc_id``, ``page_no``); documents are lists of
Markdown pages (:class:`bunko.ingest.types.PageText`), some with tables.

Beside them come distractor documents, as a real collection has: a town bulletin, a tool FAQ, a
product catalogue and a company newsletter that name the same entities, versions, model numbers and
procedures but never hold the answer. Without them every variant scored recall@5 ≈ 1.0 and the set
could not tell them apart; with them a leg that only matches the name (BM25) or only the topic
(dense) ranks the wrong page first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bunko.ingest.types import PageText


@dataclass
class QDoc:
    doc_id: str
    title: str
    pages: list[PageText]


@dataclass
class Question:
    text: str
    doc_id: str
    page_no: int
    style: str  # "direct" | "paraphrase" | "keyword"


_TOWN_HEADS = ["青葉", "白川", "若草", "桜井", "朝日", "緑ヶ丘", "星見", "霧島台", "美浜", "北野",
               "東雲", "花園", "松風", "月岡", "水城", "高砂"]
_TOWN_KIND = ["町", "市", "村"]
_PRODUCTS = [("イチゴ", "果物"), ("わさび", "香辛料"), ("レンコン", "野菜"), ("茶葉", "茶"), ("牡蠣", "海産物"),
             ("梨", "果物"), ("そば粉", "穀物"), ("和紙", "工芸品"), ("日本酒", "酒"), ("椎茸", "きのこ"),
             ("メロン", "果物"), ("タマネギ", "野菜"), ("陶器", "工芸品"), ("ホタテ", "海産物"),
             ("米", "穀物"), ("藍染め", "工芸品")]
_FESTIVALS = ["灯籠流し", "花火大会", "雪像まつり", "流鏑馬", "提灯行列", "獅子舞", "盆踊り大会", "凧揚げ大会",
              "紅葉まつり", "菜の花まつり", "竹灯り", "太鼓祭り", "舟競争", "菊人形展", "朝市祭", "星祭り"]
_SISTERS = ["ポートランド", "グラーツ", "アデレード", "リヨン", "ベルゲン", "クライストチャーチ", "ケベック",
            "ザルツブルク", "トゥールーズ", "ダニーデン", "ボルドー", "ハイデルベルク", "ヨーテボリ",
            "ウィニペグ", "マルセイユ", "タコマ"]
_SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田",
             "佐々木", "山口", "松本", "井上"]
_GIVEN = ["一郎", "花子", "健太", "美咲", "大輔", "陽子", "翔", "由美", "誠", "直子", "拓也", "恵", "修", "彩",
          "浩二", "千尋"]
_MONTHS = ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"]
_WEEKDAYS = ["月曜日", "火曜日", "水曜日", "木曜日", "金曜日"]

_TOOLS = ["kurasync", "hozon", "mikan", "tsumugi", "sorahako", "yadori", "kagami", "noren", "fumidai",
          "tatami", "hikari", "kumade", "sakura-ctl", "shiori", "yamabiko"]
_OPTION_POOL = [
    ("-p", "--prune", "転送先にだけ存在する古いファイルを削除する", "同期先に残った不要なファイルを消す"),
    ("-n", "--dry-run", "実際には何も変更せず、行われる操作の一覧だけを表示する", "変更を加えずに試しに動かす"),
    ("-z", "--compress", "転送中のデータを圧縮して通信量を減らす", "ネットワークの使用量を抑える"),
    ("-l", "--follow-links", "シンボリックリンクをたどって実体をコピーする", "リンク先の本体を複製する"),
    ("-c", "--checksum", "更新日時ではなくチェックサムで差分を判定する", "ファイルの中身のハッシュで変更を見分ける"),
    ("-q", "--quiet", "エラー以外のメッセージを表示しない", "出力を静かにする"),
    ("-r", "--retry", "失敗した転送を指定回数まで再試行する", "うまくいかなかったコピーをやり直させる"),
    ("-x", "--exclude", "指定したパターンに一致するファイルを対象外にする", "一部のファイルを同期から外す"),
    ("-b", "--backup", "上書きする前に元のファイルを .bak として残す", "上書きされるファイルの控えを取る"),
    ("-t", "--timeout", "応答のない接続を指定秒数で打ち切る", "反応しない相手との通信を諦めさせる"),
    ("-s", "--sparse", "空き領域の多いファイルを疎ファイルとして効率よく書き込む", "中身がほとんど空のファイルを効率よく保存する"),
    ("-u", "--update", "転送先のほうが新しいファイルはスキップする", "相手側の新しいファイルを上書きしない"),
]
_FIXES = ["ログファイルの権限が誤って全ユーザーに読み取り可能になる問題",
          "長いファイル名でバッファあふれが起きる脆弱性",
          "タイムゾーンの変換で予約実行が一時間ずれる不具合",
          "設定ファイルのコメント行を誤って解釈する不具合",
          "証明書の検証を省略してしまう脆弱性",
          "大きなディレクトリでメモリ使用量が急増する問題",
          "再起動後にロックファイルが残り起動できない不具合",
          "IPv6 アドレスの解析に失敗する不具合",
          "圧縮時にまれにデータが欠ける問題",
          "並列実行で一時ファイル名が衝突する不具合",
          "環境変数の値がログに平文で出力される問題",
          "プロキシ設定を無視して直接接続する不具合",
          "シグナル受信時に子プロセスが残る問題",
          "空のディレクトリを同期できない不具合",
          "日本語のパスで文字化けする不具合"]
_EXIT_MEANINGS = ["設定ファイルの書式エラー", "転送先に接続できない", "ディスク容量不足", "権限不足",
                  "タイムアウト", "ロック取得失敗", "チェックサム不一致", "中断された"]

_POLICIES = [
    ("経費精算規程", "経費精算", "領収書を添えて", "翌月5日まで", "出張旅費"),
    ("休暇取得規程", "有給休暇の申請", "所属長の承認を得て", "取得日の3営業日前まで", "特別休暇"),
    ("在宅勤務規程", "在宅勤務の申請", "業務計画を記載して", "前週の金曜日まで", "通信費の補助"),
    ("研修受講規程", "外部研修の受講申請", "研修の目的を明記して", "受講開始の2週間前まで", "受講料の補助"),
    ("備品購入規程", "備品の購入申請", "見積書を添付して", "購入希望日の10日前まで", "購入限度額"),
    ("出張規程", "出張の事前申請", "旅程表を添えて", "出発日の1週間前まで", "日当"),
    ("副業規程", "副業の届出", "業務内容を記載して", "開始日の1か月前まで", "競業の禁止"),
    ("育児支援規程", "育児休業の申出", "予定期間を明記して", "休業開始の1か月前まで", "短時間勤務"),
    ("資格取得支援規程", "資格取得奨励金の申請", "合格証の写しを添えて", "合格発表から3か月以内", "奨励金の額"),
    ("慶弔規程", "慶弔見舞金の申請", "事実を証明する書類を添えて", "事由発生から1か月以内", "見舞金の額"),
]
_AMOUNTS = ["3,000円", "5,000円", "8,000円", "1万円", "1万5千円", "2万円", "3万円", "5万円", "10万円", "12万円"]
_DEPTS = ["総務部", "人事部", "経理部", "情報システム部", "法務部", "営業企画部", "品質保証部", "広報部",
          "購買部", "研究開発部"]

_PRODUCT_LINES = [("KX", "ワイヤレスイヤホン"), ("RT", "ロボット掃除機"), ("MV", "電気ケトル"), ("SL", "デスクライト"),
                  ("BP", "体重計"), ("HD", "ポータブル電源"), ("CA", "ドライブレコーダー"), ("FN", "サーキュレーター"),
                  ("AR", "加湿器"), ("QP", "電動歯ブラシ")]


def _town(rng: random.Random, i: int) -> tuple[QDoc, list[Question]]:
    name = _TOWN_HEADS[i] + _TOWN_KIND[i % 3]
    product, category = _PRODUCTS[i]
    festival = _FESTIVALS[i]
    month = _MONTHS[(i * 5) % 12]
    sister = _SISTERS[i]
    mayor = _SURNAMES[i] + _GIVEN[(i * 7) % 16]
    pop = f"{rng.randint(8, 95)},{rng.randint(100, 999)}"
    library = f"{name}立図書館"
    closed = _WEEKDAYS[i % 5]
    museum = f"{_TOWN_HEADS[i]}郷土資料館"
    museum_open = f"{9 + i % 2}時から{16 + i % 3}時まで"
    doc_id = f"town{i:02d}"
    kind_word = {"町": "町長", "市": "市長", "村": "村長"}[_TOWN_KIND[i % 3]]
    p1 = (
        f"# {name}の紹介\n\n"
        f"{name}は人口{pop}人の自治体で、豊かな自然に囲まれています。"
        f"{name}の特産品は{product}で、県内有数の産地として知られています。"
        f"毎年{month}には{festival}が開かれ、多くの観光客が訪れます。\n\n"
        f"## 国際交流\n\n{name}は{sister}と姉妹都市提携を結んでおり、毎年中学生の相互訪問を行っています。\n\n"
        f"## 行政\n\n現在の{kind_word}は{mayor}です。"
    )
    p2 = (
        "## 主な公共施設\n\n"
        "| 施設名 | 開館時間 | 休館日 |\n|---|---|---|\n"
        f"| {library} | 9時から19時まで | {closed} |\n"
        f"| {museum} | {museum_open} | {_WEEKDAYS[(i + 2) % 5]} |\n"
        f"| {_TOWN_HEADS[i]}総合体育館 | 8時30分から21時まで | 第3{_WEEKDAYS[(i + 1) % 5]} |\n"
    )
    doc = QDoc(doc_id, f"{name}の紹介", [PageText(1, p1, "layer", 1.0), PageText(2, p2, "layer", 1.0)])
    qs = [
        Question(f"{name}の特産品は何ですか？", doc_id, 1, "direct"),
        Question(f"{name}で名産として知られている{category}は？", doc_id, 1, "paraphrase"),
        Question(f"{name}と交流している海外の都市はどこですか？", doc_id, 1, "paraphrase"),
        Question(f"{library}が休みなのは何曜日ですか？", doc_id, 2, "direct"),
    ]
    return doc, qs


def _tool(rng: random.Random, i: int) -> tuple[QDoc, list[Question]]:
    tool = _TOOLS[i]
    opts = rng.sample(_OPTION_POOL, 4)
    version = f"{1 + i % 3}.{i % 7}.{rng.randint(0, 9)}"
    deb = f"+deb12u{rng.randint(1, 9)}"
    fix = _FIXES[i]
    exit_code = 2 + i % 6
    meaning = _EXIT_MEANINGS[i % len(_EXIT_MEANINGS)]
    doc_id = f"tool{i:02d}"
    opt_lines = "\n".join(f"- `{s}`, `{lng}`: {desc}。" for s, lng, desc, _ in opts)
    p1 = (
        f"# {tool} 利用の手引き\n\n"
        f"{tool} はファイルを別の場所へ同期するためのコマンドです。基本の書式は `{tool} [オプション] 転送元 転送先` です。\n\n"
        f"## オプション\n\n{opt_lines}\n"
    )
    p2 = (
        "## 更新履歴\n\n"
        f"パッケージ {tool} {version}-1{deb} では、{fix}を修正しました。"
        f"この更新は Debian 12 向けのセキュリティ更新として配布されています。\n\n"
        "## 終了コード\n\n"
        "| コード | 意味 |\n|---|---|\n| 0 | 正常終了 |\n| 1 | 引数の誤り |\n"
        f"| {exit_code} | {meaning} |\n"
    )
    doc = QDoc(doc_id, f"{tool} 利用の手引き", [PageText(1, p1, "layer", 1.0), PageText(2, p2, "layer", 1.0)])
    _s0, l0, _d0, para0 = opts[0]
    s1 = opts[1][0]
    qs = [
        Question(f"{tool} の {l0} オプションは何をしますか？", doc_id, 1, "keyword"),
        Question(f"{tool} {s1} の意味", doc_id, 1, "keyword"),
        Question(f"{version}-1{deb} で何が修正されましたか？", doc_id, 2, "keyword"),
        Question(f"{tool} で{para0}にはどうすればよいですか？", doc_id, 1, "paraphrase"),
    ]
    return doc, qs


def _policy(rng: random.Random, i: int) -> tuple[QDoc, list[Question]]:
    title, act, how, deadline, topic = _POLICIES[i]
    amount = _AMOUNTS[i]
    dept = _DEPTS[i]
    ext = f"{rng.randint(2, 8)}{rng.randint(100, 999)}"
    doc_id = f"policy{i:02d}"
    p1 = (
        f"# {title}\n\n"
        f"第1条 目的\nこの規程は、{act}の手続きを定めることを目的とする。\n\n"
        f"第2条 手続き\n{act}は、{how}、{deadline}に行わなければならない。"
        f"期限を過ぎた申請は、原則として受け付けない。\n\n"
        f"第3条 {topic}\n{topic}の上限は一件につき{amount}とする。"
    )
    p2 = (
        "## 問い合わせ先\n\n"
        f"この規程の担当部署は{dept}である。\n\n"
        f"| 部署 | 内線番号 |\n|---|---|\n| {dept} | {ext} |\n"
    )
    doc = QDoc(doc_id, title, [PageText(1, p1, "layer", 1.0), PageText(2, p2, "layer", 1.0)])
    qs = [
        Question(f"{act}はいつまでに行う必要がありますか？", doc_id, 1, "direct"),
        Question(f"{topic}は最大でいくらまで認められますか？", doc_id, 1, "paraphrase"),
        Question(f"{title}について問い合わせる内線番号は？", doc_id, 2, "direct"),
    ]
    return doc, qs


def _product(rng: random.Random, i: int) -> tuple[QDoc, list[Question]]:
    prefix, kind = _PRODUCT_LINES[i]
    model = f"{prefix}-{rng.randint(1000, 9899)}"
    weight = f"{rng.randint(120, 2400)}g"
    warranty = f"{1 + i % 3}年"
    battery = f"{rng.randint(4, 40)}時間"
    doc_id = f"product{i:02d}"
    p1 = (
        f"# {kind} {model} 取扱説明書\n\n"
        f"このたびは{kind} {model} をお買い上げいただき、ありがとうございます。"
        f"ご使用の前にこの説明書をよくお読みください。\n\n"
        "## 仕様\n\n"
        f"| 項目 | 値 |\n|---|---|\n| 型番 | {model} |\n| 質量 | {weight} |\n"
        f"| 連続使用時間 | {battery} |\n| 保証期間 | {warranty} |\n"
    )
    doc = QDoc(doc_id, f"{kind} {model} 取扱説明書", [PageText(1, p1, "layer", 1.0)])
    qs = [
        Question(f"{model} の質量は？", doc_id, 1, "keyword"),
        Question(f"{kind}の保証は何年ですか？", doc_id, 1, "paraphrase"),
    ]
    return doc, qs


def _town_bulletin(rng: random.Random, i: int) -> QDoc:
    """The town's name, its product's category, its library and its festival month, no answers."""
    name = _TOWN_HEADS[i] + _TOWN_KIND[i % 3]
    _product, category = _PRODUCTS[i]
    other = _SISTERS[(i + 5) % len(_SISTERS)]
    page = (
        f"# {name} 広報 第{rng.randint(100, 480)}号\n\n"
        f"{name}では{category}の生産者の高齢化が進み、後継者の育成が課題となっています。"
        f"名産品を扱う直売所の営業時間が来月から変わります。\n\n"
        f"{name}立図書館は空調設備の改修のため、来月の一週間、閲覧室の一部を閉鎖します。"
        f"休館日の変更はありません。詳しくは窓口でお尋ねください。\n\n"
        f"## 海外からの視察\n\n{other}の市議会議員団が{name}を訪れ、交流の可能性について意見を交わしました。"
    )
    return QDoc(f"news-town{i:02d}", f"{name} 広報", [PageText(1, page, "layer", 1.0)])


def _tool_faq(rng: random.Random, i: int, version_string: str, opts: list[tuple[str, str, str, str]]) -> QDoc:
    """The tool's options and its package version named, with what they do left out."""
    tool = _TOOLS[i]
    names = "、".join(f"`{s}`（`{lng}`）" for s, lng, _d, _p in opts[:2])
    page = (
        f"# {tool} よくある質問\n\n"
        f"Q. {tool} のオプション {names} はどのマニュアルに載っていますか？\n"
        f"A. 利用の手引きの「オプション」の章をご覧ください。`{tool} --help` でも一覧を表示できます。\n\n"
        f"Q. パッケージ {tool} {version_string} はどこから入手できますか？\n"
        f"A. Debian 12 の公式ミラーから配布されています。更新の内容は更新履歴を参照してください。\n\n"
        f"Q. {tool} で同期が遅いのですが？\n"
        f"A. 回線の状態を確認し、必要なら同時に転送するファイルの数を減らしてください。"
    )
    return QDoc(f"faq-{tool}", f"{tool} よくある質問", [PageText(1, page, "layer", 1.0)])


def _catalogue(models: list[tuple[str, str, str]]) -> QDoc:
    """Every model number with its price: a page that matches ``KX-1234 の質量は`` on the model alone."""
    rows = "\n".join(f"| {model} | {kind} | {price} | 在庫あり |" for model, kind, price in models)
    page = (
        "# 家電製品カタログ 2026年春号\n\n"
        "掲載製品の価格は税込みです。仕様の詳細は各製品の取扱説明書をご覧ください。\n\n"
        f"| 型番 | 製品 | 価格 | 在庫 |\n|---|---|---|---|\n{rows}\n"
    )
    return QDoc("catalogue", "家電製品カタログ 2026年春号", [PageText(1, page, "layer", 1.0)])


def _newsletter(i: int) -> QDoc:
    """The policy's procedure and topic named, without its deadline, limit or extension number."""
    title, act, _how, _deadline, topic = _POLICIES[i]
    page = (
        f"# 社内報 {i + 1}月号\n\n"
        f"## {title}の改定について\n\n"
        f"{act}の手続きが電子化されます。これまで紙で提出していた書類は、来月からワークフローで受け付けます。"
        f"{topic}の考え方に変更はありません。担当部署への問い合わせは社内ポータルから行えます。"
    )
    return QDoc(f"news-policy{i:02d}", f"社内報 {i + 1}月号", [PageText(1, page, "layer", 1.0)])


def build(*, quick: bool = False, seed: int = 7, distractors: bool = True) -> tuple[list[QDoc], list[Question]]:
    """The documents and questions; ``quick`` keeps about a third of each kind."""
    rng = random.Random(seed)
    n_town, n_tool, n_policy, n_product = (6, 6, 4, 4) if quick else (16, 15, 10, 10)
    docs: list[QDoc] = []
    questions: list[Question] = []
    for maker, n in ((_town, n_town), (_tool, n_tool), (_policy, n_policy), (_product, n_product)):
        for i in range(n):
            d, qs = maker(rng, i)
            docs.append(d)
            questions.extend(qs)
    if distractors:
        docs.extend(_distractors(docs, questions, n_town, n_policy, random.Random(seed + 1)))
    return docs, questions


def _distractors(
    docs: list[QDoc], questions: list[Question], n_town: int, n_policy: int, rng: random.Random
) -> list[QDoc]:
    out = [_town_bulletin(rng, i) for i in range(n_town)]
    out += [_newsletter(i) for i in range(n_policy)]
    for d in docs:
        if d.doc_id.startswith("tool"):
            i = int(d.doc_id[4:])
            version = next(q.text.split(" で")[0] for q in questions if q.doc_id == d.doc_id and "修正" in q.text)
            text = d.pages[0].markdown
            # In the order the manual lists them: the questions ask about the first two.
            opts = sorted((o for o in _OPTION_POOL if f"`{o[1]}`" in text), key=lambda o: text.index(f"`{o[1]}`"))
            out.append(_tool_faq(rng, i, version, opts))
    models = [(d.title.split()[1], d.title.split()[0], f"{rng.randint(3, 60) * 1000:,}円")
              for d in docs if d.doc_id.startswith("product")]
    out.append(_catalogue(models))
    return out

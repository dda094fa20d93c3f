"""Extractive answers: the best sentences of the passages, cited, never invented; the label is
the response's mode, not text in the answer."""

from bunko.domain import Hit
from bunko.generate.citations import cited_numbers
from bunko.generate.extractive import extractive_answer, split_sentences


def _hit(i, text, score=0.5, kind="text"):
    return Hit(chunk_id=f"c{i}", document_id=f"d{i}", page_no=i, chunk_index=0, text=text,
               score=score, kind=kind, title=f"文書{i}")


def test_split_sentences_on_japanese_punctuation_and_newlines():
    got = split_sentences("一つ目。二つ目！三つ目？\n四つ目\n\n")
    assert got == ["一つ目。", "二つ目！", "三つ目？", "四つ目"]


def test_picks_the_matching_sentence_and_cites_its_passage():
    hits = [
        _hit(1, "当社は東京に本社を置く。従業員は五百名である。", 0.9),
        _hit(2, "研究開発費は三億円であった。設備投資は十億円であった。", 0.8),
    ]
    answer = extractive_answer("研究開発費はいくらですか", hits, max_sentences=1)
    assert answer == "研究開発費は三億円であった。 [文書2]"
    assert "本社" not in answer


def test_every_line_is_copied_from_a_passage_with_a_valid_citation():
    hits = [_hit(1, "売上高は増加した。営業利益も増加した。"), _hit(2, "売上高の内訳は表の通り。")]
    answer = extractive_answer("売上高は増加しましたか", hits)
    body = answer.splitlines()
    assert body
    for line in body:
        sentence, _, cite = line.rpartition(" ")
        assert any(sentence in h.text for h in hits)
        assert cited_numbers(cite, len(hits))


def test_table_row_comes_with_its_header():
    table = "| 地域 | 売上高 |\n| --- | --- |\n| 関東 | 120 |\n| 九州 | 45 |"
    hits = [_hit(1, "地域別の売上高は次の表の通り。"), _hit(2, table, kind="table")]
    answer = extractive_answer("九州の売上高", hits, max_sentences=1)
    assert "| 地域 | 売上高 |\n| 九州 | 45 | [文書2]" in answer


def test_no_shared_term_falls_back_to_the_best_passage_opening():
    hits = [_hit(1, "猫は可愛い。犬も可愛い。"), _hit(2, "鳥は飛ぶ。")]
    answer = extractive_answer("ZZZ", hits)
    assert answer.splitlines()[0] == "猫は可愛い。 [文書1]"


def test_duplicate_sentences_are_listed_once():
    hits = [_hit(1, "売上高は百億円。"), _hit(2, "売上高は百億円。")]
    answer = extractive_answer("売上高", hits)
    assert answer.count("売上高は百億円。") == 1


def test_rows_of_one_table_come_under_one_header_and_the_header_is_never_an_answer():
    # Two chunks of one large table, each with the header repeated (as the chunker splits tables).
    head = "| 年度 | 項目 | 金額 |\n| --- | --- | --- |\n"
    hits = [_hit(1, head + "| 2025年度 | 売上高 | 1,234億円 |", kind="table"),
            _hit(2, head + "| 2024年度 | 売上高 | 1,102億円 |", kind="table")]
    answer = extractive_answer("2025年度の売上高はいくらですか", hits)
    lines = answer.splitlines()
    assert lines[0] == "| 年度 | 項目 | 金額 |"
    assert lines[1] == "| 2025年度 | 売上高 | 1,234億円 | [文書1]"
    assert answer.count("| 年度 | 項目 | 金額 |") == 1


def test_table_of_contents_lines_are_never_quoted():
    toc = ("目次\n4.4 debian/rules ファイル ................ 31\n4.5 debian/control ファイル ......... 35\n"
           "第5章 その他のファイル 40")
    body = "debian/rules ファイルはパッケージを実際に作成するための Makefile です。"
    answer = extractive_answer("debian/rules ファイルはどんな役割を持っていますか？",
                               [_hit(1, toc, kind="table"), _hit(2, body)])
    assert "......" not in answer and "31" not in answer
    assert answer.splitlines()[0] == f"{body} [文書2]"


def test_a_lead_in_brings_the_line_it_announces():
    # From maint-guide: the sentence that matches the question ends in ":"; the command is below it.
    text = ("バージョン文字列は dpkg コマンドを以下のように使うことで比較できます:\n"
            "$ dpkg --compare-versions ver1 op ver2\n"
            "バージョンの比較ルールは別の節で述べます。")
    answer = extractive_answer("dpkg バージョン 比較 コマンド", [_hit(1, text)], max_sentences=1)
    assert answer == ("バージョン文字列は dpkg コマンドを以下のように使うことで比較できます: "
                      "$ dpkg --compare-versions ver1 op ver2 [文書1]")


def test_a_term_line_brings_its_description():
    # A definition list (an option and what it does), as a manual's option table prints.
    text = ("-z, --compressed\n入力ファイルは ZIP 圧縮された MusicXML ファイルです。\n"
            "-o, --output=ファイル\n出力先です。")
    answer = extractive_answer("musicxml2ly -z オプション", [_hit(1, text)], max_sentences=1)
    assert answer == "-z, --compressed 入力ファイルは ZIP 圧縮された MusicXML ファイルです。 [文書1]"


def test_ascii_question_marks_are_keys_not_sentence_ends():
    text = "? を押せば、利用可能なキーボードショートカットの一覧を表示できます。"
    assert split_sentences(text) == [text]
    answer = extractive_answer("キーボードショートカット 一覧 表示", [_hit(1, text)], max_sentences=1)
    assert answer == f"{text} [文書1]"


def test_wrapped_english_lines_are_one_sentence_and_headings_are_not_answers():
    text = ("## 3.2 Path configuration\n"
            "The environment variable KIPRJMOD is always defined by KiCad, and expands to the\n"
            "absolute path of the current project.")
    answer = extractive_answer("KIPRJMOD は何に展開されますか", [_hit(1, text)], max_sentences=2)
    assert answer == ("The environment variable KIPRJMOD is always defined by KiCad, and expands to the "
                      "absolute path of the current project. [文書1]")
    assert "##" not in answer


def test_a_description_brings_the_term_it_describes():
    # manpages-ja's shutdown(8): the option above, what it does below; the question asks for the latter.
    text = ("-k\nシャットダウンは行わず、警告メッセージだけを送る。\n"
            "-c\n現在実行中のシャットダウンをキャンセルする。")
    answer = extractive_answer("実行中のシャットダウンを取り消すには？", [_hit(1, text)], max_sentences=1)
    assert answer == "-c 現在実行中のシャットダウンをキャンセルする。 [文書1]"


def test_a_short_description_after_its_code_term_is_not_taken_for_a_lead_in():
    # manpages-ja's date(1): "%q" above "年の四半期 (1..4)", which has no sentence end either; it
    # is the description of the term above it, not a term announcing the next option.
    text = "%p\nAM または PM のロケールでの表示\n%q\n年の四半期 (1..4)\n%r\nロケール12時間表示での時刻"
    answer = extractive_answer("date で年の四半期を表示するフォーマットは何ですか？", [_hit(1, text)],
                               max_sentences=1)
    assert answer == "%q 年の四半期 (1..4) [文書1]"


def test_a_sentence_the_layout_wrapped_is_quoted_whole():
    # gimp-help-ja printed by Chromium: every printed line came out as its own paragraph, a word
    # cut at the line end ("問" / "題").
    text = ("ここで述べた教訓は既定では Windows のフォントディレクトリー\n\n"
            "を Fontconfig が利用するので、 Windows 自身と同じフォントが使え\n\n"
            "るということが前提になっています。 何らかの理由で Fontconfig の設\n\n"
            "定が初期設定とは異なる場合は、 GIMP が見つけ易い場所がどこかが問\n\n"
            "題になります。")
    answer = extractive_answer("Fontconfig の設定が初期設定と違うとどうなりますか", [_hit(1, text)],
                               max_sentences=1)
    assert answer == ("何らかの理由で Fontconfig の設定が初期設定とは異なる場合は、 GIMP が見つけ易い場所が"
                      "どこかが問題になります。 [文書1]")


def test_short_lines_and_commands_are_not_joined_to_the_next():
    text = ("パッケージは以下のように作り直します:\n"
            "$ dpkg-buildpackage -us -uc\n"
            "作り直したパッケージは親ディレクトリに置かれます。")
    answer = extractive_answer("作り直したパッケージはどこに置かれますか", [_hit(1, text)], max_sentences=1)
    assert answer == "作り直したパッケージは親ディレクトリに置かれます。 [文書1]"
    # The lead-in still brings its command.
    answer = extractive_answer("パッケージを作り直すには", [_hit(1, text)], max_sentences=1)
    assert answer == "パッケージは以下のように作り直します: $ dpkg-buildpackage -us -uc [文書1]"


def test_two_character_words_of_the_question_count():
    # maint-guide: 長さ is the question's point; a rule meant for bigrams once dropped every
    # two-character word mixing kana and kanji, and a sentence on the version's characters won.
    text = ("アップストリームバージョンは、英数字とプラスと波線とピリオドからのみから選びます。"
            "できることならその長さを 8 文字以内とするのがいいです。"
            "アップストリームのバージョンに日付を使う場合は削除します。")
    answer = extractive_answer("アップストリームバージョンの長さは何文字以内がいいの？", [_hit(1, text)],
                               max_sentences=1)
    assert answer == "できることならその長さを 8 文字以内とするのがいいです。 [文書1]"

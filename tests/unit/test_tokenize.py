import threading

from bunko.text.tokenize import Analyzer, index_tokens, query_tokens


def test_japanese_is_split_into_normalised_words():
    terms = Analyzer(mode="C", bigrams=False).tokens("東京都庁で国家公務員試験を受けた。")
    assert "東京都庁" in terms and "国家公務員" in terms and "試験" in terms
    assert "受ける" in terms  # normalized_form: the lemma, so 受けた and 受けます match
    assert "。" not in terms and " " not in terms


def test_mode_a_splits_compounds_finer_than_mode_c():
    a = Analyzer(mode="A", bigrams=False).tokens("国家公務員")
    c = Analyzer(mode="C", bigrams=False).tokens("国家公務員")
    assert c == ["国家公務員"]
    assert len(a) > 1 and "".join(a) == "国家公務員"


def test_ascii_codes_and_options_stay_whole_and_lowercase():
    terms = Analyzer(bigrams=False).tokens("ls -lc と +deb12u1、foo_bar v1.2.3 ＡＢＣ")
    assert "deb12u1" in terms  # Sudachi alone would give deb / 12 / u / 1
    assert "lc" in terms and "ls" in terms
    assert "foo_bar" in terms and "v1.2.3" in terms
    assert "abc" in terms  # full width folded, lowercased


def test_bigrams_cover_japanese_runs_only():
    terms = Analyzer(bigrams=True).tokens("東京都、大阪 abc")
    assert "東京" in terms and "京都" in terms and "大阪" in terms
    assert "都大" not in terms  # no bigram across punctuation
    assert "ab" not in terms and "bc" not in terms and "abc" in terms


def test_punctuation_and_whitespace_only_gives_no_terms():
    assert index_tokens("。、！？ 　\n") == ""


def test_query_terms_are_index_terms_without_particles_and_auxiliaries():
    text = "ワイヤレスイヤホン KX-4410 の質量はいくらですか？"
    query, index = query_tokens(text).split(), index_tokens(text).split()
    assert set(query) <= set(index)  # the same analysis, so every query term can match
    assert {"の", "は", "です", "か"} <= set(index) - set(query)
    assert {"kx-4410", "質量"} <= set(query)


def test_very_long_text_is_tokenised_in_pieces():
    text = "これは長い文書です。" * 20000  # ~600 KB of UTF-8, beyond Sudachi's input limit
    terms = Analyzer(bigrams=False).tokens(text)
    assert terms.count("文書") == 20000


def test_threads_get_their_own_tokenizer():
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(50):
                results.append(Analyzer(bigrams=False).tokens("東京都庁で国家公務員試験を受けた。"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 200 and all(r == results[0] for r in results)

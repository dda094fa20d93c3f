"""The retrieval recipe's query side (bunko.retrieve.recipe): which terms go to BM25."""

from bunko.retrieve.recipe import INDEX_RECIPES, content_terms


def test_the_bm25_query_leaves_out_the_question_form_from_version_2():
    question = "FTBFS って何の意味ですか？どうすればいいの？"
    v2 = INDEX_RECIPES["2"]
    terms = v2.query_analyzer.tokens(question)
    assert {"何", "意味", "どう"} <= set(terms)
    assert v2.search_terms(terms) == [t for t in terms if t not in {"何", "意味", "どう", "為る", "良い"}]
    assert "ftbfs" in v2.search_terms(terms)
    # Version 1 collections keep searching as they were built to.
    v1 = INDEX_RECIPES["1"]
    assert v1.search_terms(v1.query_analyzer.tokens(question)) == v1.query_analyzer.tokens(question)


def test_a_question_of_question_words_only_has_no_bm25_terms_and_no_topic():
    v2 = INDEX_RECIPES["2"]
    terms = v2.query_analyzer.tokens("何ですか？")
    assert v2.search_terms(terms) == []
    assert content_terms(terms) == []

"""The prompt asks for citations, forbids invention and carries the context and question."""

from bunko.generate.prompts import NOT_FOUND_ANSWER, STOP_SEQUENCES, SYSTEM_PROMPT, build_messages


def test_system_prompt_demands_citations_and_forbids_invention():
    assert "[文書1]" in SYSTEM_PROMPT
    assert "創作" in SYSTEM_PROMPT and "推測" in SYSTEM_PROMPT
    assert NOT_FOUND_ANSWER in SYSTEM_PROMPT
    assert "[END]" in SYSTEM_PROMPT and "[END]" in STOP_SEQUENCES


def test_messages_carry_context_and_question():
    context = "[文書1: 決算報告書, 第12頁]\n売上高は120億円。"
    messages = build_messages("  売上高は？ ", context)
    assert [m.role for m in messages] == ["system", "user"]
    user = messages[1].content
    assert context in user
    assert "質問: 売上高は？" in user
    # The context comes before the question, so the question is the last thing the model reads.
    assert user.index(context) < user.index("質問:")


def test_stop_sequences_are_the_documented_ones():
    assert STOP_SEQUENCES == ["[END]", "参考文献:", "Sources:"]

"""Extractive summaries: verbatim sentences, original order, limits honoured exactly."""

from __future__ import annotations

import pytest

from dragoman.server.errors import InvalidInput
from dragoman.server.summarise.extractive import ExtractiveSummary, summarise_extractive
from dragoman.server.text.segment import split_sentences
from dragoman.server.text.words import count_words, tokens

ARTICLE_EN = """Riverside Opens Its First Tram Line After a Decade of Planning

The city of Riverside opened its first modern tram line on Saturday, ending a decade of planning, legal disputes and budget arguments. The twelve-kilometre line connects the central railway station with the university campus and the new hospital in the northern districts. City officials expect about forty thousand passengers a day once the timetable reaches its full frequency in the spring.

Mayor Helena Ortiz cut the ribbon at the station square in front of several thousand residents, many of whom had waited since early morning. "This tram is the biggest investment in public transport that Riverside has made in fifty years," she said. She thanked the construction workers, who finished the last section of track two months ahead of schedule despite an unusually wet autumn.

The project cost 410 million euros, about fifteen percent more than the original estimate. Most of the additional money went into moving water pipes and electricity cables that were found under the old market street, where records from the nineteenth century turned out to be incomplete. The national government paid sixty percent of the total cost, the regional transport authority twenty percent and the city the remaining twenty percent.

Critics of the tram line have argued for years that electric buses would have delivered similar benefits at a fraction of the price. The opposition councillor Marek Lindqvist repeated that argument on Saturday, saying that the money could have bought three hundred buses and paid their drivers for a decade. Supporters answer that a tram carries more passengers per vehicle, lasts longer and attracts people who would never take a bus.

Transport researchers at the local university have studied similar projects in other European cities of comparable size. Their report, published last year, found that new tram lines typically increase public transport use along the corridor by twenty to thirty percent within three years. The researchers also found that property values near tram stops rose faster than elsewhere, which raised concerns about rents in the neighbourhoods along the route.

Those concerns were visible on Saturday as well. A small group of tenants gathered near the university stop with banners asking the city to protect affordable housing. Several of them said that their landlords had already announced rent increases, citing the improved connection to the city centre. The city council promised last month to study a rent cap for the districts along the line, but it has not yet voted on any proposal.

The trams themselves were built by a manufacturer in the south of the country and are designed to carry up to two hundred and thirty passengers each. They have low floors for wheelchairs and prams, air conditioning and space for bicycles outside rush hours. Each vehicle can recover energy while braking and feed it back into the overhead line, which the transport authority says will cut electricity use by about a quarter.

During the first week, rides on the tram are free for everyone. After that, the line will be part of the regional fare system, so existing monthly passes will be valid without any surcharge. Single tickets will cost the same as bus tickets, and students of the university will be able to use the tram with their semester ticket at no extra cost.

Businesses along the route have mixed feelings. Shop owners on the old market street suffered from two years of construction work, with fewer customers and noisy machines in front of their windows. Some of them closed for good during that period. Others say that footfall has already improved since the street reopened as a pedestrian zone with the tram running through its centre, and they hope that the summer season will make up for the lost years.

The transport authority has already begun planning a second line, which would run from the western industrial zone to the lake shore in the east. Engineers are studying two possible routes, one through the historic old town and one along the ring road. A decision is expected next year, and construction could start in four years if the national government agrees to pay a similar share of the cost.

Safety was a major topic in the weeks before the opening. The police ran an information campaign in schools, explaining that trams cannot swerve and need much longer to stop than cars. Drivers trained for more than six months on a test track outside the city, and each of them completed at least two thousand kilometres of test runs on the real line without passengers before the opening day.

Environmental groups welcomed the line but asked the city to go further. They pointed out that car traffic in Riverside has grown every year for the last two decades and that air quality near the ring road still fails European limits on many winter days. A spokesperson for one group said the tram would only reduce emissions if the city also made parking more expensive and closed some streets in the centre to private cars.

The regional transport authority plans to publish passenger numbers every month during the first year. It has also promised an independent review after eighteen months, which will compare the actual use of the line with the forecasts that justified the investment. If the numbers fall short, the authority says it will adjust the timetable, change the bus network that feeds the tram stops and reconsider the plans for the second line before asking the national government for more money.

For many residents, however, Saturday was simply a day to celebrate. Families rode the tram from one end of the line to the other, children pressed their faces against the windows and pensioners compared the new vehicles with the old trams that had disappeared from the city streets in the nineteen sixties. "My grandfather drove a tram here before the war," said one woman at the hospital stop. "I never thought I would see one on these streets again."
"""

ARTICLE_ZH = (
    "河滨市周六开通了第一条现代有轨电车线路。这条线路全长十二公里，连接火车站、大学和北部的新医院。"
    "市政府预计，春季全面运营后，每天将有约四万名乘客。\n\n"
    "项目总投资四亿一千万欧元，比最初的预算高出百分之十五。额外的资金主要用于迁移旧市场街下面的水管和电缆。"
    "批评者认为，电动公交车能以更低的成本带来类似的好处。支持者则表示，有轨电车载客量更大，使用寿命更长。\n\n"
    "第一周所有乘客都可以免费乘坐有轨电车。之后，现有的月票可以直接使用，不需要额外付费。"
    "交通管理部门已经开始规划第二条线路，预计明年做出决定。"
)


def article_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text, "en")]


def assert_verbatim_in_order(summary: ExtractiveSummary, text: str, separator: str) -> None:
    position = 0
    for sentence in summary.sentences:
        found = text.find(sentence, position)
        assert found >= 0, f"not verbatim or out of order: {sentence!r}"
        position = found + len(sentence)
    # Sentences are joined with the separator, or a line break around a headline line.
    assert summary.text.replace("\n", separator) == separator.join(summary.sentences)
    headline = ARTICLE_EN.split("\n", 1)[0]
    assert summary.text.count("\n") <= (headline in summary.sentences)


def test_english_article_is_1000_words() -> None:
    assert count_words(ARTICLE_EN) == 1000


def test_summary_is_verbatim_in_original_order() -> None:
    summary = summarise_extractive(ARTICLE_EN, "en", max_sentences=5)
    assert len(summary.sentences) == 5
    assert summary.total_sentences == len(article_sentences(ARTICLE_EN))
    assert set(summary.sentences) <= set(article_sentences(ARTICLE_EN))
    assert_verbatim_in_order(summary, ARTICLE_EN, " ")


def test_summary_picks_the_news_lead() -> None:
    summary = summarise_extractive(ARTICLE_EN, "en", max_sentences=3)
    lead = "The city of Riverside opened its first modern tram line on Saturday"
    assert any(s.startswith(lead) for s in summary.sentences)
    assert all("tram" in s.lower() or "line" in s.lower() for s in summary.sentences)


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 20])
def test_max_sentences_is_exact(limit: int) -> None:
    summary = summarise_extractive(ARTICLE_EN, "en", max_sentences=limit)
    assert len(summary.sentences) == limit


@pytest.mark.parametrize("budget", [25, 40, 60, 100, 250])
def test_max_words_is_never_exceeded(budget: int) -> None:
    summary = summarise_extractive(ARTICLE_EN, "en", max_sentences=None, max_words=budget)
    assert summary.sentences
    assert count_words(summary.text) <= budget
    assert_verbatim_in_order(summary, ARTICLE_EN, " ")


def test_word_budget_is_filled_with_what_fits() -> None:
    summary = summarise_extractive(ARTICLE_EN, "en", max_sentences=None, max_words=250)
    shortest_left_out = min(
        count_words(s) for s in article_sentences(ARTICLE_EN) if s not in summary.sentences
    )
    assert count_words(summary.text) + shortest_left_out > 250


def test_both_limits_apply_together() -> None:
    summary = summarise_extractive(ARTICLE_EN, "en", max_sentences=2, max_words=1000)
    assert len(summary.sentences) == 2
    tight = summarise_extractive(ARTICLE_EN, "en", max_sentences=10, max_words=30)
    assert len(tight.sentences) <= 10 and count_words(tight.text) <= 30


def test_best_sentence_alone_when_no_sentence_fits_the_word_budget() -> None:
    text = (
        "The committee approved the long awaited budget for the coming year on Monday evening.\n"
        "The budget includes new money for schools, hospitals and public transport in the region.\n"
        "Opposition members criticised the budget for ignoring rural roads and small businesses."
    )
    summary = summarise_extractive(text, "en", max_sentences=3, max_words=5)
    assert len(summary.sentences) == 1
    assert count_words(summary.text) > 5  # the documented exception
    best = summarise_extractive(text, "en", max_sentences=1)
    assert summary.sentences == best.sentences


def test_fewer_sentences_than_asked_returns_them_all() -> None:
    text = "Only two sentences here. The second one is short."
    summary = summarise_extractive(text, "en", max_sentences=5)
    assert summary.sentences == ("Only two sentences here.", "The second one is short.")
    assert summary.total_sentences == 2
    assert summarise_extractive("Just one.", "en").sentences == ("Just one.",)


def test_paragraph_breaks_separate_sentences() -> None:
    text = "A headline without a full stop\n\nThe body begins here. It goes on."
    summary = summarise_extractive(text, "en", max_sentences=3)
    assert summary.sentences == ("A headline without a full stop", "The body begins here.", "It goes on.")


def test_near_duplicates_are_avoided_when_alternatives_exist() -> None:
    repeated = "The new tram line opened in Riverside on Saturday morning."
    text = (
        f"{repeated} Thousands of residents came to the station square. "
        f"{repeated} The mayor thanked the construction workers for their effort. "
        "The line cost 410 million euros and connects the station with the university."
    )
    summary = summarise_extractive(text, "en", max_sentences=2)
    assert summary.sentences.count(repeated) <= 1


def test_chinese_article() -> None:
    summary = summarise_extractive(ARTICLE_ZH, "zh", max_sentences=3)
    assert len(summary.sentences) == 3
    assert all(s.endswith("。") for s in summary.sentences)
    assert summary.total_sentences == 10
    assert_verbatim_in_order(summary, ARTICLE_ZH, "")
    assert "\n" not in summary.text and " " not in summary.text


def test_chinese_word_budget_counts_two_characters_per_word() -> None:
    assert count_words("有轨电车开通了。") == 4  # seven letters, rounded up
    summary = summarise_extractive(ARTICLE_ZH, "zh", max_sentences=None, max_words=40)
    assert count_words(summary.text) <= 40
    assert len(summary.sentences) >= 2


def test_unspaced_scripts_are_compared_by_character_bigrams() -> None:
    assert tokens("有轨电车") == ["有轨", "轨电", "电车"]
    assert tokens("Don't stop, 3.14!") == ["don't", "stop", "3.14"]
    assert tokens("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # combining vowel signs stay in the word


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_empty_text_is_rejected(text: str) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        summarise_extractive(text, "en")


def test_text_without_words_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="no words"):
        summarise_extractive("!!! ... ???", "en")


@pytest.mark.parametrize(
    ("max_sentences", "max_words", "message"),
    [(0, None, "max_sentences must be at least 1"), (3, 0, "max_words must be at least 1"),
     (None, None, "needs a limit")],
)
def test_bad_limits_are_rejected(max_sentences: int | None, max_words: int | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        summarise_extractive(ARTICLE_EN, "en", max_sentences=max_sentences, max_words=max_words)

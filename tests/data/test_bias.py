"""The bias step: demeaning statements about groups counted per category (or dropped); neutral
mentions of the same groups left alone; the lexicon replaceable."""

import json

import pytest

from llmkit.cli import main
from llmkit.data.steps.bias import BiasFilter, BiasOptions
from llmkit.errors import LlmkitError
from tests.data.corpus_files import write_jsonl


def _step(**options):
    step = BiasFilter(BiasOptions(**options))
    step.setup()
    return step


@pytest.mark.parametrize("text,category", [
    ("Some people say immigrants are criminals and should leave.", "ethnicity_nationality"),
    ("He wrote that all women are stupid.", "gender"),
    ("The pamphlet claimed Muslims were nothing but terrorists.", "religion"),
    ("Old people are useless, the comment said.", "age"),
])
def test_demeaning_statements_are_counted_by_category(text, category):
    step = _step()
    assert step(text) == (text, None)  # flag: kept, counted
    assert step.counters == {f"bias_docs_{category}": 1, f"bias_matches_{category}": 1}


@pytest.mark.parametrize("text", [
    "Women are underrepresented in the data set we used.", "Immigrants are counted in the census.",
    "The study followed 300 old people for ten years.", "Muslims are the second-largest religious group.",
])
def test_neutral_mentions_are_not_flagged(text):
    step = _step()
    assert step(text) == (text, None) and not step.counters


def test_drop_mode_and_a_replaced_lexicon(tmp_path):
    lexicon = tmp_path / "lexicon.yaml"
    lexicon.write_text("categories:\n  profession: {groups: [lawyers], terms: [ambulance chasers]}\n"
                       "predicates: [sharks]\n")
    step = _step(lexicon=str(lexicon), action="drop")
    assert step("Lawyers are sharks.") == (None, "bias_profession")
    assert step("They called them ambulance chasers.") == (None, "bias_profession")
    assert step("Immigrants are criminals.")[1] is None  # the built-in lexicon was replaced
    with pytest.raises(LlmkitError, match="does not exist"):
        _step(lexicon=str(tmp_path / "none.yaml"))
    with pytest.raises(LlmkitError, match="flag or drop"):
        _step(action="delete")


def test_counts_reach_stats_json(tmp_path):
    docs = [{"text": "Refugees are vermin, the post said."}, {"text": "Refugees are welcome here."},
            {"text": "All men are idiots and women are dumb."}]
    corpus = write_jsonl(tmp_path / "in.jsonl", docs)
    assert main(["data", "prepare", "--input", str(corpus), "--out", str(tmp_path / "out"), "--steps", "bias",
                 "--no-progress"]) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    counts = next(s for s in stats["steps"] if s["name"] == "bias")["counts"]
    assert counts == {"bias_docs_ethnicity_nationality": 1, "bias_matches_ethnicity_nationality": 1,
                      "bias_docs_gender": 1, "bias_matches_gender": 2}

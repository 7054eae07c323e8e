"""Stop conditions in one place: stop ids, stop strings spanning tokens, cutting text."""

from llmkit.decode.stops import StopConditions, cut_at_stops


def test_text_is_cut_before_the_first_stop_string():
    assert cut_at_stops("a. b the c", [" the", "."]) == "a"
    assert cut_at_stops("no stop here", ["\n\n"]) == "no stop here"
    assert cut_at_stops("x", ["", "y"]) == "x"  # an empty stop string stops nothing


def test_stop_strings_are_found_across_token_boundaries_and_ids_end_at_the_token():
    stops = StopConditions(frozenset({7}), ("\n\n",))
    assert stops.ends_at(7) and not stops.ends_at(8)
    text = ""
    reached = []
    for piece in ["Answer: 4", "\n", "\n", "Question"]:  # "\n\n" arrives in two tokens
        text += piece
        reached.append(stops.reached_in(text))
    assert reached == [False, False, True, True]
    assert stops.cut(text) == "Answer: 4"

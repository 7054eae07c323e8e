"""Streamed text deltas add up to the non-streamed text, whatever the stop strings and however the
text grows (a property, checked on many random cases)."""

import random

from llmkit.decode.stops import cut_at_stops
from llmkit.serve.responses import TextDeltas


def stream(pieces: list[str], stops: list[str]) -> tuple[str, str]:
    """(what the stream sends, the final text), as the engine grows and cuts the text."""
    deltas, text, sent = TextDeltas(stops), "", []
    for i, piece in enumerate(pieces):
        text += piece
        cut = cut_at_stops(text, stops)
        final = cut != text or i == len(pieces) - 1
        sent.append(deltas.delta(0, cut if final else text, final))
        if final:
            return "".join(sent), cut
    return "".join(sent), text


def test_deltas_add_up_to_the_final_text_and_never_send_a_stop_string():
    rng = random.Random(0)
    alphabet = "ab c\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        pieces, at = [], 0
        while at < len(text):
            step = rng.randint(1, 4)
            pieces.append(text[at: at + step])
            at += step
        stops = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 3))]
        sent, final = stream(pieces, stops)
        assert sent == final, (pieces, stops)
        assert not any(stop in sent for stop in stops)


def test_half_a_character_waits_for_the_rest():
    deltas = TextDeltas()
    assert deltas.delta(0, "caf\ufffd", False) == "caf"
    assert deltas.delta(0, "café", True) == "é"

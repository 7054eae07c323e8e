"""Each objective's loss mask and attention mask are exactly what it defines."""

import torch

from llmkit.model import build_model, named_config
from llmkit.train.objectives import BlankInfilling, MaskedLM, PrefixLM, SpanCorruption, SpecialIds, sample_spans
from llmkit.train.task import IGNORE_INDEX

IDS = SpecialIds(pad=2, eos=0, bos=1, mask=5, sentinels=tuple(range(6, 22)))
WINDOW = torch.arange(100, 164).view(2, 32)  # distinct tokens: every position is identifiable


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_prefix_lm_scores_only_the_continuation_and_passes_the_prefix():
    batch = PrefixLM().make_batch(WINDOW[:, :-1], WINDOW[:, 1:], _gen())
    for row in range(2):
        p = int(batch["prefix_len"][row])
        targets = batch["targets"][row]
        assert (targets[: p - 1] == IGNORE_INDEX).all()
        assert torch.equal(targets[p - 1:], WINDOW[row, p:])  # the continuation x[p:] exactly


def test_prefix_lm_attention_is_bidirectional_in_the_prefix():
    torch.manual_seed(0)
    model = build_model(named_config("tiny-glm").replace(vocab_size=200), "cpu").eval()
    batch = PrefixLM().make_batch(WINDOW[:, :-1], WINDOW[:, 1:], _gen(3))
    p = int(batch["prefix_len"][0])
    changed = batch["tokens"].clone()
    changed[0, p - 1] = 7  # last prefix token: visible to position 0 only under the prefix mask
    with torch.no_grad():
        a = model(batch["tokens"], prefix_len=batch["prefix_len"])
        b = model(changed, prefix_len=batch["prefix_len"])
    assert not torch.allclose(a[0, 0], b[0, 0])


def test_spans_cover_about_fifteen_percent_without_overlap():
    spans = sample_spans(200, _gen(), density=0.15, mean_span=3.0)
    covered = [i for s, e in spans for i in range(s, e)]
    assert len(covered) == len(set(covered)) == 30
    assert all(e < s2 for (_, e), (s2, _) in zip(spans, spans[1:]))  # separated by at least one token


def test_span_corruption_reconstructs_the_original():
    task = SpanCorruption(IDS)
    batch = task.make_batch(WINDOW[:, :-1], WINDOW[:, 1:], _gen())
    for row in range(2):
        src = batch["src"][row][batch["src_valid"][row]].tolist()
        target = [t for t in batch["targets"][row].tolist() if t != IGNORE_INDEX]
        assert target[-1] == IDS.eos
        spans, current = {}, None
        for t in target[:-1]:
            if t in IDS.sentinels:
                current = t
                spans[current] = []
            else:
                spans[current].append(t)
        rebuilt = [x for t in src for x in (spans[t] if t in IDS.sentinels else [t])]
        assert rebuilt == WINDOW[row, :-1].tolist()
        decoder_in = batch["tokens"][row].tolist()
        assert decoder_in[0] == IDS.pad and decoder_in[1:len(target)] == target[:-1]  # shifted right


def test_blank_infilling_parts_and_loss_mask():
    batch = BlankInfilling(IDS).make_batch(WINDOW[:, :-1], WINDOW[:, 1:], _gen())
    for row in range(2):
        a_len = int(batch["prefix_len"][row])
        tokens, targets = batch["tokens"][row].tolist(), batch["targets"][row].tolist()
        part_a, part_b = tokens[:a_len], tokens[a_len:]
        assert IDS.mask in part_a and all(t == IGNORE_INDEX for t in targets[:a_len])
        b_targets = [t for t in targets[a_len:] if t != IGNORE_INDEX]
        n_spans = part_a.count(IDS.mask)
        assert part_b.count(IDS.bos) == n_spans and b_targets.count(IDS.eos) == n_spans
        for i, t in enumerate(targets[a_len:]):  # each target is the next part-B token, or [eop]
            if t not in (IGNORE_INDEX, IDS.eos):
                assert part_b[i + 1] == t
        restored = sorted(set(WINDOW[row, :-1].tolist()) - set(part_a))
        assert sorted(t for t in b_targets if t != IDS.eos) == restored


def test_mlm_corrupts_fifteen_percent_eighty_ten_ten():
    window = torch.randint(100, 1000, (64, 513), generator=_gen(1))
    batch = MaskedLM(IDS, 1000).make_batch(window[:, :-1], window[:, 1:], _gen(2))
    original = window[:, :-1]
    chosen = batch["targets"] != IGNORE_INDEX
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    assert torch.equal(batch["targets"][chosen], original[chosen])  # labels are the original tokens
    assert torch.equal(batch["tokens"][~chosen], original[~chosen])
    masked = (batch["tokens"] == IDS.mask) & chosen
    kept = (batch["tokens"] == original) & chosen
    assert abs(masked.sum() / chosen.sum() - 0.8) < 0.03 and abs(kept.sum() / chosen.sum() - 0.1) < 0.03
    assert (batch["prefix_len"] == 512).all()  # every position sees every other

"""The filters that need a trained model: the hashed n-gram classifier and the perplexity filter."""

import torch

from llmkit.data.steps.classifier import ClassifierFilter, ClassifierOptions, HashedNgramClassifier, train_classifier
from llmkit.eval.perplexity_filter import PerplexityFilter, PerplexityOptions
from tests.data.planted import ENGLISH, prose

SPAM = ["buy cheap pills online now best price click win free casino bonus " * 5,
        "hot deals deals deals free shipping limited offer act now click here " * 5]


def test_classifier_separates_reference_text_from_spam(tmp_path):
    positives = [prose(s) for s in range(40)] + ENGLISH
    negatives = [" ".join(SPAM[s % 2].split()[s % 7:]) + f" offer{s}" for s in range(40)]
    model = train_classifier(positives, negatives, epochs=8)
    model.save(tmp_path / "clf")
    step = ClassifierFilter(ClassifierOptions(model=str(tmp_path / "clf"), threshold=0.5))
    step.setup()
    assert step(ENGLISH[2])[1] is None
    assert step("click here for free casino bonus and cheap pills, act now, limited offer")[1] == "classifier_low_score"
    reloaded = HashedNgramClassifier.load(tmp_path / "clf")
    assert reloaded.score([ENGLISH[0]]) == model.score([ENGLISH[0]])


def test_perplexity_filter_drops_text_unlike_the_reference(tmp_path, tiny_tokenizer):
    from llmkit.checkpoint import save_checkpoint
    from llmkit.model import build_model, named_config
    from tests.conftest import SAMPLE_TEXT
    from tests.train.helpers import quick_train

    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(vocab_size=tiny_tokenizer.vocab_size), "cpu")
    stream = torch.tensor(tiny_tokenizer.encode(SAMPLE_TEXT * 3, add_special_tokens=False))
    quick_train(model, stream, 60, tmp_path / "run")
    save_checkpoint(model, tmp_path / "ref", tokenizer=tiny_tokenizer)
    step = PerplexityFilter(PerplexityOptions(model=str(tmp_path / "ref"), max_perplexity=50.0))
    like_reference = "A list is a mutable sequence of items. Return the number of items in the container."
    unlike = "zq xv 7k ??; wq jj pp qq rt 9x vv kz lq"
    assert step.score(like_reference) < 50.0 < step.score(unlike)
    assert step(like_reference)[1] is None
    assert step(unlike)[1] == "perplexity_too_high"

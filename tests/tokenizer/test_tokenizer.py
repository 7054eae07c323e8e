import pytest

from llmkit.errors import LlmkitError
from llmkit.tokenizer import Tokenizer, train_bpe
from tests.conftest import SAMPLE_TEXT

TEXTS = ["Return the number of items.", "naïve café 東京 🙂", "  spaces\tand\nnewlines  ", ""]


def test_special_tokens_come_first(tiny_tokenizer):
    assert (tiny_tokenizer.eos_id, tiny_tokenizer.bos_id, tiny_tokenizer.pad_id) == (0, 1, 2)
    assert tiny_tokenizer.vocab_size == 300


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_lossless(tiny_tokenizer, text):
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_bpe_learns_merges():
    tokenizer = train_bpe([SAMPLE_TEXT], vocab_size=512, min_frequency=1, show_progress=False)
    text = "The quick brown fox jumps over the lazy dog."
    assert len(tokenizer.encode(text)) < len(text.encode()) / 3


def test_vocab_too_small_is_explained():
    with pytest.raises(LlmkitError, match="too small"):
        train_bpe(["abc"], vocab_size=100, show_progress=False)


def test_save_and_reload(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path)
    again = Tokenizer.from_dir(tmp_path)
    assert again.encode(SAMPLE_TEXT) == tiny_tokenizer.encode(SAMPLE_TEXT)
    assert again.chat_template == tiny_tokenizer.chat_template


def test_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(LlmkitError, match="tokenizer.json"):
        Tokenizer.from_dir(tmp_path)


def test_chat_template_validates_messages(tiny_tokenizer):
    with pytest.raises(LlmkitError, match="role"):
        tiny_tokenizer.apply_chat_template([{"content": "hi"}])


@pytest.mark.parity
def test_transformers_loads_our_tokenizer_identically(tiny_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tiny_tokenizer.save(tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS:
        assert hf.encode(text) == tiny_tokenizer.encode(text)
    assert (hf.eos_token_id, hf.bos_token_id, hf.pad_token_id) == (0, 1, 2)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    assert hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        tiny_tokenizer.apply_chat_template(messages)


@pytest.mark.parity
def test_we_load_a_tokenizer_saved_by_transformers(tiny_tokenizer, tmp_path):
    from transformers import PreTrainedTokenizerFast

    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    hf = PreTrainedTokenizerFast(tokenizer_object=tiny_tokenizer.backend, eos_token="<|endoftext|>",
                                 bos_token="<|bos|>", chat_template=template)
    hf.save_pretrained(tmp_path)
    ours = Tokenizer.from_dir(tmp_path)
    assert ours.encode("Return the list") == hf.encode("Return the list")
    messages = [{"role": "user", "content": "x"}]
    assert ours.apply_chat_template(messages, add_generation_prompt=False) == \
        hf.apply_chat_template(messages, tokenize=False)

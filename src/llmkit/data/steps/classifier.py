"""Classifier-based quality filter: a fastText-style model (Joulin et al. 2016, arXiv 1607.01759):
hashed word uni/bi-grams -> mean of their embeddings -> logistic output. Trained by
`llmkit data train-classifier` on "reference quality" positives vs. negatives (the GPT-3 and
LLaMA recipe of scoring web text against curated text), used as a step with a threshold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import xxhash
from safetensors.torch import load_file, save_file
from torch import nn

from llmkit.data.steps.base import Result, Step, drop, keep
from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_dir, write_json

TOKEN = re.compile(r"\w+", re.UNICODE)


class HashedNgramClassifier(nn.Module):
    def __init__(self, buckets: int = 2**18, dim: int = 16, ngrams: int = 2):
        super().__init__()
        self.buckets, self.ngrams = buckets, ngrams
        self.embedding = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.out = nn.Linear(dim, 1)

    def features(self, text: str) -> list[int]:
        tokens = TOKEN.findall(text.lower())[:2000]
        grams = [" ".join(tokens[i:i + n]) for n in range(1, self.ngrams + 1) for i in range(len(tokens) - n + 1)]
        return [xxhash.xxh32_intdigest(g.encode()) % self.buckets for g in grams] or [0]

    def forward(self, batch: list[list[int]]) -> torch.Tensor:
        flat = torch.tensor([f for feats in batch for f in feats])
        offsets = torch.tensor([0] + [len(f) for f in batch[:-1]]).cumsum(0)
        return self.out(self.embedding(flat, offsets)).squeeze(-1)  # (B,) logits

    @torch.no_grad()
    def score(self, texts: list[str]) -> list[float]:
        return torch.sigmoid(self([self.features(t) for t in texts])).tolist()

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        with atomic_dir(path, kind="classifier", overwrite=overwrite) as tmp:
            save_file(self.state_dict(), tmp / "model.safetensors")
            write_json(tmp / "config.json", {"buckets": self.buckets, "dim": self.out.in_features, "ngrams": self.ngrams})

    @classmethod
    def load(cls, path: str | Path) -> HashedNgramClassifier:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise LlmkitError(f"{path} is not a classifier directory (train one with `llmkit data train-classifier`)")
        model = cls(**json.loads((path / "config.json").read_text()))
        model.load_state_dict(load_file(path / "model.safetensors"))
        return model.eval()


def train_classifier(positives: list[str], negatives: list[str], epochs: int = 5, lr: float = 0.05,
                     seed: int = 0, **model_args) -> HashedNgramClassifier:
    if not positives or not negatives:
        raise LlmkitError("training the quality classifier needs both positive and negative documents")
    torch.manual_seed(seed)
    model = HashedNgramClassifier(**model_args)
    data = [(model.features(t), 1.0) for t in positives] + [(model.features(t), 0.0) for t in negatives]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for start in range(0, len(data), 32):
            batch = [data[i] for i in torch.randperm(len(data), generator=generator)[start:start + 32].tolist()]
            logits = model([f for f, _ in batch])
            loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([y for _, y in batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@dataclass
class ClassifierOptions:
    model: str = ""  # directory written by `llmkit data train-classifier`
    threshold: float = 0.5  # keep documents whose probability of being reference quality is >= this


class ClassifierFilter(Step):
    """Keep documents the hashed n-gram quality classifier scores >= threshold."""

    name = "classifier"
    Options = ClassifierOptions

    def setup(self) -> None:
        if not self.options.model:
            raise LlmkitError("the classifier step needs `model: DIR` (train one with `llmkit data train-classifier`)")
        self.model = HashedNgramClassifier.load(self.options.model)

    def __call__(self, text: str) -> Result:
        if not hasattr(self, "model"):
            self.setup()
        return keep(text) if self.model.score([text])[0] >= self.options.threshold else drop("classifier_low_score")

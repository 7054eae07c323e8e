"""A labelled set for measuring the curation filters' mistakes (docs/data.md, benchmarks/filter_accuracy.py):

- PII: short documents, each holding one item that is PII (e-mails, phones in national and
  international formats, payment cards of several issuers and groupings, IBANs, IP addresses,
  API keys and passwords) or one that only looks like it (decimals, scientific notation, version
  strings, hashes, UUIDs, timestamps, numeric tables, long digit runs, ISBNs, coordinates, code).
  Card numbers and IBANs are made valid (Luhn, mod 97); the negatives include Luhn-valid digit runs.
- language: prose in seven languages, English technical text (docstrings, README sections with
  code blocks, API references full of numbers, changelogs, stack traces) and plain source code.

Deterministic for a seed; nothing is downloaded. The scores below are what docs/data.md reports
(benchmarks/filter_accuracy.py prints them) and what tests/data/test_filter_accuracy.py holds to.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from dataclasses import dataclass

from llmkit.data.steps.language import LanguageOptions, identify
from llmkit.data.steps.pii import PiiScrubber, luhn_ok
from llmkit.data.steps.quality import C4Filter, C4Options, GopherFilter, GopherOptions


@dataclass
class PiiCase:
    text: str  # the document
    item: str  # the planted string
    kind: str | None  # its PII type, or None for a look-alike that must stay


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return next(body + d for d in string.digits if luhn_ok(body + d))


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i:i + size])
        i += size
    return sep.join(out)


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def pii_items(rng: random.Random) -> list[tuple[str, str]]:
    name = rng.choice(["anna.schmidt", "j.doe", "li_wei", "maria+news", "o'neil.k"]).replace("'", "")
    visa = _luhn_complete("4", 16, rng)
    master = _luhn_complete(rng.choice(["51", "53", "55", "2221"]), 16, rng)
    amex = _luhn_complete(rng.choice(["34", "37"]), 15, rng)
    discover = _luhn_complete("6011", 16, rng)
    return [
        (f"{name}@example.com", "EMAIL"), (f"{name}@mail.uni-{rng.randint(1, 99)}.edu", "EMAIL"),
        (f"{name.upper()}@EXAMPLE.ORG", "EMAIL"),
        (f"+1 {_digits(rng, 3)} 555 {_digits(rng, 4)}", "PHONE"), (f"(415) 555-{_digits(rng, 4)}", "PHONE"),
        (f"415-555-{_digits(rng, 4)}", "PHONE"), (f"415.555.{_digits(rng, 4)}", "PHONE"),
        (f"+44 20 7946 {_digits(rng, 4)}", "PHONE"), (f"+49 30 {_digits(rng, 7)}", "PHONE"),
        (f"+33 1 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}", "PHONE"),
        (f"+81-3-{_digits(rng, 4)}-{_digits(rng, 4)}", "PHONE"), (f"+1415555{_digits(rng, 4)}", "PHONE"),
        (f"+49 (0)89 {_digits(rng, 6)}", "PHONE"), (f"+33.1.{_digits(rng, 2)}.{_digits(rng, 2)}.{_digits(rng, 2)}.{_digits(rng, 2)}", "PHONE"),
        (f"Tel: 030 {_digits(rng, 7)}", "PHONE"), (f"phone 020 7946 {_digits(rng, 4)}", "PHONE"),
        (_group(visa, (4, 4, 4, 4), " "), "CREDIT_CARD"), (_group(master, (4, 4, 4, 4), "-"), "CREDIT_CARD"),
        (_group(amex, (4, 6, 5), " "), "CREDIT_CARD"), (_group(discover, (4, 4, 4, 4), " "), "CREDIT_CARD"),
        (f"card number: {visa}", "CREDIT_CARD"),
        (_iban("DE", _digits(rng, 18)), "IBAN"), (_iban("GB", "NWBK" + _digits(rng, 14)), "IBAN"),
        (_iban("FR", _digits(rng, 23)), "IBAN"),
        (f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "IP_ADDRESS"),
        (f"2001:db8:{rng.randint(1, 9999):x}::{rng.randint(1, 65535):x}", "IP_ADDRESS"),
        ("AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)), "SECRET"),
        ("ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36)), "SECRET"),
        ("sk-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32)), "SECRET"),
        (f'password = "{"".join(rng.choice(string.ascii_letters) for _ in range(6))}{_digits(rng, 4)}"', "SECRET"),
    ]


def lookalike_items(rng: random.Random) -> list[str]:
    luhn_run = _luhn_complete("4", 16, rng)  # Luhn-valid, but a bare number in a table or ID
    return [
        f"+{rng.randint(1, 9)}.{_digits(rng, 6)}", f"-{rng.randint(0, 9)}.{_digits(rng, 7)}e+{rng.randint(10, 99)}",
        f"{rng.randint(1, 9)}.{_digits(rng, 15)}", f"{rng.randint(100, 999)}.{_digits(rng, 4)}",
        f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
        f"version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
        f"torch=={rng.randint(1, 2)}.{rng.randint(0, 13)}.{rng.randint(0, 9)}",
        "".join(rng.choice("0123456789abcdef") for _ in range(40)), "".join(rng.choice("0123456789abcdef") for _ in range(64)),
        "".join(rng.choice(string.digits) for _ in range(32)),
        f"{rng.randint(10000000, 99999999):08x}-{rng.randint(0, 65535):04x}-4{rng.randint(0, 4095):03x}-"
        f"a{rng.randint(0, 4095):03x}-{rng.randint(0, 2**48 - 1):012x}",
        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d}.{_digits(rng, 3)}Z",
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{_digits(rng, 6)}",
        f"{rng.randint(1_600_000_000, 1_800_000_000)}", f"{rng.randint(1_600_000_000_000, 1_800_000_000_000)}",
        f"| {_digits(rng, 4)} | {_digits(rng, 4)} | {_digits(rng, 4)} | {_digits(rng, 4)} |",
        f"{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 3)}",
        "".join(rng.choice(string.digits) for _ in range(24)), f"id={luhn_run}", f"| {luhn_run} | 0.93 |",
        f"978-{rng.randint(0, 9)}-{_digits(rng, 2)}-{_digits(rng, 6)}-{rng.randint(0, 9)}",
        f"{rng.uniform(-90, 90):.6f}, {rng.uniform(-180, 180):.6f}", f"0x{rng.getrandbits(64):016x}",
        f"token = tokenizer(batch[{rng.randint(0, 9)}])", "password = get_password_from_environment()",
        f"lr=3e-4, betas=(0.9, 0.95), eps=1e-8, steps={rng.randint(1000, 99999)}",
        f"{rng.randint(1, 9)},{_digits(rng, 3)},{_digits(rng, 3)},{_digits(rng, 3)}",
        f"order #{_digits(rng, 10)}", f"tensor([{rng.random():.4f}, {rng.random():.4f}, -{rng.random():.4f}])",
    ]


PROSE = ["The result was written to the log at {}.", "See the value {} in the table below.",
         "Please contact us at {} for details.", "The field held {} after the update.",
         "Our measurements gave {} on the second run.", "It printed {} and then exited."]


def pii_cases(seed: int = 0, rounds: int = 6) -> list[PiiCase]:
    rng, cases = random.Random(seed), []
    for _ in range(rounds):
        for item, kind in pii_items(rng):
            cases.append(PiiCase(rng.choice(PROSE).format(item), item, kind))
        for item in lookalike_items(rng):
            cases.append(PiiCase(rng.choice(PROSE).format(item), item, None))
    return cases


PROSE_BY_LANGUAGE = {
    "en": ["The committee will meet again next week to review the budget and the plans for the new library.",
           "Most of the visitors came by train, and many of them stayed for the whole weekend.",
           "She said that the results were better than expected, but that there is still a lot of work to do."],
    "de": ["Der Ausschuss wird sich nächste Woche wieder treffen, um den Haushalt und die Pläne für die neue Bibliothek zu prüfen.",
           "Die meisten Besucher kamen mit dem Zug, und viele von ihnen blieben das ganze Wochenende.",
           "Sie sagte, dass die Ergebnisse besser als erwartet seien, aber es noch viel zu tun gebe."],
    "fr": ["Le comité se réunira de nouveau la semaine prochaine pour examiner le budget et les plans de la nouvelle bibliothèque.",
           "La plupart des visiteurs sont venus en train, et beaucoup sont restés tout le week-end.",
           "Elle a dit que les résultats étaient meilleurs que prévu, mais qu'il reste encore beaucoup de travail."],
    "es": ["El comité se reunirá de nuevo la próxima semana para revisar el presupuesto y los planes de la nueva biblioteca.",
           "La mayoría de los visitantes llegaron en tren, y muchos de ellos se quedaron todo el fin de semana.",
           "Dijo que los resultados fueron mejores de lo esperado, pero que todavía queda mucho trabajo por hacer."],
    "it": ["Il comitato si riunirà di nuovo la prossima settimana per esaminare il bilancio e i piani per la nuova biblioteca.",
           "La maggior parte dei visitatori è arrivata in treno, e molti di loro sono rimasti per tutto il fine settimana.",
           "Ha detto che i risultati sono stati migliori del previsto, ma che c'è ancora molto lavoro da fare."],
    "pt": ["O comitê vai se reunir novamente na próxima semana para rever o orçamento e os planos da nova biblioteca.",
           "A maioria dos visitantes veio de trem, e muitos deles ficaram o fim de semana inteiro.",
           "Ela disse que os resultados foram melhores do que o esperado, mas que ainda há muito trabalho a fazer."],
    "nl": ["De commissie komt volgende week opnieuw bijeen om de begroting en de plannen voor de nieuwe bibliotheek te bekijken.",
           "De meeste bezoekers kwamen met de trein, en velen van hen bleven het hele weekend.",
           "Ze zei dat de resultaten beter waren dan verwacht, maar dat er nog veel werk te doen is."],
}
TECHNICAL_EN = [
    '"""Return the logits of shape (B, T, V).\n\nArgs:\n    tokens: int64 ids of shape (B, T).\n    cache: a KV cache, '
    'or None to run without one.\n\nRaises:\n    ValueError: if T exceeds max_seq_len (e.g. 4096).\n"""',
    "## Installation\n\nInstall it with pip and run the tests:\n\n```bash\npip install -e .[dev]\npytest -q tests/\n```\n\n"
    "The first run builds the C++ kernel, which takes about a minute.",
    "### `forward(x, mask=None)`\n\nApplies the layer to `x` (float32, shape `(N, 512)`). Returns a tensor of the same "
    "shape. With `mask`, positions where it is 0 are ignored. Default eps is 1e-5; lr 3e-4 works for most runs.",
    "Fix: the loader now skips empty shards (#1234). Bump numpy to 1.26.4 and torch to 2.13.0. The eval script "
    "reports p50/p95 latency in ms and tokens/s for batch sizes 1, 8 and 32.",
    "Traceback (most recent call last):\n  File \"train.py\", line 42, in <module>\n    main()\nRuntimeError: CUDA out of "
    "memory. Tried to allocate 2.00 GiB. If reserved but unallocated memory is large, try setting the allocator option.",
    "# Compute the moving average over the last n values and return it.\n# If the window is empty, return 0.0 instead.\n"
    "def moving_average(values, n):\n    window = values[-n:]\n    return sum(window) / len(window) if window else 0.0\n\n"
    "The function above is used by the scheduler to smooth the measured throughput before it decides.",
    "x (int): index into a.\ny (int): index into e.\nReturns a[x] + e[y] per element.",
    "Args:\n    a (Tensor): input of shape (N, C).\n    e (float): epsilon added to the variance, e.g. 1e-5.\n\n"
    "Returns:\n    Tensor: the normalised input.",
    'Set the config: {"model": "tiny", "lr": 3e-4, "batch_size": 8}. Then run the script again.',
    "Example config:\n\n```json\n{\n  \"model\": \"tiny-llama\",\n  \"optim\": {\"lr\": 3e-4}\n}\n```\n\n"
    "Every key is optional; the defaults are listed in the table below and in the --help output.",
    "@param a the first operand\n@param e the error bound\n@return a + e, clamped to [0, 1]",
    "To resume a run, pass --resume auto. The trainer picks the newest complete checkpoint, restores the optimizer "
    "and the data position, and continues from there; the loss matches an uninterrupted run to 1e-6.",
    "Each request is a JSON object with the fields model, messages and max_tokens. The server answers with an id, "
    "the choices and a usage object; with stream set to true it sends server-sent events instead.",
]
CODE_ONLY = [
    "import os\nimport sys\n\ndef main(argv):\n    path = argv[1]\n    with open(path) as f:\n        for line in f:\n"
    "            print(line.rstrip())\n\nif __name__ == '__main__':\n    main(sys.argv)\n",
    "#include <stdio.h>\n\nint main(void) {\n    int total = 0;\n    for (int i = 0; i < 10; i++) {\n        total += i;\n"
    "    }\n    printf(\"%d\\n\", total);\n    return 0;\n}\n",
    "fn main() {\n    let v: Vec<i32> = (0..10).collect();\n    let s: i32 = v.iter().sum();\n    println!(\"{}\", s);\n}\n",
]


TECHNICAL_SENTENCES = [
    "Returns None if the key is missing.", "Set it to 0 to disable the check.", "The default is 8 (see below).",
    "Use `--workers 4` on a machine with 4 cores.", "This raises KeyError when the name is unknown.",
    "Values above 1e-3 make the loss diverge.", "It was measured at 1,524 tokens/s on 2 threads.",
    "Call `close()` when you are done with the handle.", "The output has shape (B, T, C) and dtype float32.",
    "Note: the API changed in 2.0; update your config files.", "See issue #512 for the discussion.",
    "If the file is larger than 2 GB, it is split into shards of 256 MB.",
]


def technical_case(rng: random.Random) -> str:
    parts = [rng.choice(TECHNICAL_EN)] + rng.sample(TECHNICAL_SENTENCES, k=rng.randint(1, 3))
    rng.shuffle(parts)
    return "\n\n".join(parts)


def language_cases(seed: int = 0, per_language: int = 30, technical: int = 120) -> list[tuple[str, str, str]]:
    """(text, label, subset) triples; subset is "prose", "technical_en" or "code"."""
    rng, cases = random.Random(seed), []
    for language, sentences in PROSE_BY_LANGUAGE.items():
        for _ in range(per_language):
            cases.append((" ".join(rng.sample(sentences, k=rng.randint(1, 3))), language, "prose"))
    cases += [(technical_case(rng), "en", "technical_en") for _ in range(technical)]
    cases += [(text, "code", "code") for text in CODE_ONLY]
    return cases


def pii_scores(seed: int = 0) -> dict:
    step, counts = PiiScrubber(), Counter()
    for case in pii_cases(seed):
        out, _ = step(case.text)
        changed = out != case.text
        if case.kind is None:
            counts["fp"] += changed
            counts["negatives"] += 1
        else:
            found = case.item not in out and f"<{case.kind}>" in out
            counts[f"tp_{case.kind}"] += found
            counts[f"n_{case.kind}"] += 1
            counts["tp"] += found
            counts["fp"] += changed and not found  # replaced, but as another type
            counts["positives"] += 1
    per_type = {k[2:]: counts[f"tp_{k[2:]}"] / counts[k] for k in counts if k.startswith("n_")}
    return {"precision": counts["tp"] / max(counts["tp"] + counts["fp"], 1), "recall": counts["tp"] / counts["positives"],
            "recall_per_type": per_type, "positives": counts["positives"], "negatives": counts["negatives"],
            "false_positives": counts["fp"]}


def language_scores(seed: int = 0) -> dict:
    right, total, min_score = Counter(), Counter(), LanguageOptions().min_score
    for text, label, subset in language_cases(seed):
        language, score = identify(text)
        total[subset] += 1
        right[subset] += language == label and score >= min_score  # what the language step would keep
    return {subset: right[subset] / total[subset] for subset in total} | {"documents": sum(total.values())}


def keep_code_scores(seed: int = 0) -> dict:
    docs = [text for text, _, subset in language_cases(seed) if subset == "technical_en" and ("```" in text or "def " in text)]
    rows = {}
    for name, step_class, options in (("gopher", GopherFilter, GopherOptions), ("c4", C4Filter, C4Options)):
        for keep_code in (False, True):
            step = step_class(options(keep_code=keep_code, **({"min_words": 20} if name == "gopher" else {"min_sentences": 2})))
            step.setup()
            rows[f"{name}{'_keep_code' if keep_code else ''}"] = sum(step(d)[0] is not None for d in docs) / len(docs)
    return rows | {"documents": len(docs)}

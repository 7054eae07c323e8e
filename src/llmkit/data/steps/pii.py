"""PII scrubbing: e-mail addresses, phone numbers, IPv4/IPv6 addresses, payment-card numbers,
IBANs (mod-97-checked) and common secret/API-key patterns are replaced by typed placeholders;
replacements are counted per type.

Numbers in technical text are mostly not PII, so each detector asks for the shape of the real thing:
- phones: an international number (+country code, then groups split by spaces, dashes, dots or
  parentheses, or 8-15 digits written together), an (area) code, a North-American
  ddd-ddd-dddd, or any digit group after a phone word (Tel:, phone, fax, mobile); 7 to 15 digits in
  all. So +3.140000, -1.5e+10, version strings and timestamps stay.
- cards: Luhn-valid, with an issuer's prefix and length (Visa, Mastercard, Amex, Discover, JCB,
  Diners, UnionPay), written in the card's groups (4-4-4-4, Amex 4-6-5) or, unbroken, after a card
  word; a digit run inside a longer number or a table cell is never a card.
- IPv4: not after a version word (v, version, release, ==) and not part of a longer dotted number.
- secrets: known token shapes; `password = ...`-style values only when quoted or mixing letters
  and digits (so `token = tokenizer(text)` in code stays).
Measured on a labelled set (llmkit.data.filter_eval_set; docs/data.md).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from llmkit.data.steps.base import Result, Step, keep

SECRET = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b"  # GitHub tokens
    r"|\bsk-[A-Za-z0-9_-]{20,}\b"  # OpenAI-style secret keys
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"  # Slack tokens
    r"|\bAIza[0-9A-Za-z_-]{35}\b"  # Google API keys
    r"|(?i:\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*)(?P<pii>[\"'][^\"'\s]{8,}[\"']|[A-Za-z0-9_\-/+]{12,}(?!\())"
)
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
CARD = re.compile(
    r"(?<![\w.,-])(?:\d{4}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,7}|\d{4}(?P<amex>[ -])\d{6}(?P=amex)\d{5})(?![\w-]|[.,]\d)"
    r"|(?i:\b(?:card|credit|debit|visa|mastercard|amex|cc)\b[^\n\d]{0,20})(?P<pii>(?<![\w.,-])\d{13,19})(?![\w-]|[.,]\d)"
)
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?:::?[0-9A-Fa-f]{1,4})*(?![\w:])|::1\b")
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w]|\.\d)")
VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bver\.?|\bversion|\brelease|==|>=|<=|~=)\s*$")
PHONE = re.compile(
    # +44 20 7946 0958, +49 (0)89 123456, +33.1.23.45.67.89: dotted groups are short (so +3.140000 is no phone)
    r"(?<![\w+.-])\+\d{1,3}(?:\s?\(\d{1,5}\)\s?\d{1,8}|[ -](?:\(\d{1,8}\)|\d{1,8})|\.\d{1,4}){1,6}(?![\w.(-]?\d)"
    r"|(?<![\w+.-])\+\d{8,15}(?![\w.]|,\d)"  # +14155552671
    r"|(?<![\w(])\(\d{2,5}\)[ .-]?\d{3,4}[ .-]?\d{3,4}(?![\w-])"  # (415) 555-2671
    r"|(?<![\w.-])\d{3}(?P<nanp>[-. ])\d{3}(?P=nanp)\d{4}(?![\w-]|\.\d)"  # 415-555-2671
    r"|(?i:\b(?:tel|phone|telephone|fax|mobile|cell|call)\b\.?:?\s{0,3})(?P<pii>\(?\+?\d[\d ()./-]{5,18}\d)(?![\w-])"
)
ISSUERS = [  # (prefixes as (low, high) ranges on the leading digits, allowed lengths)
    ([(4, 4)], (13, 16, 19)), ([(51, 55), (2221, 2720)], (16,)), ([(34, 34), (37, 37)], (15,)),
    ([(6011, 6011), (65, 65), (644, 649)], (16, 17, 18, 19)), ([(3528, 3589)], (16, 17, 18, 19)),
    ([(300, 305), (36, 36), (38, 39)], (14, 15, 16, 17, 18, 19)), ([(62, 62)], (16, 17, 18, 19)),
]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def issuer_ok(digits: str) -> bool:
    for ranges, lengths in ISSUERS:
        if len(digits) in lengths and any(low <= int(digits[:len(str(low))]) <= high for low, high in ranges):
            return True
    return False


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _value(match: re.Match) -> str:
    return match.group("pii") if "pii" in match.re.groupindex and match.group("pii") else match.group(0)


def _valid_card(match: re.Match) -> bool:
    digits = re.sub(r"\D", "", _value(match))
    return 13 <= len(digits) <= 19 and luhn_ok(digits) and issuer_ok(digits)


def _valid_phone(match: re.Match) -> bool:
    digits = re.sub(r"\D", "", _value(match))
    return 7 <= len(digits) <= 15 and len(set(digits)) > 1


def _valid_ipv4(match: re.Match) -> bool:
    return not VERSION_BEFORE.search(match.string[max(0, match.start() - 12): match.start()])


def _valid_ipv6(match: re.Match) -> bool:
    try:
        ipaddress.ip_address(match.group(0))
    except ValueError:
        return False
    return True


def _valid_secret(match: re.Match) -> bool:
    value = match.group("pii")
    if value is None or value[0] in "\"'":  # a known token shape, or a quoted value
        return True
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


# Order matters: longer, more specific patterns first, so a card number is not taken for a phone.
DETECTORS = [
    ("SECRET", SECRET, _valid_secret), ("EMAIL", EMAIL, None), ("IBAN", IBAN, lambda m: iban_ok(m.group(0))),
    ("CREDIT_CARD", CARD, _valid_card), ("IP_ADDRESS", IPV6, _valid_ipv6), ("IP_ADDRESS", IPV4, _valid_ipv4),
    ("PHONE", PHONE, _valid_phone),
]


@dataclass
class PiiOptions:
    kinds: list[str] = field(default_factory=lambda: ["SECRET", "EMAIL", "IBAN", "CREDIT_CARD", "IP_ADDRESS", "PHONE"])


class PiiScrubber(Step):
    """Replace e-mails, phones, IPs, cards, IBANs and secrets with <TYPE> placeholders."""

    name = "pii"
    Options = PiiOptions

    def __call__(self, text: str) -> Result:
        for kind, pattern, validate in DETECTORS:
            if kind in self.options.kinds:
                text = pattern.sub(lambda m, k=kind, v=validate: self._replace(m, k, v), text)
        return keep(text)

    def _replace(self, match: re.Match, kind: str, validate) -> str:
        if validate is not None and not validate(match):
            return match.group(0)
        self.counters[kind] += 1
        if "pii" in match.re.groupindex and match.group("pii"):  # keep the context word ("Tel: ", "password=")
            return match.group(0)[: match.start("pii") - match.start()] + f"<{kind}>"
        return f"<{kind}>"

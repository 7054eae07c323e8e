"""PII scrubbing: e-mail addresses, phone numbers, IPv4/IPv6 addresses, credit-card numbers
(Luhn-checked), IBANs (mod-97-checked) and common secret/API-key patterns are replaced by typed
placeholders; replacements are counted per type."""

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
    r"|(?i:\b(?:api[_-]?key|secret|token|password)\b\s*[:=]\s*[\"']?)[A-Za-z0-9_\-/+]{12,}[\"']?"
)
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?:::?[0-9A-Fa-f]{1,4})*(?![\w:])|::1\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
# Phones need an unambiguous shape (+country code, (area) prefix, or NANP ddd-ddd-dddd) so that
# ordinary digit groups (versions, dates, failed card numbers) are left alone.
PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,4}(?![\w-])"
    r"|(?<!\w)\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}(?![\w-])"
    r"|(?<![\w.-])\d{3}[-.]\d{3}[-.]\d{4}(?![\w-]|\.\d)"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _valid_card(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _valid_ip(match: str) -> bool:
    try:
        ipaddress.ip_address(match)
    except ValueError:
        return False
    return True


# Order matters: longer, more specific patterns first, so a card number is not taken for a phone.
DETECTORS = [
    ("SECRET", SECRET, None), ("EMAIL", EMAIL, None), ("IBAN", IBAN, iban_ok), ("CREDIT_CARD", CARD, _valid_card),
    ("IP_ADDRESS", IPV6, _valid_ip), ("IP_ADDRESS", IPV4, None), ("PHONE", PHONE, None),
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
        if validate is not None and not validate(match.group(0)):
            return match.group(0)
        self.counters[kind] += 1
        return f"<{kind}>"

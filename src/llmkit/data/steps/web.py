"""Steps for pages read from WARC files (llmkit.data.warc): main-text extraction from HTML, and URL
filtering by block lists and the page's own robots opt-outs. Both pass other records unchanged."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from llmkit.data.steps.base import Result, Step, drop, keep
from llmkit.errors import LlmkitError

EXTRACTORS = ("resiliparse", "trafilatura")


def extract_resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True, preserve_formatting=True, list_bullets=True,
                              alt_texts=False, links=False, form_fields=False, noscript=False)


def extract_trafilatura(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=True, include_links=False,
                               include_images=False, deduplicate=False) or ""


@dataclass
class HtmlExtractOptions:
    extractor: str = "resiliparse"  # resiliparse | trafilatura (measured in docs/data.md)
    min_chars: int = 1  # pages whose main text is shorter are dropped ("no_main_text")


class HtmlExtract(Step):
    """Main text of HTML pages (boilerplate, navigation, scripts removed); other records unchanged."""

    name = "html_extract"
    Options = HtmlExtractOptions
    reads_record: ClassVar[bool] = True

    def setup(self) -> None:
        if self.options.extractor not in EXTRACTORS:
            raise LlmkitError(f"html_extract: unknown extractor {self.options.extractor!r}; use one of {EXTRACTORS}")
        self.extract = None  # imported with the first web page: corpora without any need no extra package

    def _load(self):
        extract = {"resiliparse": extract_resiliparse, "trafilatura": extract_trafilatura}[self.options.extractor]
        try:
            extract("<html><body><p>probe</p></body></html>")
        except ImportError:
            raise LlmkitError(f"html_extract with {self.options.extractor} needs it installed: "
                              "pip install 'llmkit[web]'") from None
        return extract

    def __call__(self, text: str, record: dict) -> Result:
        if record.get("format") != "html":
            return keep(text)
        if getattr(self, "extract", None) is None:
            self.setup()
            self.extract = self._load()
        extracted = self.extract(text).strip()
        return keep(extracted) if len(extracted) >= self.options.min_chars else drop("no_main_text")


@dataclass
class UrlFilterOptions:
    blocklists: list[str] = field(default_factory=list)  # files: a domain per line (blocks its subdomains too),
    # or a URL pattern with * wildcards; "#" starts a comment
    patterns: list[str] = field(default_factory=list)  # regular expressions searched in the URL
    robots_exclude: list[str] = field(default_factory=lambda: ["noai", "noindex", "none"])  # page opt-outs honoured


class UrlFilter(Step):
    """Drop pages whose URL is on a block list or matches a pattern, or that opt out (robots meta tag
    or X-Robots-Tag); records without a URL pass."""

    name = "url_filter"
    Options = UrlFilterOptions
    reads_record: ClassVar[bool] = True

    def setup(self) -> None:
        self.domains, globs = set(), []
        for path in self.options.blocklists:
            if not Path(path).is_file():
                raise LlmkitError(f"url_filter: block list {path} does not exist")
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                entry = line.split("#", 1)[0].strip().lower()
                if entry:
                    (globs.append(entry) if ("/" in entry or "*" in entry) else self.domains.add(entry.lstrip(".")))
        self.globs = [re.compile(fnmatch.translate(g)) for g in globs]
        try:
            self.patterns = [re.compile(p) for p in self.options.patterns]
        except re.error as error:
            raise LlmkitError(f"url_filter: bad pattern ({error})") from None

    def __call__(self, text: str, record: dict) -> Result:
        url = str(record.get("url") or "")
        opted_out = set(str(record.get("robots") or "").split(",")) & set(self.options.robots_exclude)
        if opted_out:
            return drop(f"robots_{sorted(opted_out)[0]}")
        if not url:
            return keep(text)
        host = (urlsplit(url).hostname or "").lower()
        parts = host.split(".")
        if any(".".join(parts[i:]) in self.domains for i in range(len(parts))):
            return drop("blocked_domain")
        bare = url.lower().split("://", 1)[-1]
        if any(g.match(bare) or g.match(url.lower()) for g in self.globs):
            return drop("blocked_url")
        if any(p.search(url) for p in self.patterns):
            return drop("url_pattern")
        return keep(text)

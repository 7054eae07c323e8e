"""Synthetic web pages and WARC files with known main text: the labelled set that measures HTML
extractors (`benchmarks/web_extraction.py`), the input of the web tests, and the generated crawl of
the curation throughput benchmark.

Each page wraps its article (a title and paragraphs: the label) in what real pages carry around it:
a navigation bar, a cookie banner, a sidebar of links, scripts and styles, a comment form and a
footer. Pages vary in layout (article/main/div containers), language and encoding (UTF-8,
windows-1252, ISO-8859-1, Shift_JIS, declared in the HTTP header, in a meta tag, or not at all).
"""

from __future__ import annotations

import gzip
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

WORDS = {
    "en": ("the data model training runs on a cluster of machines where each worker reads shards from disk and "
           "writes checkpoints every hour so that a failure costs little time while the scheduler keeps queues short "
           "and the team measures throughput latency memory and cost before changing any default setting").split(),
    "de": ("die daten werden auf mehreren rechnern verarbeitet und jeder knoten liest seine teile von der platte "
           "während das team die kosten misst bevor eine einstellung geändert wird über größe und qualität").split(),
    "fr": ("les données sont traitées sur plusieurs machines et chaque nœud lit ses fragments depuis le disque "
           "pendant que l'équipe mesure le coût avant de changer un réglage élevé déjà très précis").split(),
    "ja": list("データは複数の計算機で処理されます各ノードはディスクから断片を読み込みチームは設定を変える前に費用を測定します"),
}
BOILERPLATE = {
    "nav": ["Home", "About us", "Products", "Pricing", "Blog", "Careers", "Contact", "Log in", "Sign up"],
    "cookie": "We use cookies to improve your experience. By continuing to browse you accept our cookie policy. Accept all",
    "sidebar": ["Related: Ten tips for faster builds", "Popular: Our year in review", "Subscribe to the newsletter",
                "Follow us on social media", "Sponsored: Cloud GPUs from $1/hour"],
    "footer": "Copyright 2024 Example Media Ltd. All rights reserved. Privacy policy | Terms of service | Imprint | Sitemap",
    "comments": "Leave a comment. Your email address will not be published. Required fields are marked. Post comment",
}
ENCODINGS = ("utf-8", "windows-1252", "iso-8859-1")


@dataclass
class Page:
    url: str
    html: bytes
    charset_header: str | None  # what the HTTP Content-Type says, if anything
    main_text: str  # the label: the article's title and paragraphs
    language: str
    robots: str = ""


def _sentence(rng: random.Random, language: str) -> str:
    words = WORDS[language]
    if language == "ja":
        return "".join(rng.choice(words) for _ in range(rng.randint(15, 40))) + "。"
    body = " ".join(rng.choice(words) for _ in range(rng.randint(8, 20)))
    return body[0].upper() + body[1:] + "."


def _paragraphs(rng: random.Random, language: str, count: int) -> list[str]:
    return [" ".join(_sentence(rng, language) for _ in range(rng.randint(2, 5))) for _ in range(count)]


def make_page(index: int, seed: int = 0, paragraphs: tuple[int, int] = (3, 8)) -> Page:
    """Page `index` of a deterministic synthetic crawl."""
    rng = random.Random(seed * 1_000_003 + index)
    language = rng.choices(list(WORDS), weights=[6, 1, 1, 1])[0]
    title = _sentence(rng, language).rstrip(".。")
    body = _paragraphs(rng, language, rng.randint(*paragraphs))
    encoding = "shift_jis" if language == "ja" and rng.random() < 0.5 else rng.choice(ENCODINGS) \
        if language != "ja" else "utf-8"
    declared = rng.choice(["header", "meta", "none"]) if encoding != "utf-8" else rng.choice(["header", "none"])
    container = rng.choice(["article", "main", "div"])
    robots = rng.choices(["", "noai", "noindex"], weights=[18, 1, 1])[0]
    teasers = "".join(f'<div class="teaser"><h4>{_sentence(rng, language)}</h4><p>{_sentence(rng, language)} '
                      f'{_sentence(rng, language)}</p><a href="/t/{k}">Read more</a></div>' for k in range(rng.randint(0, 3)))
    extra, extra_text = "", []
    if language == "en" and rng.random() < 0.25:  # a code block inside the article belongs to it
        code = "def shard_path(root, index):\n    return f\"{root}/shard-{index:05d}.bin\""
        extra, extra_text = f"<pre><code>{code}</code></pre>", [code]
    nav = "".join(f'<li><a href="/{w.lower().replace(" ", "-")}">{w}</a></li>' for w in BOILERPLATE["nav"])
    sidebar = "".join(f'<li><a href="/p/{i}">{s}</a></li>' for i, s in enumerate(BOILERPLATE["sidebar"]))
    meta = f'<meta charset="{encoding}">' if declared == "meta" else ""
    robots_tag = f'<meta name="robots" content="{robots}">' if robots else ""
    article = f"<h1>{title}</h1>" + "".join(f"<p>{p}</p>" for p in body) + extra
    main = (f'<{container} class="post-content" id="content">{article}</{container}>' if container != "div"
            else f'<div class="entry-content">{article}</div>')
    html = (f'<!DOCTYPE html><html lang="{language}"><head>{meta}{robots_tag}<title>{title} | Example</title>'
            '<style>body{font-family:sans-serif}.nav li{display:inline}</style>'
            '<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}</script></head>'
            f'<body><header><nav class="nav"><ul>{nav}</ul></nav></header>'
            f'<div class="cookie-banner"><p>{BOILERPLATE["cookie"]}</p></div>'
            f'<div class="layout">{main}<aside class="sidebar"><h3>More</h3><ul>{sidebar}</ul>{teasers}</aside></div>'
            f'<section class="comments"><form><p>{BOILERPLATE["comments"]}</p><textarea></textarea></form></section>'
            f'<footer><p>{BOILERPLATE["footer"]}</p></footer>'
            '<script>document.querySelectorAll("a").forEach(function(a){a.rel="noopener"})</script></body></html>')
    try:
        encoded = html.encode(encoding)
    except UnicodeEncodeError:  # e.g. "œ" has no ISO-8859-1 byte: such a page is published in UTF-8
        encoding, encoded = "utf-8", html.replace(f'charset="{encoding}"', 'charset="utf-8"').encode("utf-8")
    return Page(url=f"https://site{index % 97}.example.com/posts/{index}", html=encoded,
                charset_header=encoding if declared == "header" else None, main_text="\n".join([title, *body, *extra_text]),
                language=language, robots=robots)


def warc_record(page: Page, date: str = "2024-05-01T12:00:00Z", status: int = 200, content_type: str = "text/html",
                extra_http: str = "") -> bytes:
    """One WARC/1.0 response record holding the page's HTTP response."""
    charset = f"; charset={page.charset_header}" if page.charset_header else ""
    http = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Moved'}\r\nContent-Type: {content_type}{charset}\r\n"
            f"{extra_http}Content-Length: {len(page.html)}\r\n\r\n").encode() + page.html
    record_id = uuid.UUID(int=random.Random(page.url).getrandbits(128))
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {page.url}\r\nWARC-Date: {date}\r\n"
            f"WARC-Record-ID: <urn:uuid:{record_id}>\r\nContent-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {len(http)}\r\n\r\n").encode()
    return head + http + b"\r\n\r\n"


def write_warc(path: Path, records: list[bytes], compress: bool | None = None) -> Path:
    """A WARC file; gzipped record by record (as Common Crawl does) when the name ends in .gz."""
    compress = path.name.endswith(".gz") if compress is None else compress
    with open(path, "wb") as handle:
        for record in records:
            handle.write(gzip.compress(record, mtime=0) if compress else record)
    return path


def write_crawl(path: Path, pages: int, seed: int = 0) -> list[Page]:
    made = [make_page(i, seed) for i in range(pages)]
    write_warc(path, [warc_record(p) for p in made])
    return made

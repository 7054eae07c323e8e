"""WARC, WARC.gz and WET input (Common Crawl's formats), read with FastWARC (the resiliparse
project's maintained parser).

Each HTML response (status 200, text/html or xhtml) becomes a record whose text is the decoded
HTML, marked `format: html` for the `html_extract` step, with the page's metadata:

    url         WARC-Target-URI
    date        WARC-Date (the crawl time)
    language    <html lang>, else the Content-Language header (WET: WARC-Identified-Content-Language)
    robots      opt-outs the page declares: X-Robots-Tag header and <meta name="robots"/"googlebot">
                values such as noindex, noai, noimageai (lower-case, comma-separated)
    warc_record_id, source

WET conversion records are plain text already (`format: text`). The HTML is decoded with the HTTP
charset, else the one the page declares or resiliparse detects; undecodable bytes are replaced.
Non-HTML payloads, redirects and errors are skipped and counted; a truncated or corrupt file ends
its records with an input error naming the file and the byte offset, never a crash.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterator

from llmkit.errors import LlmkitError

WARC_SUFFIXES = (".warc", ".wet")
HTML_TYPES = ("text/html", "application/xhtml+xml")
HTML_LANG = re.compile(rb"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)", re.I)
META_ROBOTS = re.compile(rb"<meta\b[^>]*?\bname\s*=\s*[\"']?(?:robots|googlebot|ccbot)[\"']?[^>]*>", re.I)
META_CONTENT = re.compile(rb"\bcontent\s*=\s*[\"']([^\"']*)[\"']", re.I)
CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)")
HEAD_BYTES = 64 * 1024  # the <html lang> and <meta robots> tags live near the top


def is_warc(path: Path) -> bool:
    return path.name.removesuffix(".gz").endswith(WARC_SUFFIXES)


def _fastwarc():
    try:
        from fastwarc.warc import ArchiveIterator, WarcRecordType
    except ImportError:
        raise LlmkitError("reading WARC files needs FastWARC and Resiliparse: pip install 'llmkit[web]'") from None
    return ArchiveIterator, WarcRecordType


def read_warc(path: Path, text_field: str, report_error, skipped: Counter | None = None) -> Iterator[dict]:
    """The HTML (or WET text) records of one WARC file, in file order; report_error(location,
    message) is told of a truncated or corrupt file (the records before the damage are kept)."""
    ArchiveIterator, WarcRecordType = _fastwarc()
    skipped = skipped if skipped is not None else Counter()
    wanted = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
    offset = 0
    with open(path, "rb") as handle:
        try:
            for record in ArchiveIterator(handle, record_types=wanted, parse_http=False):
                offset = record.stream_pos
                block = record.reader.read()
                if len(block) < record.content_length:
                    raise EOFError(f"the record holds {len(block)} of its {record.content_length} bytes")
                converted = _record(record, block, record.record_type == WarcRecordType.conversion, text_field,
                                    str(path), skipped)
                if converted is not None:
                    yield converted
        except Exception as error:  # noqa: BLE001 - a corrupt or cut file: report and go on
            report_error(f"{path}@{offset}", f"WARC file is truncated or corrupt at this record "
                                             f"({type(error).__name__}: {error})")


def _record(record, block: bytes, conversion: bool, text_field: str, source: str, skipped: Counter) -> dict | None:
    headers = record.headers
    meta = {"url": headers.get("WARC-Target-URI", ""), "date": headers.get("WARC-Date", ""),
            "warc_record_id": headers.get("WARC-Record-ID", ""), "source": source}
    if conversion:  # WET: already text
        language = headers.get("WARC-Identified-Content-Language", "").split(",")[0]
        return {text_field: block.decode("utf-8", errors="replace"), "format": "text", **meta,
                "language": language, "robots": ""}
    status, http, body = _split_http(block) if block.startswith(b"HTTP/") else (200, {}, block)
    if status != 200:
        skipped[f"http_{status}"] += 1
        return None
    content_type = http.get("content-type", "text/html").lower()
    if not content_type.startswith(HTML_TYPES):
        skipped["not_html"] += 1
        return None
    head = body[:HEAD_BYTES]
    charset = CHARSET.search(content_type)
    html = decode_html(body, charset.group(1) if charset else None)
    language = HTML_LANG.search(head)
    return {text_field: html, "format": "html", **meta,
            "language": (language.group(1).decode() if language else
                         http.get("content-language", "").split(",")[0]).strip().lower(),
            "robots": _robots(head, http.get("x-robots-tag", ""))}


def _split_http(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, payload) of an HTTP response."""
    head, _, body = block.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = 0
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers, body


def decode_html(body: bytes, charset: str | None) -> str:
    """The page as text: the HTTP charset, else the declared or detected one; bad bytes replaced."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    encoding = charset or detect_encoding(body[:HEAD_BYTES])
    return bytes_to_str(body, encoding, errors="replace", fallback_encodings=("utf-8", "cp1252"))


def _robots(head: bytes, header: str) -> str:
    values = [v.strip().lower() for v in header.split(",") if v.strip()]
    for tag in META_ROBOTS.findall(head):
        content = META_CONTENT.search(tag)
        if content:
            values += [v.strip().lower() for v in content.group(1).decode("latin-1").split(",") if v.strip()]
    return ",".join(dict.fromkeys(values))

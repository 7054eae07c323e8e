"""Web input: WARC/WARC.gz/WET files the tests write (HTML with boilerplate, navigation, scripts,
several encodings, redirects, images, a truncated file) read with their metadata; main-text
extraction; URL block lists and robots opt-outs; the whole `data prepare` run on a crawl."""

import gzip
import json
from pathlib import Path

import pytest

from llmkit.cli import main
from llmkit.data.extraction_quality import precision_recall
from llmkit.data.sources import InputError, WorkUnit, read_unit
from llmkit.data.steps.web import HtmlExtract, HtmlExtractOptions, UrlFilter, UrlFilterOptions
from llmkit.data.synthetic_web import Page, make_page, warc_record, write_warc
from llmkit.data.warc import decode_html, read_warc

pytest.importorskip("fastwarc")


def _records(path: Path) -> tuple[list[dict], list]:
    errors = []
    return list(read_warc(path, "text", lambda where, message: errors.append((where, message)))), errors


@pytest.mark.parametrize("name", ["crawl.warc", "crawl.warc.gz"])
def test_html_responses_come_with_url_date_language_and_robots(tmp_path, name):
    pages = [make_page(i) for i in range(30)]
    records, errors = _records(write_warc(tmp_path / name, [warc_record(p) for p in pages]))
    assert errors == [] and len(records) == 30
    for page, record in zip(pages, records):
        assert record["url"] == page.url and record["date"] == "2024-05-01T12:00:00Z"
        assert record["language"] == page.language and record["robots"] == page.robots
        assert record["format"] == "html" and record["warc_record_id"].startswith("<urn:uuid:")


def test_every_encoding_is_decoded_declared_or_not():
    seen = set()
    extract = HtmlExtract(HtmlExtractOptions())
    extract.setup()
    for i in range(200):
        page = make_page(i)
        text, _ = extract(decode_html(page.html, page.charset_header), {"format": "html"})
        precision, recall = precision_recall(text, page.main_text)
        assert recall >= 0.99, (i, page.charset_header, page.language)  # no mojibake: every labelled word found
        seen.add((page.charset_header is None, page.language))
    assert (True, "de") in seen and (True, "fr") in seen and (False, "ja") in seen  # undeclared and declared


def test_redirects_errors_and_non_html_are_skipped_and_a_truncated_file_is_reported(tmp_path):
    page = make_page(1)
    image = Page(url="https://a.example/x.png", html=b"\x89PNG....", charset_header=None, main_text="", language="")
    body = [warc_record(page), warc_record(page, status=301), warc_record(image, content_type="image/png"),
            warc_record(make_page(2))]
    path = write_warc(tmp_path / "mixed.warc", body)
    records, errors = _records(path)
    assert [r["url"] for r in records] == [page.url, make_page(2).url] and errors == []
    cut = tmp_path / "cut.warc.gz"
    whole = b"".join(gzip.compress(r, mtime=0) for r in body)
    cut.write_bytes(whole[: len(whole) - 200])  # the last record's gzip member is cut short
    records, errors = _records(cut)
    assert [r["url"] for r in records] == [page.url] and len(errors) == 1 and "truncated" in errors[0][1]


def test_wet_conversion_records_are_text_with_the_identified_language(tmp_path):
    text = "Plain extracted text of a page.\nSecond line."
    payload = text.encode()
    record = (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: https://b.example/p\r\n"
              f"WARC-Date: 2024-02-02T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000001>\r\n"
              f"WARC-Identified-Content-Language: eng,fra\r\nContent-Type: text/plain\r\n"
              f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload + b"\r\n\r\n"
    records, _ = _records(write_warc(tmp_path / "x.warc.wet.gz", [record]))
    assert records == [{"text": text, "format": "text", "url": "https://b.example/p", "date": "2024-02-02T00:00:00Z",
                        "warc_record_id": "<urn:uuid:00000000-0000-0000-0000-000000000001>",
                        "source": str(tmp_path / "x.warc.wet.gz"), "language": "eng", "robots": ""}]


@pytest.mark.parametrize("extractor", ["resiliparse", "trafilatura"])
def test_extraction_keeps_the_article_and_drops_the_boilerplate(extractor):
    step = HtmlExtract(HtmlExtractOptions(extractor=extractor))
    step.setup()
    page = make_page(3)
    text, reason = step(decode_html(page.html, page.charset_header), {"format": "html"})
    assert reason is None and precision_recall(text, page.main_text)[1] >= 0.99
    for boilerplate in ("cookies to improve", "All rights reserved", "gtag", "Leave a comment", "Log in"):
        assert boilerplate not in text
    assert step("plain text", {"format": "text"}) == ("plain text", None)  # not a web page: unchanged
    assert step("<html><body><script>var a = 1;</script></body></html>", {"format": "html"}) == (None, "no_main_text")


def test_url_filter_block_lists_patterns_and_robots(tmp_path):
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("# domains and URL patterns\nspam.example\n*.example.org/ads/*\n")
    step = UrlFilter(UrlFilterOptions(blocklists=[str(blocklist)], patterns=[r"[?&]sessionid="]))
    step.setup()
    verdict = lambda url, robots="": step("t", {"url": url, "robots": robots})[1]
    assert verdict("https://spam.example/a") == "blocked_domain"
    assert verdict("http://www.spam.example/b") == "blocked_domain"  # subdomains too
    assert verdict("https://notspam.example/a") is None  # not a suffix match on the name
    assert verdict("https://news.example.org/ads/1") == "blocked_url"
    assert verdict("https://news.example.org/story/1") is None
    assert verdict("https://ok.example/p?sessionid=9") == "url_pattern"
    assert verdict("https://ok.example/p", "noindex,nofollow") == "robots_noindex"
    assert verdict("https://ok.example/p", "noai") == "robots_noai"
    assert step("t", {"text": "no url"}) == ("t", None)
    with pytest.raises(Exception, match="does not exist"):
        UrlFilter(UrlFilterOptions(blocklists=[str(tmp_path / "missing.txt")])).setup()


def test_data_prepare_curates_a_crawl_into_documents_with_metadata(tmp_path):
    pages = [make_page(i) for i in range(40)]
    crawl = write_warc(tmp_path / "crawl.warc.gz", [warc_record(p) for p in pages])
    out = tmp_path / "out"
    assert main(["data", "prepare", "--input", str(crawl), "--out", str(out), "--steps",
                 "html_extract,url_filter,normalize,exact_dedup", "--no-progress"]) == 0
    docs = [json.loads(line) for f in sorted((out / "docs").glob("*.jsonl")) for line in f.read_text().splitlines()]
    allowed = [p for p in pages if not p.robots]
    assert [d["url"] for d in docs] == [p.url for p in allowed]
    for doc, page in zip(docs, allowed):
        assert precision_recall(doc["text"], page.main_text)[1] >= 0.99 and "All rights reserved" not in doc["text"]
        assert doc["language"] == page.language and doc["date"] and "format" in doc
    stats = json.loads((out / "stats.json").read_text())
    removed = next(s for s in stats["steps"] if s["name"] == "url_filter")["removed"]
    assert sum(removed.values()) == len(pages) - len(allowed)


def test_read_unit_dispatches_warc_files(tmp_path):
    path = write_warc(tmp_path / "a.warc", [warc_record(make_page(0))])
    errors: list[InputError] = []
    records = list(read_unit(WorkUnit(0, str(path)), "text", errors))
    assert len(records) == 1 and records[0]["format"] == "html" and not errors

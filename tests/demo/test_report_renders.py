"""The lifecycle report opens in a real browser: headless Chromium (Debian's `chromium`, which
`make test` installs) renders report.html with all its images decoded and its tables laid out."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.xdist_group("demo")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
# appended to a copy of the report: once everything has loaded, count decoded images and tables
PROBE = """<script>window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute('data-render-check',
    `images ${decoded}/${images.length} tables ${document.querySelectorAll('table').length}`);
});</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs Debian's package)")
def test_report_renders_in_headless_chromium_with_its_images(demo_run, tmp_path):
    out, _ = demo_run
    page = (out / "report.html").read_text()
    assert page.count("<img ") == 4  # pre-training, SFT and DPO losses, the compression trade-off
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    dom = subprocess.run([CHROMIUM, *FLAGS, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'data-render-check="images 4/4 tables 2"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--screenshot={shot}", "--window-size=1200,2400", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image

    image = Image.open(shot).convert("L")
    dark = sum(1 for value in image.getdata() if value < 128)
    assert image.size == (1200, 2400) and dark > 10_000  # text, tables and plots were drawn

"""Headless Chromium (Debian's chromium and chromedriver, driven by Selenium) for the explorer site's tests."""

import json
import os
import shutil
import time
from collections import deque
from pathlib import Path
from urllib.parse import urldefrag

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def read_data(path: Path):
    """The payload of one of the site's data files (``captumHintData({...});``)."""
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("captumHintData(") and text.endswith(");\n"), path
    return json.loads(text[len("captumHintData("):-3])


def start_chromium(width: int = 1200, height: int = 900):
    """A headless Chromium session that keeps the browser's console log; skipped (failed under CI) without one."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        message = ("the site's browser tests need Debian's chromium and chromium-driver "
                   "(`apt-get install chromium chromium-driver`; make test installs them when run as root)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--allow-file-access-from-files"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def open_page(driver, url: str, timeout: float = 10.0) -> str:
    """Load ``url`` and wait until the page says it is drawn; returns ``body[data-ready]`` ("1", "error" or "")."""
    driver.get(url)
    stop = time.time() + timeout
    while time.time() < stop:
        state = driver.execute_script("return document.body ? (document.body.dataset.ready || '') : ''")
        if state:
            return state
        time.sleep(0.02)
    return ""


def page_problems(driver, url: str) -> list:
    """What is wrong with one page: not drawn, console errors, images that did not load."""
    problems = []
    state = open_page(driver, url)
    if state != "1":
        problems.append(f"{url}: not drawn (state {state!r})")
    for entry in driver.get_log("browser"):
        if entry["level"] in ("SEVERE", "WARNING"):
            problems.append(f"{url}: console {entry['level']}: {entry['message']}")
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    problems += [f"{url}: image not loaded: {src}" for src in broken]
    return problems


def crawl(driver, index: Path, limit: int = 5000):
    """Visit every page reachable by links from ``index``; returns (visited URLs, problems)."""
    start = index.resolve().as_uri()
    root = start.rsplit("/", 1)[0] + "/"
    queue, seen, problems = deque([start]), {start}, []
    while queue and len(seen) <= limit:
        url = queue.popleft()
        problems += page_problems(driver, url)
        for href in driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            href = urldefrag(href)[0]
            if not href.startswith(root):
                problems.append(f"{url}: a link leaves the site: {href}")
            elif href not in seen:
                seen.add(href)
                queue.append(href)
    return seen, problems

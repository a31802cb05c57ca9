"""Screenshots of the explorer site's four kinds of page (docs/img/explore_*.png), in headless Chromium.

    python scripts/site_screenshots.py hint-report/site            # the site `make demo` writes

Needs Debian's chromium and chromium-driver and Selenium (the dev extra).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from site_check import open_page, read_data, start_chromium  # noqa: E402

TARGET = Path(__file__).resolve().parents[1] / "docs" / "img"
WIDTH, MAX_HEIGHT = 1100, 1500


def main(site: Path) -> None:
    data = read_data(site / "data" / "site.js")
    concept = next((c["id"] for c in data["concepts"] if c["id"] == "bird.n.01"), data["concepts"][0]["id"])
    neuron = int(next(iter(data["multimodal"]), 0))
    image = next((i for i, r in enumerate(data["recognized"]) if r), 0)  # an image the model recognizes
    pages = {"index": "index.html", "concept": f"concept.html?c={concept}", "neuron": f"neuron.html?n={neuron}",
             "image": f"image.html?i={image}"}
    driver = start_chromium(WIDTH, 900)
    try:
        for name, page in pages.items():
            assert open_page(driver, f"{site.resolve().as_uri()}/{page}") == "1", page
            time.sleep(0.5)  # images decode
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(WIDTH, min(height + 140, MAX_HEIGHT))
            time.sleep(0.2)
            driver.save_screenshot(str(TARGET / f"explore_{name}.png"))
            print(f"docs/img/explore_{name}.png: {page}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "hint-report/site"))

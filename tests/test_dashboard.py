"""The classroom dashboard in a real browser.

The test starts ``loyalty-sim dashboard`` itself on 127.0.0.1 and a free port, opens it
in Debian's chromium (driven by Playwright, never a downloaded browser), moves the price
slider, resets the model so the lever takes effect, steps it, and checks that the lever
reached the model and that the charts changed. It saves a screenshot in its temporary
folder. It is skipped only when no chromium is installed (``scripts/install-chromium.sh``
installs it; CI runs that first).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CHARTS = ("satisfaction", "loyalty", "retention", "profit", "network")

needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium browser installed (scripts/install-chromium.sh installs Debian's)")


def test_levers_set_the_focal_firm_and_switch_programmes():
    from sim.api import load_scenario
    from sim.dashboard import ClassroomModel, lever_defaults

    starter = load_scenario("scenarios/starter.yaml")
    defaults = lever_defaults(starter)
    assert defaults["price"] == starter.firms["focal"].price.list
    assert defaults["points_rate"] == starter.firms["focal"].rewards.points_rate > 0
    model = ClassroomModel("starter", price=12.5, points_rate=0.0, community=0.9, switching_cost=30, population=600)
    focal = model.config.firms["focal"]
    assert focal.price.list == 12.5 and not focal.rewards.enabled
    assert focal.community.enabled and focal.community.care == 0.9 and focal.lock_in.ecosystem_per_year == 30
    assert model.population.size == 600
    for _ in range(model.n_steps + 3):  # the dashboard's Step may go past the end: nothing happens there
        model.step()
    assert model.steps == model.n_steps and not model.running
    assert len(model.metrics_frame()) == (model.n_steps + 1) * len(model.firm_names)


def test_lessons_can_be_picked():
    from sim.dashboard import scenario_choices

    choices = scenario_choices()
    assert "starter" in choices and "lesson: rewards_end" in choices
    assert all(path.is_file() for path in choices.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("dashboard") / "server.log"
    env = {**os.environ, "HOME": str(log.parent)}  # Solara keeps a small state folder in the home folder
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "sim", "dashboard", "--port", str(port), "--population", "1500"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"the dashboard server stopped (exit {server.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer at {url} within 120 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def _chart_pixels(page) -> dict[str, bytes]:
    """What each chart shows, as the browser draws it (a PNG of the chart's image element)."""
    return {name: page.locator(f".loyalty-chart-{name} img").first.screenshot() for name in CHARTS}


def _levers_text(page) -> str:
    return page.get_by_text(re.compile(r"Focal firm \w+: price")).first.inner_text()


@needs_browser
def test_dashboard_slider_step_and_charts(dashboard, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    url, log = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on("response", lambda response: failed.append(f"{response.status} {response.url}") if response.status >= 400 else None)
            page.goto(url, wait_until="domcontentloaded")
            step = page.get_by_role("button", name="Step")
            step.wait_for(timeout=90_000)
            for name in CHARTS:
                page.locator(f".loyalty-chart-{name} img").first.wait_for(timeout=60_000)
            before = _chart_pixels(page)
            assert "price 10," in _levers_text(page) and "step 0 of" in _levers_text(page)

            # move the price slider from 10 up to 12, then rebuild the model with it
            slider = page.locator(".v-input").filter(has_text=re.compile(r"^\s*Price")).locator("[role=slider]").first
            slider.focus()
            for _ in range(40):  # one press is one step of 0.1; stop at 12 (a press may be lost while the page redraws)
                if float(slider.get_attribute("aria-valuenow") or 0) >= 12 - 1e-9:
                    break
                slider.press("ArrowRight")
                page.wait_for_timeout(50)
            assert float(slider.get_attribute("aria-valuenow")) == pytest.approx(12)
            page.wait_for_timeout(500)  # the slider's value reaches the server before Reset does (one channel)
            page.get_by_role("button", name="Reset").click()
            expect(page.get_by_text(re.compile(r"Focal firm \w+: price 12,"))).to_be_visible(timeout=30_000)

            for expected in (1, 2, 3):
                step.click()
                expect(page.get_by_text(re.compile(rf"step {expected} of \d+"))).to_be_visible(timeout=30_000)
            page.wait_for_timeout(500)
            after = _chart_pixels(page)
            unchanged = [name for name in CHARTS if after[name] == before[name]]
            assert not unchanged, f"charts did not change after three steps: {unchanged}"
            assert not failed, f"requests that failed (every asset must come from the local server): {failed}"
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        finally:
            browser.close()
    assert "Traceback" not in log.read_text(), log.read_text()

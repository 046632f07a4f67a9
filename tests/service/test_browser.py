"""The web inbox in a real browser: Playwright driving Debian's chromium
(its own browser download cannot be fetched here). Two agents wait; one card
is approved and the other denied with a reason, from the page; both runs go
on. A card full of HTML and escape sequences is inert. On a phone-sized
screen the inbox is usable (a screenshot is kept in the test's directory)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LUMINAGUARD, write_playbook
from tests.service.test_web_inbox import Service, put_card, service  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def inbox_run(workspace: Path, playbook: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LUMINAGUARD, "run", "write it", "--workspace", str(workspace), "--playbook",
         str(playbook), "--approver", "inbox"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_two_agents_wait_and_the_page_decides_both(
    service: Service,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    runs = []
    for name in ("a", "b"):
        ws = tmp_path / name
        ws.mkdir()
        pb = write_playbook(
            tmp_path / f"{name}.json",
            [
                {
                    "tool_calls": [
                        {
                            "name": "write_file",
                            "arguments": {"path": f"{name}.txt", "content": name},
                        }
                    ]
                },
                {"content": "done"},
            ],
        )
        runs.append((ws, inbox_run(ws, pb)))
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{service.port}/?token={service.token}")
        # The page updates itself as the two cards arrive (waited for with a
        # locator: the CSP refuses Playwright's evaluated functions, rightly).
        page.locator("section.card").nth(1).wait_for(timeout=60_000)
        # A card that landed while the page was loading reloads it once more
        # (its event stream says so within WATCH_S): let that settle first.
        page.wait_for_timeout(500)
        page.locator("section.card").nth(1).wait_for()
        # Each decision leads to the inbox again (waited for by what it says:
        # a reload the event stream makes meanwhile is a navigation too).
        page.locator("section.card").first.get_by_role("button", name="Approve", exact=True).click()
        page.get_by_text("Approvals waiting: 1").wait_for(timeout=30_000)
        card = page.locator("section.card").first
        card.get_by_placeholder("why (optional)").fill("not this one")
        card.get_by_role("button", name="Deny").click()
        page.get_by_text("Approvals waiting: 0").wait_for(timeout=30_000)
        outputs = [run.communicate(timeout=60) for _, run in runs]
    finally:
        for _, run in runs:
            run.kill()
    written = [(ws / f"{ws.name}.txt").exists() for ws, _ in runs]
    assert sorted(written) == [False, True], outputs  # one approved, one denied
    assert all(run.returncode == 0 for _, run in runs), outputs
    assert any("denied by" in out and "not this one" in out for out, _ in outputs), outputs


def test_a_card_of_html_and_escapes_is_inert_and_the_phone_view_works(
    service: Service,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    put_card()
    page = browser.new_page(viewport={"width": 390, "height": 844})
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    page.goto(f"http://127.0.0.1:{service.port}/?token={service.token}")
    scripts = page.locator("script")
    assert scripts.count() == 1 and scripts.get_attribute("src") == "/live.js"
    assert page.locator("b").count() == 0
    assert "<script>alert(1)</script>" in page.inner_text("pre")  # shown as text
    assert alerts == []
    approve = page.get_by_role("button", name="Approve", exact=True)
    box = approve.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390  # reachable without side-scrolling
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    page.screenshot(path=str(tmp_path / "inbox-phone.png"), full_page=True)


def test_the_page_refuses_a_browser_without_the_token(
    service: Service,  # noqa: F811
    browser: Any,
) -> None:
    page = browser.new_page()
    response = page.goto(f"http://127.0.0.1:{service.port}/")
    assert response is not None and response.status == 401
    response = page.goto(f"http://127.0.0.1:{service.port}/?token=guess")
    assert response is not None and response.status == 403


def test_a_new_card_appears_on_an_open_page_without_a_reload(
    service: Service,  # noqa: F811
    browser: Any,
) -> None:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{service.port}/?token={service.token}")
    assert page.locator("section.card").count() == 0
    page.wait_for_timeout(300)  # the page's event stream is open
    item = put_card()
    page.wait_for_selector(f"#card-{item}", timeout=10_000)


def test_a_running_runs_page_follows_its_journal(
    service: Service,  # noqa: F811
    browser: Any,
    workspace: Path,
    tmp_path: Path,
) -> None:
    import json
    import re

    from tests.test_cli import lg

    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "n.txt", "content": "n"}}
                ]
            },
            {"content": "done"},
        ],
    )
    run = inbox_run(workspace, pb)
    try:
        deadline = time.monotonic() + 60
        card = None
        while card is None:
            assert time.monotonic() < deadline, "the card never reached the inbox"
            page_text = service.signed_in("GET", "/").read_body  # type: ignore[attr-defined]
            card = re.search(r"id='card-(\d+)'", page_text)
            time.sleep(0.1)
        [listed] = json.loads(lg("audit", "list", "--json").stdout)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{service.port}/?token={service.token}")
        page.goto(f"http://127.0.0.1:{service.port}/runs/{listed['id']}")
        assert "run_finished" not in page.content()
        page.wait_for_timeout(300)  # its event stream is open
        service.decide(int(card.group(1)), "approve")
        page.wait_for_selector("text=run_finished", timeout=20_000)  # no reload by hand
        run.communicate(timeout=60)
    finally:
        run.kill()


def test_a_runs_page_adds_each_record_as_text_without_a_reload(
    service: Service,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    from luminaguard.audit.run import RunRecorder
    from tests.service.test_web_inbox import data_dir

    recorder = RunRecorder(data_dir(), task="follow", workspace=tmp_path, model="scripted")
    page = browser.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    loads: list[str] = []
    page.goto(f"http://127.0.0.1:{service.port}/?token={service.token}")
    page.goto(f"http://127.0.0.1:{service.port}/runs/{recorder.run_id}")
    page.on("load", lambda: loads.append("load"))
    page.wait_for_timeout(300)  # its event stream is open
    recorder.record("user", {"content": "<img src=x onerror=alert(1)><b>bold</b> step one"})
    page.wait_for_selector("#journal pre:has-text('step one')", timeout=10_000)
    assert loads == []  # added to the page, not a reload
    assert page.locator("#journal b").count() == 0 and page.locator("#journal img").count() == 0
    assert "<b>bold</b>" in page.locator("#journal pre").last.inner_text()
    recorder.finish("finished", {})
    page.wait_for_selector("text=the journal verifies", timeout=10_000)  # reloaded: its verdict
    assert alerts == []


def test_a_side_by_side_diff_fits_a_phone(
    service: Service,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    from luminaguard.core.effects import unified_diff

    old = "".join(f"line {i}: " + "word " * 20 + "\n" for i in range(20))
    new = old.replace("line 3:", "line three, rather longer than before:")
    put_card(modified=[{"path": "notes.md", "diff": unified_diff(old, new, "notes.md")}])
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"http://127.0.0.1:{service.port}/?token={service.token}")
    page.goto(f"http://127.0.0.1:{service.port}/?diff=split")
    assert page.locator("table.diff td.del").count() == 1
    assert page.locator("table.diff td.add").count() == 1
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    page.screenshot(path=str(tmp_path / "split-diff-phone.png"), full_page=True)

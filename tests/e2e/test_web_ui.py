"""The web UI in a real headless Chromium against a real server on the default model.

Flows: search -> feature page -> add to variant -> a steered streamed reply that differs from the base
one; a saved variant reloads from its link; the inspector's heatmap; contrast -> one click adds a
feature; the API-key field in keyed mode. Each view is saved as a screenshot for review (in a pytest
temporary folder; ``STEERLAB_SCREENSHOTS=docs/screenshots`` refreshes the README's pictures). The browser
tests skip (saying why) when Chromium or Playwright is missing; the first two tests need neither.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from steerlab.steering.controller_json import Controller
from tests.default_features import FRENCH
from tests.e2e.conftest import screenshot_folder

PROMPT = "Tell me about your weekend."


def _api(live_server, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(
        method, f"{live_server.url}{path}", headers={"Authorization": f"Bearer {live_server.key}"}, timeout=120, **kw
    )


def _expect():
    from playwright.sync_api import expect

    return expect


def _send(page, prompt: str = PROMPT) -> tuple[str, str]:
    """Send a message from the playground and wait until both streamed replies are complete."""
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")  # Enter sends (Shift+Enter would add a line)
    texts = []
    for side in ("base", "variant"):
        reply = page.locator(f"#log-{side} .msg.assistant").last
        _expect()(reply).to_have_attribute("data-done", "true", timeout=120_000)
        assert reply.locator(".note").filter(has_text="Error").count() == 0, reply.inner_text()
        texts.append(reply.locator(".text").inner_text())
    return texts[0], texts[1]


def _feature_database_or_skip(live_server) -> None:
    r = _api(live_server, "GET", "/v1/features/search", params={"q": "French", "top_k": 5})
    if r.status_code == 404 and "no feature database" in r.text:
        pytest.skip(
            "the server has no feature database for the bundled SAE (features.db next to it); "
            "search and feature pages cannot be shown"
        )
    assert r.status_code == 200, r.text


def test_ui_is_served_without_shadowing_the_api(live_server):
    page = httpx.get(f"{live_server.url}/")
    assert page.status_code == 200 and '<script type="module" src="js/main.js">' in page.text
    script = httpx.get(f"{live_server.url}/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache"  # no stale modules after an upgrade
    # The mount at "/" comes after the API: API routes answer as before, unknown ones with the JSON error.
    assert httpx.get(f"{live_server.url}/health").json()["status"] == "ok"
    missing = _api(live_server, "GET", "/v1/no-such-route")
    assert missing.status_code == 404 and "error" in missing.json()
    assert httpx.get(f"{live_server.url}/v1/models").status_code == 401  # still keyed


def test_screenshots_stay_out_of_the_repository_unless_asked(tmp_path_factory, tmp_path, monkeypatch):
    repository = Path(__file__).resolve().parents[2]
    monkeypatch.delenv("STEERLAB_SCREENSHOTS", raising=False)
    assert repository not in screenshot_folder(tmp_path_factory).resolve().parents
    monkeypatch.setenv("STEERLAB_SCREENSHOTS", str(tmp_path / "docs" / "screenshots"))
    assert screenshot_folder(tmp_path_factory) == tmp_path / "docs" / "screenshots"


def test_key_field_and_keyboard_navigation(open_page, live_server, screenshot):
    page = open_page(with_key=False)
    page.goto("/")
    expect = _expect()
    expect(page).to_have_url(re.compile(r"#/search$"))
    key = page.locator("#api-key")
    expect(key).to_be_visible()  # keyed server, no key stored yet: ask for one
    # Keyboard: Tab reaches the skip link first, then the brand and the navigation, in reading order.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator('#nav a[href="#/search"]')).to_be_focused()
    key.fill(live_server.key)
    key.press("Enter")
    expect(page.locator("#key-state")).to_have_text("key: e2e")
    assert page.evaluate("localStorage.getItem('steerlab.apiKey')") == live_server.key


def test_open_mode_needs_no_key(browser, open_mode_url):
    expect = _expect()
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    try:
        page = context.new_page()
        page.goto(f"{open_mode_url}/#/playground")
        expect(page.locator("#key-state")).to_have_text("open mode (no key needed)")
        assert page.locator("#api-key").count() == 0
    finally:
        context.close()


def test_search_feature_page_add_to_variant_and_steer(ui, live_server, screenshot):
    _feature_database_or_skip(live_server)
    expect = _expect()
    ui.goto("/#/search")
    ui.fill("#search-q", "French")
    ui.press("#search-q", "Enter")
    rows = ui.locator(".search-results tbody tr")
    expect(rows.first).to_be_visible()
    expect(ui).to_have_url(re.compile(r"#/search\?q=French"))
    # the default evidence: the shipped database has context vectors, so labels propose and contexts decide
    expect(rows.first).to_contain_text("label+contexts")
    screenshot(ui, "search")

    index = int(rows.first.get_attribute("data-index"))
    rows.first.locator(".feature-link").click()
    expect(ui).to_have_url(re.compile(rf"#/feature/{index}$"))
    expect(ui.locator(".example").first).to_be_visible()  # top examples, tokens shaded by activation
    assert ui.locator(".example .tok.fired").count() > 0
    expect(ui.locator("svg.histogram")).to_be_visible()
    screenshot(ui, "feature")

    ui.fill("#add-value", "0.8")  # a search hit nudged in Ember's range (issue 14: was 2, old unit)
    ui.click("#add-to-variant")
    expect(ui.locator("#variant-count")).to_have_text("1")
    ui.click('#nav a[href="#/playground"]')
    expect(ui.locator(f'.edit[data-index="{index}"]')).to_be_visible()
    base, steered = _send(ui)
    assert base and steered and steered != base
    screenshot(ui, "playground")


def test_playground_streams_steered_reply_saves_and_reloads_from_link(ui, open_page, live_server, screenshot):
    expect = _expect()
    ui.goto("/#/playground")
    ui.fill("#add-index", str(FRENCH))
    ui.press("#add-index", "Enter")
    edit = ui.locator(f'.edit[data-index="{FRENCH}"]')
    expect(edit).to_be_visible()
    edit.locator("input.value").fill("0.6")
    edit.locator("input.value").press("Tab")  # a change event: the slider follows
    assert edit.locator("input.slider").input_value() == "0.6"
    # A conditional rule and an abort rule, built from the form (thresholds no token reaches).
    ui.fill("#rule-if", str(FRENCH))
    ui.fill("#rule-threshold", "50")
    ui.fill("#rule-then", "7")
    ui.fill("#rule-value", "0.25")
    ui.click(".rule-form button[type=submit]")
    ui.select_option("#rule-kind", "abort")
    ui.fill("#rule-if", "9")
    ui.click(".rule-form button[type=submit]")
    expect(ui.locator(".rule")).to_have_count(2)

    base, steered = _send(ui)
    assert base and steered and steered != base

    ui.fill("#variant-name", "french e2e")
    ui.click("#save-variant")
    variant_id = ui.locator("#variant-id").inner_text()
    assert variant_id.startswith("v-")
    expect(ui).to_have_url(re.compile(rf"#/playground\?variant={variant_id}$"))
    link = ui.locator("#share-link").input_value()
    screenshot(ui, "playground-saved")

    saved = _api(live_server, "GET", f"/v1/variants/{variant_id}").json()
    controller = saved["controller"]
    assert saved["name"] == "french e2e"
    (edit_json,) = controller["interventions"]
    assert (edit_json["mode"], edit_json["value"]) == ("nudge", 0.6)
    assert edit_json["features"]["features"][0]["index_in_sae"] == FRENCH
    when, abort = controller["scopes"]
    assert when["conditionals"]["conditionals"][0]["operator"] == ">" and when["event_name"] is None
    assert when["controller"]["interventions"][0]["mode"] == "pin"
    assert abort["event_name"] == "abort_f9" and abort["controller"]["interventions"] == []

    # Someone else opens the link: a fresh browser (own storage) restores the same variant.
    other = open_page()
    other.goto(link)
    restored = other.locator(f'.edit[data-index="{FRENCH}"]')
    expect(restored).to_be_visible()
    expect(restored.locator("input.value")).to_have_value("0.6")
    expect(other.locator(".rule")).to_have_count(2)
    expect(other.locator("#variant-name")).to_have_value("french e2e")
    # The server stores the controller as parsed (nested controllers named from their content, as the
    # goodfire SDK names them); the page's JSON, parsed the same way, must be that controller.
    shown = Controller.from_json(other.locator("#controller-json").input_value()).json()
    assert shown["scopes"] == controller["scopes"]
    screenshot(other, "playground-loaded")


def test_abort_rule_stops_only_the_variant_reply(ui):
    expect = _expect()
    ui.goto("/#/playground")
    ui.fill("#add-index", str(FRENCH))
    ui.press("#add-index", "Enter")
    edit = ui.locator(f'.edit[data-index="{FRENCH}"] input.value')
    edit.fill("0.6")
    edit.press("Tab")
    ui.select_option("#rule-kind", "abort")  # abort when the French feature fires (the nudge makes it)
    ui.fill("#rule-if", str(FRENCH))
    ui.fill("#rule-threshold", "0.5")
    ui.click(".rule-form button[type=submit]")
    expect(ui.locator(".rule")).to_have_count(1)
    ui.fill("#max-tokens", "32")
    ui.press("#max-tokens", "Tab")
    base, steered = _send(ui)
    expect(ui.locator("#log-variant .msg.assistant .note").last).to_have_text(f"Aborted by rule (abort_f{FRENCH}).")
    assert ui.locator("#log-base .note").filter(has_text="Aborted").count() == 0
    assert len(steered) < len(base)


def test_inspector_heatmap_token_features_and_feature_link(ui, screenshot):
    expect = _expect()
    ui.goto("/#/inspect")
    ui.fill("#inspect-text", "user: Bonjour ! Comment vas-tu ?\nassistant: Très bien, merci beaucoup.")
    ui.click("#inspect-run")
    tokens = ui.locator("#heatmap .tok")
    expect(tokens.first).to_be_visible()
    assert tokens.count() > 10
    # Shaded by the conversation's top feature, from its activation on every token (compute-features).
    expect(ui.locator("#heatmap")).to_have_attribute("data-exact", "true")
    assert ui.locator("#heatmap .tok.fired").count() > 0
    tokens.filter(has_text="Bon").first.click()
    detail = ui.locator("#token-detail tbody tr")
    expect(detail.first).to_be_visible()
    # Keyboard: the arrow keys move along the tokens, Enter picks one.
    ui.keyboard.press("ArrowRight")
    ui.keyboard.press("Enter")
    expect(ui.locator("#token-detail h3")).to_contain_text("jour")
    screenshot(ui, "inspector")
    detail.first.locator(".feature-link").click()
    expect(ui).to_have_url(re.compile(r"#/feature/\d+$"))


def test_contrast_one_click_adds_to_variant(ui, screenshot):
    expect = _expect()
    ui.goto("/#/contrast")
    ui.click("#contrast-run")  # the example sets: pirate speech vs plain speech
    first = ui.locator(".contrast-out tbody tr").first
    expect(first).to_be_visible()
    first.locator("button", has_text="+0.5").click()
    expect(ui.locator("#variant-count")).to_have_text("1")
    screenshot(ui, "contrast")


def test_autosteer_shows_its_choice_and_adds_exactly_that(ui, screenshot):
    expect = _expect()
    ui.goto("/#/playground")
    ui.fill("#autosteer-goal", "speak French")
    ui.press("#autosteer-goal", "Enter")
    outcome = ui.locator(".autosteer-out li, .autosteer-out .autosteer-none").first
    expect(outcome).to_be_visible(timeout=180_000)  # tens of seconds of search
    # the UI's job: show what AutoSteer chose and put exactly that in the variant (whether a search finds
    # an edit that beats the unsteered replies is AutoSteer's, tested in tests/unit/analysis)
    added = ui.locator(".autosteer-out li").count()
    assert ui.locator(".edit").count() == added
    if not added:
        expect(ui.locator(".autosteer-none")).to_contain_text("No edit beat the unsteered replies")
    screenshot(ui, "autosteer")

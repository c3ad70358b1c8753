"""The playground's guard form in a real headless Chromium against a real server on the default model: a
classifier condition (the shipped ``jailbreak``) set from the form goes out as the controller JSON the
server accepts, aborts a held-out jailbreak on the server while the base reply streams, pins features, and
bad input (a threshold outside [0, 1], an unknown classifier) comes back as the server's 400 naming the
field, shown on the page."""

from __future__ import annotations

import json
import re

import pytest

ORDINARY = "What is the capital of France?"


def _expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture(scope="module")
def jailbreak(flagged_jailbreak) -> str:
    return flagged_jailbreak


def _controller(page) -> dict:
    details = page.locator("details.panel").filter(has_text="Controller JSON")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    return json.loads(page.input_value("#controller-json"))


def _send(page, prompt: str) -> dict[str, dict]:
    """Send from the playground; wait for both replies; their text and note."""
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")
    out = {}
    for side in ("base", "variant"):
        reply = page.locator(f"#log-{side} .msg.assistant").last
        _expect()(reply).to_have_attribute("data-done", "true", timeout=180_000)
        note = reply.locator(".note")
        text = reply.locator(".text").inner_text()
        out[side] = {"text": text, "note": note.last.inner_text() if note.count() else ""}
    return out


def steered_chat(response) -> bool:
    """The variant side's chat request (the base side's carries no controller)."""
    return response.url.endswith("/v1/chat/completions") and "controller" in (response.request.post_data or "")


def _add_guard(page, threshold: str, action: str = "abort", features: str = "", value: str = "1") -> None:
    expect = _expect()
    expect(page.locator("#guard-classifier option[value=jailbreak]")).to_have_count(1)  # the list has loaded
    expect(page.locator("#guard-classifier option[value=jailbreak-sae]")).to_have_count(1)  # shipped beside it
    assert page.input_value("#guard-classifier") == "jailbreak"  # the default guard is the shipped default
    page.select_option("#guard-classifier", "jailbreak")
    page.select_option("#guard-op", ">")
    page.fill("#guard-threshold", threshold)
    page.select_option("#guard-action", action)
    if action == "pin":
        page.fill("#guard-features", features)
        page.fill("#guard-value", value)
    page.click(".guard-form button[type=submit]")


def test_guard_form_aborts_a_jailbreak_on_the_server_and_leaves_an_ordinary_question(ui, jailbreak, screenshot):
    expect = _expect()
    ui.goto("/#/playground")
    ui.fill("#max-tokens", "16")
    ui.press("#max-tokens", "Tab")
    _add_guard(ui, "0.9")
    rule = ui.locator(".rule")
    expect(rule).to_have_count(1)
    expect(rule).to_contain_text("Guard: abort when jailbreak > 0.9")
    scope = _controller(ui)["scopes"][0]
    assert scope["conditionals"]["conditionals"] == [{"classifier": "jailbreak", "operator": ">", "right_hand": 0.9}]
    assert scope["abort"] is True and scope["event_name"] == "guard_jailbreak"
    assert scope["controller"]["interventions"] == []

    replies = _send(ui, jailbreak)
    assert replies["base"]["text"].strip() and "Error" not in replies["base"]["note"]
    assert replies["variant"]["text"] == ""  # stopped on the server before the first token
    assert replies["variant"]["note"] == "Aborted by rule (guard_jailbreak)."
    screenshot(ui, "playground-guard")

    # The guard reads the whole conversation (the jailbreak is still in it): a new chat for the ordinary question.
    ui.click("text=Clear chat")
    replies = _send(ui, ORDINARY)
    assert replies["variant"]["text"] == replies["base"]["text"] and replies["variant"]["text"].strip()
    assert "Abort" not in replies["variant"]["note"] and "Error" not in replies["variant"]["note"]

    # The JSON round trip keeps it a guard the form shows (not an opaque scope), and a saved variant takes it.
    ui.click("text=Apply JSON")
    expect(ui.locator(".rule")).to_contain_text("Guard: abort when jailbreak > 0.9")
    ui.click("#save-variant")
    expect(ui.locator("#variant-id")).to_have_text(re.compile(r"^v-"))


def test_guard_form_pins_features_when_the_score_crosses(ui):
    expect = _expect()
    ui.goto("/#/playground")
    ui.fill("#max-tokens", "8")
    ui.press("#max-tokens", "Tab")
    _add_guard(ui, "0.5", action="pin", features="2021, 2971", value="1")
    expect(ui.locator(".rule")).to_contain_text("Guard: when jailbreak > 0.5 pin")
    scope = _controller(ui)["scopes"][0]
    assert scope["conditionals"]["conditionals"][0]["classifier"] == "jailbreak"
    assert "abort" not in scope and scope["event_name"] is None
    (intervention,) = scope["controller"]["interventions"]
    assert intervention["mode"] == "pin" and intervention["value"] == 1
    assert [f["index_in_sae"] for f in intervention["features"]["features"]] == [2021, 2971]
    replies = _send(ui, ORDINARY)  # the server compiles and runs it
    assert "Error" not in replies["variant"]["note"], replies["variant"]["note"]
    # A feature list that is not indices is refused by the form itself, naming what it wants.
    ui.fill("#guard-features", "refusal")
    ui.click(".guard-form button[type=submit]")
    expect(ui.locator("#status")).to_contain_text("Name the features to pin")
    expect(ui.locator(".rule")).to_have_count(1)


def test_guard_bad_threshold_and_unknown_classifier_are_the_servers_400_naming_the_field(ui):
    expect = _expect()
    ui.goto("/#/playground")
    ui.fill("#max-tokens", "4")
    ui.press("#max-tokens", "Tab")
    _add_guard(ui, "1.5")
    with ui.expect_response(steered_chat) as response:
        replies = _send(ui, ORDINARY)
    assert response.value.status == 400
    note = replies["variant"]["note"]
    assert "scopes[0].conditionals.conditionals[0].right_hand" in note and "[0, 1]" in note, note
    assert "Error" not in replies["base"]["note"]  # the base side is unaffected

    # Saving is refused the same way, and nothing is stored.
    with ui.expect_response(lambda r: r.url.endswith("/v1/variants")) as response:
        ui.click("#save-variant")
    assert response.value.status == 400
    expect(ui.locator("#status")).to_contain_text("right_hand")
    assert ui.locator("#variant-id").count() == 0

    # An unknown classifier (a controller pasted as JSON): the field and the names a condition may use.
    controller = _controller(ui)
    controller["scopes"][0]["conditionals"]["conditionals"][0].update(classifier="jailbrake", right_hand=0.9)
    ui.fill("#controller-json", json.dumps(controller))
    ui.click("text=Apply JSON")
    expect(ui.locator(".rule")).to_contain_text("jailbrake")
    replies = _send(ui, ORDINARY)
    note = replies["variant"]["note"]
    assert "scopes[0].conditionals.conditionals[0].classifier" in note and "jailbrake" in note, note
    assert "jailbreak" in note.replace("jailbrake", "")  # the allowed names

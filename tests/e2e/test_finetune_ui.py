"""The web UI's view of fine-tuning runs, in a real headless Chromium against the real server: runs written
by a real (tiny) ``Finetuner`` into the server's STEERLAB_FINETUNE_DIR are listed, their dials (watched
features, losses, the SAE's fit) plotted and tabled with the values of their metrics.jsonl, a run still
training is re-read while its page is open, and a hostile run name shows an error, never a file."""

from __future__ import annotations

import json
import re

import pytest

from steerlab.models.loader import LoadedModel
from steerlab.training.data import tokenize_all
from steerlab.training.finetune import FinetuneConfig, Finetuner, split_examples
from steerlab.training.plots import read_metrics
from tests.conftest import make_tiny_llama
from tests.unit.steering.conftest import make_tiny_sae
from tests.unit.training.conftest import conversations


def _expect():
    from playwright.sync_api import expect

    return expect


def _fmt(x: float, digits: int = 3) -> str:
    """The UI's fmt() (dom.js): Number(x.toFixed(3)).toString(), or x.toExponential(1) when tiny."""
    if x != 0 and abs(x) < 10**-digits:
        mantissa, exponent = f"{x:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"  # JS writes 1.3e-4 where Python writes 1.3e-04
    text = repr(round(x, digits))
    return text[:-2] if text.endswith(".0") else text


@pytest.fixture(scope="module")
def runs(live_server, tiny_tokenizer):
    """Two real tiny runs in the server's fine-tuning folder: one finished (model saved), one not."""
    root = live_server.finetune_dir
    made = (("tiny-ablate", True, {"ablate": [3, 4], "watch": [3, 4, 7]}), ("tiny-steer", False, {"steer": {5: 1.5}}))
    for name, save, knobs in made:
        lm = LoadedModel(name="tiny-llama", model=make_tiny_llama(len(tiny_tokenizer)), tokenizer=tiny_tokenizer)
        steps = {"max_steps": 6, "batch_size": 4, "eval_every": 3, "save_every": 3, "warmup_steps": 1}
        cfg = FinetuneConfig(out=str(root / name), probe_size=4, **steps, **knobs)
        train, ev = split_examples(tokenize_all(tiny_tokenizer, conversations(24), 128), 0.2, 0)
        tuner = Finetuner(lm, make_tiny_sae(), train, ev, cfg, progress=False)
        tuner.run()
        if save:
            tuner.save_model()
    return root


def test_runs_list_links_to_a_runs_dials(ui, runs, screenshot):
    expect = _expect()
    ui.goto("/#/finetune")
    table = ui.locator("#finetune-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    row = table.locator("tr", has_text="tiny-ablate")
    expect(row).to_contain_text("ablate 3,4")
    expect(row).to_contain_text("6 / 6")
    expect(row).to_contain_text("finished")
    expect(table.locator("tr", has_text="tiny-steer")).to_contain_text("steer 5=1.5")
    expect(ui.locator('#nav a[href="#/finetune"]')).to_have_attribute("aria-current", "page")
    screenshot(ui, "finetune-runs")

    row.locator("a").click()
    expect(ui).to_have_url(re.compile(r"#/finetune/tiny-ablate$"))
    expect(ui.locator("#finetune-summary")).to_contain_text("Finished · step 6 of 6")
    expect(ui.locator("#finetune-summary")).to_contain_text("knobs: ablate 3,4")
    features = ui.locator("#chart-features")
    expect(features.locator("svg path.series")).to_have_count(3)  # one line per watched feature
    expect(features.locator(".chart-legend a")).to_have_text(["feature 3", "feature 4", "feature 7"])
    assert features.locator(".chart-legend a").first.get_attribute("href") == "#/feature/3"
    expect(features.locator("circle.point")).to_have_count(9)  # 3 features x evals at steps 0, 3, 6
    expect(ui.locator("#chart-sae svg path.series")).to_have_count(2)  # FVU and CE-loss score
    expect(ui.locator("#chart-loss svg path.series")).to_have_count(2)  # train and eval loss

    evals = [r for r in read_metrics(runs / "tiny-ablate" / "metrics.jsonl") if r["kind"] == "eval"]
    cells = ui.locator("#finetune-evals tbody tr")
    expect(cells).to_have_count(3)
    for i, e in enumerate(evals):
        texts = [t.strip() for t in cells.nth(i).locator("td").all_text_contents()]
        want = [str(e["step"]), _fmt(e["eval_loss"]), *(_fmt(e["features"][f]) for f in ("3", "4", "7"))]
        assert texts[:5] == want, (texts, want)
        assert texts[5:] == [_fmt(e["sae_fvu"]), _fmt(e["sae_ce_loss_score"])]
    screenshot(ui, "finetune-run")


def test_a_run_in_progress_is_reread(ui, runs):
    expect = _expect()
    ui.goto("/#/finetune/tiny-steer")
    expect(ui.locator("#finetune-summary")).to_contain_text("Training or stopped · step 6 of 6")
    expect(ui.locator("#finetune-evals tbody tr")).to_have_count(3)
    last = read_metrics(runs / "tiny-steer" / "metrics.jsonl")[-1]
    with (runs / "tiny-steer" / "metrics.jsonl").open("a") as f:  # as the trainer appends its next eval
        f.write(json.dumps({**last, "step": 9, "features": {"5": 2.5}}) + "\n")
    expect(ui.locator("#finetune-evals tbody tr")).to_have_count(4, timeout=20_000)
    expect(ui.locator("#chart-features .chart-legend")).to_contain_text("(last 2.5)")


def test_a_hostile_run_name_shows_an_error_not_a_file(ui, runs):
    expect = _expect()
    ui.goto("/#/finetune/..%2F..%2F..%2Fetc%2Fpasswd")
    expect(ui.locator("#finetune-error")).to_contain_text("Could not read run")
    assert "root:" not in ui.locator("main").inner_text()
    ui.goto("/#/finetune/no-such-run")
    expect(ui.locator("#finetune-error")).to_contain_text("no fine-tuning run named 'no-such-run'")

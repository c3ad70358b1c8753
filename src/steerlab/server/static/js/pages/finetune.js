// Fine-tuning runs: the dials of `steerlab finetune` runs (GET /v1/finetune/runs[/NAME]): the watched
// features' mean activation per eval, the losses, and how well the original SAE still fits the model.
// A run still training is re-read every few seconds while its page is open.

import { get } from "../api.js";
import { fmt, h, replace } from "../dom.js";
import { link } from "../router.js";
import { loading, panel, showError, svgElement } from "../widgets.js";

const REFRESH_MS = 5000;

export const finetuneRunsPage = {
  title: () => "Fine-tuning",
  render(main) {
    const out = h("div", { id: "finetune-runs" }, loading("Reading runs…"));
    main.append(
      h("h1", {}, "Fine-tuning runs"),
      h(
        "p.lead",
        {},
        "Runs written by ",
        h("code", {}, "steerlab finetune --out DIR/NAME"),
        " into the server's fine-tuning folder (",
        h("code", {}, "STEERLAB_FINETUNE_DIR"),
        ", default ",
        h("code", {}, "STEERLAB_HOME/finetune"),
        "): watch concepts appear or fade while a model trains.",
      ),
      out,
    );
    get("/v1/finetune/runs")
      .then((data) => replace(out, runsTable(data.runs)))
      .catch((err) => {
        replace(out, h("p.error", {}, `Could not read the runs: ${err.message}`));
        showError(err);
      });
  },
};

function knobText(knobs = {}) {
  const parts = [];
  if (knobs.ablate?.length) parts.push(`ablate ${knobs.ablate.join(",")}`);
  for (const [name, values] of [["steer", knobs.steer], ["penalize", knobs.penalize]]) {
    if (values && Object.keys(values).length) parts.push(`${name} ${Object.entries(values).map(([f, v]) => `${f}=${v}`).join(",")}`);
  }
  return parts.join("; ") || "none";
}

function runsTable(runs) {
  if (!runs.length) return h("p.empty", { id: "finetune-empty" }, "No runs in the server's fine-tuning folder yet.");
  return h(
    "table.data",
    { id: "finetune-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Run", "Step", "Knobs", "Status", "Updated"].map((t) => h("th", { scope: "col", class: t === "Step" ? "num" : null }, t)),
      ),
    ),
    h(
      "tbody",
      {},
      runs.map((r) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: link(`/finetune/${encodeURIComponent(r.name)}`) }, r.name)),
          h("td.num", {}, r.last_step == null ? "–" : String(r.last_step), r.total_steps ? ` / ${r.total_steps}` : ""),
          h("td", {}, knobText(r.knobs)),
          h("td", {}, r.finished ? "finished" : "training or stopped"),
          h("td", {}, new Date(r.updated * 1000).toLocaleString()),
        ),
      ),
    ),
  );
}

export const finetuneRunPage = {
  title: (args) => `Run ${args.name}`,
  render(main, { args }) {
    const out = h("div", { id: "finetune-run" }, loading(`Reading run ${args.name}…`));
    main.append(
      h("p", {}, h("a", { href: link("/finetune") }, "← all runs")),
      h("h1", {}, `Run ${args.name}`),
      out,
    );
    let timer = null;
    let stopped = false;
    const load = async () => {
      try {
        const run = await get(`/v1/finetune/runs/${encodeURIComponent(args.name)}`);
        if (stopped) return;
        replace(out, runView(run));
        if (!run.finished) timer = setTimeout(load, REFRESH_MS);
      } catch (err) {
        if (stopped) return;
        replace(out, h("p.error", { id: "finetune-error" }, `Could not read run ${args.name}: ${err.message}`));
        showError(err);
      }
    };
    load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  },
};

function runView(run) {
  const cfg = run.config?.finetune || {};
  const last = run.train[run.train.length - 1];
  const total = run.config?.total_steps;
  const evals = run.evals;
  const features = [...new Set(evals.flatMap((e) => Object.keys(e.features || {})))].sort((a, b) => a - b);
  const summary = h(
    "p",
    { id: "finetune-summary" },
    run.finished ? "Finished" : "Training or stopped",
    ` · step ${last ? last.step : 0}${total ? ` of ${total}` : ""}`,
    run.config ? ` · base ${run.config.base_model} · ${cfg.lora ? `LoRA r=${cfg.lora_r}` : "full fine-tuning"} · lr ${cfg.lr}` : "",
    ` · knobs: ${knobText(cfg)}`,
    last?.tokens_per_s ? ` · ${fmt(last.tokens_per_s, 0)} tokens/s` : "",
    run.skipped_lines ? ` · ${run.skipped_lines} unreadable line(s) skipped` : "",
  );
  const featureSeries = features.map((f) => ({
    name: `feature ${f}`,
    href: `#/feature/${f}`,
    points: evals.filter((e) => e.features?.[f] != null).map((e) => [e.step, e.features[f]]),
  }));
  return h(
    "div",
    {},
    summary,
    h(
      "div.columns.even",
      {},
      panel(
        "Watched features",
        features.length
          ? lineChart(featureSeries, { id: "chart-features", label: "Mean activation on the probe set (1.0 = strong) per eval step" })
          : h("p.empty", {}, "This run watches no features."),
      ),
      panel(
        "Loss",
        lineChart(
          [
            { name: "train loss", points: run.train.filter((r) => r.loss != null).map((r) => [r.step, r.loss]), thin: true },
            { name: "eval loss", points: evals.filter((e) => e.eval_loss != null).map((e) => [e.step, e.eval_loss]) },
            ...(run.train.some((r) => r.penalty != null)
              ? [{ name: "penalty", points: run.train.filter((r) => r.penalty != null).map((r) => [r.step, r.penalty]), thin: true }]
              : []),
          ],
          { id: "chart-loss", label: "Loss on the assistant tokens per step", fromZero: false },
        ),
      ),
      panel(
        "Original SAE on the fine-tuned model",
        lineChart(
          [
            { name: "FVU", points: evals.filter((e) => e.sae_fvu != null).map((e) => [e.step, e.sae_fvu]) },
            { name: "CE-loss score", points: evals.filter((e) => e.sae_ce_loss_score != null).map((e) => [e.step, e.sae_ce_loss_score]) },
          ],
          { id: "chart-sae", label: "FVU (lower is better) and CE-loss score (1 = perfect) per eval step", fromZero: false },
        ),
        h("p.hint", {}, "As the model drifts from what the SAE was trained on, FVU rises and the CE-loss score falls: feature readings become less trustworthy."),
      ),
      panel(
        "Learning rate",
        lineChart([{ name: "lr", points: run.train.filter((r) => r.lr != null).map((r) => [r.step, r.lr]), thin: true }], {
          id: "chart-lr",
          label: "Learning rate per step",
        }),
      ),
    ),
    evalTable(evals, features),
  );
}

function evalTable(evals, features) {
  return h(
    "details.panel",
    {},
    h("summary", {}, `Eval rows (${evals.length})`),
    h(
      "table.data.compact",
      { id: "finetune-evals" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th.num", { scope: "col" }, "Step"),
          h("th.num", { scope: "col" }, "Eval loss"),
          features.map((f) => h("th.num", { scope: "col" }, h("a", { href: `#/feature/${f}` }, `#${f}`))),
          h("th.num", { scope: "col" }, "SAE FVU"),
          h("th.num", { scope: "col" }, "CE-loss score"),
        ),
      ),
      h(
        "tbody",
        {},
        evals.map((e) =>
          h(
            "tr",
            {},
            h("td.num", {}, String(e.step)),
            h("td.num", {}, fmt(e.eval_loss)),
            features.map((f) => h("td.num", {}, fmt(e.features?.[f]))),
            h("td.num", {}, fmt(e.sae_fvu)),
            h("td.num", {}, fmt(e.sae_ce_loss_score)),
          ),
        ),
      ),
    ),
  );
}

const COLORS = ["#1d4ed8", "#c2410c", "#166534", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#374151"];

/** Lines over steps as inline SVG: one colour per series, points with tooltips on sparse series, a legend
 * (feature series link to the feature's page), y ticks at the ends and the middle. */
export function lineChart(series, { id, label, fromZero = true, width = 560, height = 220 } = {}) {
  const el = svgElement;
  const all = series.flatMap((s) => s.points);
  if (!all.length) return h("p.empty", { id }, "Nothing logged yet.");
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [fromZero ? Math.min(0, ...ys) : Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) x1 = x0 + 1;
  if (!fromZero) [y0, y1] = [y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0)]; // a margin around the data
  if (y1 === y0) y1 = y0 + 1;
  const pad = { left: 52, right: 10, top: 10, bottom: 24 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const X = (x) => pad.left + ((x - x0) / (x1 - x0)) * plotW;
  const Y = (y) => pad.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "line-chart", role: "img", "aria-label": label });
  svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: Y(y0), y2: Y(y0), class: "axis" }));
  svg.append(el("line", { x1: pad.left, x2: pad.left, y1: pad.top, y2: pad.top + plotH, class: "axis" }));
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    svg.append(el("text", { x: pad.left - 6, y: Y(y) + 4, class: "tick", "text-anchor": "end" }, fmt(y, 3)));
  }
  svg.append(el("text", { x: X(x0), y: height - 6, class: "tick", "text-anchor": "start" }, `step ${fmt(x0, 0)}`));
  svg.append(el("text", { x: X(x1), y: height - 6, class: "tick", "text-anchor": "end" }, `step ${fmt(x1, 0)}`));
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const color = COLORS[i % COLORS.length];
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    svg.append(el("path", { d, class: "series", stroke: color, "data-series": s.name, "stroke-opacity": s.thin ? 0.7 : 1 }));
    if (!s.thin) {
      for (const [x, y] of s.points) {
        const dot = el("circle", { cx: X(x), cy: Y(y), r: 3, fill: color, class: "point" });
        dot.append(el("title", {}, `${s.name} at step ${x}: ${fmt(y, 4)}`));
        svg.append(dot);
      }
    }
  });
  const legend = h(
    "ul.chart-legend",
    {},
    series.map((s, i) =>
      s.points.length
        ? h(
            "li",
            {},
            h("span.swatch", { style: { background: COLORS[i % COLORS.length] }, "aria-hidden": "true" }),
            s.href ? h("a", { href: s.href }, s.name) : s.name,
            ` (last ${fmt(s.points[s.points.length - 1][1], 3)})`,
          )
        : null,
    ),
  );
  return h("figure.chart", { id }, svg, legend);
}

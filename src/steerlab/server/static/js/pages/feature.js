// One feature's page (GET /v1/features/{index}): what makes it fire, how often, what it does to the
// next-token logits, which features are like it, and a button to steer with it.

import { get } from "../api.js";
import { field, fmt, h, pct, replace } from "../dom.js";
import { MODES, variant } from "../variant.js";
import { featureLink, histogram, loading, notify, panel, showError, tokenRun } from "../widgets.js";

const BEFORE = 32; // tokens of context shown before an example's peak (the rest behind "show all")
const AFTER = 16;

export const featurePage = {
  title: (args) => `Feature #${args.index}`,
  render(main, { args }) {
    const index = Number(args.index);
    const heading = h("h1", {}, `Feature #${args.index}`);
    const body = h("div.feature-body", {}, loading());
    main.append(heading, body);
    const abort = new AbortController();
    if (!Number.isInteger(index) || index < 0) {
      replace(body, h("p.error", {}, `“${args.index}” is not a feature index (a whole number ≥ 0).`));
      return;
    }
    get(`/v1/features/${index}`, { signal: abort.signal })
      .then((f) => {
        replace(heading, h("span.feature-index", {}, `#${f.index}`), " ", f.label?.text || h("em.unlabeled", {}, "unlabeled"));
        replace(body, render(f));
      })
      .catch((err) => {
        if (err.name === "AbortError") return;
        replace(body, h("p.error", {}, `Could not load feature #${index}: ${err.message}`));
        showError(err);
      });
    return () => abort.abort();
  },
};

function render(f) {
  const stats = f.stats || {};
  const scale = stats.max_act || Math.max(1e-9, ...f.examples.map((e) => e.max_act));
  const ref = { index: f.index, uuid: f.uuid, label: f.label?.text || "" };
  return [
    h("div.feature-summary", {}, summary(f, stats), addForm(ref)),
    h(
      "div.columns",
      {},
      h(
        "div.col-main",
        {},
        panel("Top activations", examplesList(f.examples.filter((e) => e.kind === "top"), scale, "No top examples recorded.")),
        panel("Across quantiles", quantileExamples(f, scale)),
        otherExamples(f, scale),
      ),
      h(
        "div.col-side",
        {},
        panel("Activation histogram", stats.histogram ? histogram(stats.histogram) : h("p.empty", {}, "No histogram recorded."), quantileTable(stats)),
        panel("Logit effects", logitEffects(f)),
        panel("Nearest features", relatedList(f.neighbors, "similarity", "Similarity of decoder directions.")),
        panel("Co-firing features", relatedList(f.cofiring_features, "fraction", "Share of this feature's firing tokens where the other also fires.")),
      ),
    ),
  ];
}

function summary(f, stats) {
  const label = f.label;
  const rows = [
    ["Density", pct(stats.density), "Share of scanned tokens where it fires"],
    ["Max activation", fmt(stats.max_act)],
    ["Mean activation", fmt(stats.mean_act), "Mean over firing tokens"],
    ["Label", label ? `${label.explainer}${label.score !== null && label.score !== undefined ? ` · score ${fmt(label.score, 2)}` : ""}` : "none"],
    ["UUID", h("code", {}, f.uuid)],
  ];
  return h("dl.stats", {}, rows.map(([k, v, hint]) => [h("dt", { title: hint || null }, k), h("dd", {}, v)]));
}

/** "Add to variant" with a mode and a value (+0.5 strengthens, −0.3 suppresses: the SDK's guidance). */
function addForm(ref) {
  const mode = h("select", { id: "add-mode" }, MODES.map((m) => h("option", { value: m }, m)));
  const value = h("input", { type: "number", id: "add-value", step: 0.05, value: 0.5 });
  return h(
    "form.add-form",
    {
      "aria-label": "Add this feature to the variant",
      onsubmit: (e) => {
        e.preventDefault();
        variant.addEdit(ref, { mode: mode.value, value: Number(value.value) });
        notify(`Added #${ref.index} to the variant (${mode.value} ${value.value}).`, { link: "#/playground", linkText: "Open playground" });
      },
    },
    field("Mode", mode),
    field("Value", value, "+0.5 strengthens · −0.3 suppresses"),
    h("button.primary", { type: "submit", id: "add-to-variant" }, "Add to variant"),
    h("a.button", { href: "#/playground" }, "Playground →"),
  );
}

/** One example: tokens shaded by activation, trimmed around its peak (a toggle shows all of it). */
function example(e, scale) {
  const from = Math.max(0, e.max_position - BEFORE);
  const to = Math.min(e.tokens.length, e.max_position + AFTER + 1);
  const trimmed = from > 0 || to < e.tokens.length;
  const box = h("div.example", { dataset: { kind: e.kind } });
  const draw = (all) => {
    const [a, b] = all ? [0, e.tokens.length] : [from, to];
    const run = tokenRun(e.tokens.slice(a, b), e.acts.slice(a, b), scale, { highlight: e.max_position - a });
    replace(
      box,
      h("span.example-max", { title: "Strongest activation in this example" }, fmt(e.max_act, 2)),
      a > 0 ? h("span.ellipsis", { "aria-hidden": "true" }, "… ") : null,
      run,
      trimmed
        ? h("button.link", { type: "button", "aria-expanded": String(all), onclick: () => draw(!all) }, all ? "show less" : "show all")
        : null,
    );
  };
  draw(false);
  return box;
}

function examplesList(examples, scale, emptyText) {
  if (!examples.length) return h("p.empty", {}, emptyText);
  return h("div.examples", {}, examples.sort((a, b) => a.rank - b.rank).map((e) => example(e, scale)));
}

function quantileExamples(f, scale) {
  const byQuantile = new Map();
  for (const e of f.examples.filter((x) => x.kind === "quantile")) {
    const q = e.quantile ?? 0;
    if (!byQuantile.has(q)) byQuantile.set(q, []);
    byQuantile.get(q).push(e);
  }
  if (!byQuantile.size) return h("p.empty", {}, "No quantile examples recorded.");
  return [...byQuantile.entries()]
    .sort((a, b) => b[0] - a[0])
    .map(([q, list]) => h("div.quantile", {}, h("h3", {}, `Quantile ${q}`), examplesList(list, scale, "")));
}

function otherExamples(f, scale) {
  const random = f.examples.filter((e) => e.kind === "random");
  const none = f.examples.filter((e) => e.kind === "nonactivating");
  if (!random.length && !none.length) return null;
  return h(
    "details.panel",
    {},
    h("summary", {}, `Random and non-activating examples (${random.length + none.length})`),
    random.length ? [h("h3", {}, "Random firing tokens"), examplesList(random, scale, "")] : null,
    none.length ? [h("h3", {}, "Similar text where it does not fire"), examplesList(none, scale, "")] : null,
  );
}

function quantileTable(stats) {
  const entries = Object.entries(stats.quantiles || {}).sort((a, b) => Number(a[0]) - Number(b[0]));
  if (!entries.length) return null;
  return h(
    "table.data.compact",
    {},
    h("caption", {}, "Activation quantiles (firing tokens)"),
    h("tr", {}, entries.map(([q]) => h("th", { scope: "col" }, q))),
    h("tr", {}, entries.map(([, v]) => h("td.num", {}, fmt(v, 2)))),
  );
}

function logitEffects(f) {
  const list = (title, items, cls) =>
    h(
      "div.logits",
      {},
      h("h3", {}, title),
      items.length
        ? h("ol.token-list", {}, items.map((t) => h("li", {}, h("code", { class: cls }, JSON.stringify(t.token)), " ", h("span.num", {}, fmt(t.value, 2)))))
        : h("p.empty", {}, "none recorded"),
    );
  return h("div.logit-cols", {}, list("Promotes", f.promoted || [], "up"), list("Suppresses", f.suppressed || [], "down"));
}

function relatedList(items, key, hint) {
  if (!items || !items.length) return h("p.empty", {}, "None recorded.");
  return [
    h("p.hint", {}, hint),
    h("ol.related", {}, items.map((n) => h("li", {}, featureLink(n), " ", h("span.num", {}, key === "fraction" ? pct(n[key]) : fmt(n[key], 2))))),
  ];
}

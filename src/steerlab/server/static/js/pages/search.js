// Feature browser: search by meaning and/or words, by what features' contexts are about (GET
// /v1/features/search), or by an example text (POST /v1/features/search); open a feature by index.

import { getWith, post } from "../api.js";
import { field, fmt, h, pct, replace } from "../dom.js";
import { go, link } from "../router.js";
import { addToVariantButton, featureLink, loading, meter, showError } from "../widgets.js";

const MODES = [
  ["hybrid", "Hybrid (meaning + words)"],
  ["semantic", "Semantic (meaning)"],
  ["lexical", "Lexical (words)"],
];

// "" leaves it to the server: labels + contexts when the database has context vectors, else labels.
const EVIDENCE = [
  ["", "Default (labels + contexts when at hand)"],
  ["label", "Labels"],
  ["hybrid", "Labels + contexts"],
  ["contexts", "Contexts (what it fires on)"],
];

let view = null; // the rendered page's controls, for update()

export const searchPage = {
  title: () => "Features",
  render(main, { params }) {
    const q = h("input", { type: "search", name: "q", id: "search-q", placeholder: "e.g. French text, pirates, code", autocomplete: "off", required: true });
    const mode = h("select", { name: "mode", id: "search-mode" }, MODES.map(([v, t]) => h("option", { value: v }, t)));
    const by = h("select", { name: "by", id: "search-by" }, EVIDENCE.map(([v, t]) => h("option", { value: v }, t)));
    const topK = h("select", { name: "top_k", id: "search-topk" }, [10, 20, 50, 100].map((k) => h("option", { value: k, selected: k === 20 }, String(k))));
    const results = h("div.results", { "aria-live": "polite" });
    const form = h(
      "form.search-form",
      {
        role: "search",
        onsubmit: (e) => {
          e.preventDefault();
          const params = { q: q.value.trim(), mode: mode.value, by: by.value, top_k: topK.value };
          if (!params.q) return;
          // Same query again: the hash would not change, so run it directly.
          if (link("/search", params) === location.hash) run(params);
          else go("/search", params);
        },
      },
      field("Search features", q),
      field("Mode", mode),
      field("Evidence", by),
      field("Results", topK),
      h("button.primary", { type: "submit" }, "Search"),
    );
    const index = h("input", { type: "number", min: 0, step: 1, id: "lookup-index", placeholder: "5081", inputmode: "numeric" });
    const lookup = h(
      "form.lookup-form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          if (index.value !== "") go(`/feature/${Number(index.value)}`);
        },
      },
      field("Open feature by index", index),
      h("button", { type: "submit" }, "Open"),
    );
    const example = h("textarea", { id: "example-text", rows: 3, maxlength: 20000, placeholder: "Paste a text: the features it wakes more than they usually are" });
    const byExample = h(
      "form.example-form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          if (example.value.trim()) runExample(example.value, topK.value);
        },
      },
      field("Search by example", example),
      h("button", { type: "submit" }, "Find features"),
    );
    main.append(
      h("h1", {}, "Feature browser"),
      h("p.lead", {}, "Find SAE features by what they mean, then open one to see its examples, histogram, logit effects and neighbours."),
      h("div.toolbar", {}, form, lookup),
      byExample,
      results,
    );
    view = { q, mode, by, topK, results };
    this.update(params);
  },
  update(params) {
    if (!view) return;
    view.q.value = params.get("q") || "";
    view.mode.value = params.get("mode") || "hybrid";
    view.by.value = params.get("by") || "";
    view.topK.value = params.get("top_k") || "20";
    if (view.q.value) run({ q: view.q.value, mode: view.mode.value, by: view.by.value, top_k: view.topK.value });
    else replace(view.results);
  },
};

let inflight = null;

async function run(params) {
  const results = view.results;
  inflight?.abort();
  inflight = new AbortController();
  replace(results, loading(`Searching for “${params.q}”…`));
  try {
    const data = await getWith("/v1/features/search", params, { signal: inflight.signal });
    replace(results, resultsTable(data.features || [], params.q));
  } catch (err) {
    if (err.name === "AbortError") return;
    replace(results, h("p.error", {}, `Search failed: ${err.message}`));
    showError(err);
  }
}

async function runExample(text, topK) {
  const results = view.results;
  inflight?.abort();
  inflight = new AbortController();
  replace(results, loading("Running the model on the example…"));
  try {
    const data = await post("/v1/features/search", { example_text: text, top_k: Number(topK) }, { signal: inflight.signal });
    replace(results, resultsTable(data.features || [], "the example"));
  } catch (err) {
    if (err.name === "AbortError") return;
    replace(results, h("p.error", {}, `Search failed: ${err.message}`));
    showError(err);
  }
}

function why(f) {
  if (!f.reason) return "";
  return f.snippet ? [h("strong", {}, f.reason), " ", h("span.snippet", {}, f.snippet)] : h("strong", {}, f.reason);
}

function resultsTable(features, q) {
  const asIndex = /^#?\d+$/.test(q) ? Number(q.replace("#", "")) : null;
  const jump = asIndex !== null ? h("p", {}, "Looking for an index? ", h("a", { href: `#/feature/${asIndex}` }, `Open feature #${asIndex}`)) : null;
  if (!features.length) return [jump, h("p.empty", {}, `No features match “${q}”.`)];
  const maxRelevance = Math.max(...features.map((f) => f.relevance ?? 0), 1e-9);
  return [
    jump,
    h(
      "table.data.search-results",
      {},
      h("caption", {}, `${features.length} features for “${q}”`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Feature"),
          h("th.num", { scope: "col", title: "How well the feature matches the query" }, "Relevance"),
          h("th.num", { scope: "col", title: "How well its label predicts where it fires (0–1)" }, "Label score"),
          h("th.num", { scope: "col", title: "Share of tokens where it fires" }, "Density"),
          h("th", { scope: "col", title: "Which evidence found it: label, contexts or example" }, "Why"),
          h("th", { scope: "col" }, h("span.sr-only", {}, "Actions")),
        ),
      ),
      h(
        "tbody",
        {},
        features.map((f) =>
          h(
            "tr",
            { dataset: { index: String(f.index) } },
            h("td", {}, featureLink(f)),
            h("td.num", {}, fmt(f.relevance, 3), " ", meter(f.relevance ?? 0, maxRelevance)),
            h("td.num", {}, fmt(f.score, 2)),
            h("td.num", {}, pct(f.density)),
            h("td.why", {}, why(f)),
            h("td", {}, addToVariantButton(f)),
          ),
        ),
      ),
    ),
  ];
}

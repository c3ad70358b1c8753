// Inspector: which features fire on each token of a conversation (POST /v1/inspect). Tokens are a
// heatmap; pick a token to list its features; pick a feature to colour the text by it or open its page.

import { post } from "../api.js";
import { field, fmt, h, replace } from "../dom.js";
import { parseConversation } from "../conversation.js";
import { variant } from "../variant.js";
import { addToVariantButton, featureLink, loading, meter, panel, showError, shownToken, tokenRun } from "../widgets.js";

const EXAMPLE = "user: Bonjour ! Peux-tu me recommander un bon livre ?\nassistant: Bien sûr ! Je te conseille « Le Petit Prince » de Saint-Exupéry.";
let lastText = EXAMPLE; // kept while the tab is open, so coming back to the page keeps the conversation
const RANKINGS = [
  ["", "what the text is about (relevance)"],
  ["specificity", "how unusual for each feature (specificity)"],
  ["frequency", "raw activation (frequency)"],
];
const AGGREGATIONS = [
  ["count", "tokens fired on"],
  ["max", "strongest activation"],
  ["mean", "mean activation"],
  ["sum", "total activation"],
];

export const inspectorPage = {
  title: () => "Inspector",
  render(main) {
    const text = h("textarea", { id: "inspect-text", rows: 6, spellcheck: "false", value: lastText });
    const topK = h("select", { id: "inspect-topk" }, [5, 10, 20].map((k) => h("option", { value: k, selected: k === 10 }, String(k))));
    const steered = h("input", { type: "checkbox", id: "inspect-steered" });
    const withTemplate = h("input", { type: "checkbox", id: "inspect-template" });
    const statistic = h("select", { id: "inspect-statistic" }, RANKINGS.map(([v, t]) => h("option", { value: v }, t)));
    const rankBy = h("select", { id: "inspect-rank" }, AGGREGATIONS.map(([v, t]) => h("option", { value: v }, t)));
    const out = h("div.inspect-out");
    const form = h(
      "form.stack",
      {
        onsubmit: (e) => {
          e.preventDefault();
          lastText = text.value;
          const options = { top_k: Number(topK.value), aggregate_by: rankBy.value, include_template: withTemplate.checked };
          if (statistic.value) options.rank_by = statistic.value; // default: relevance (or specificity) where the server has a feature database
          run(out, text.value, options, steered.checked);
        },
      },
      field("Conversation", text, "One message per “user:” / “assistant:” / “system:” line; text without a role is a user message."),
      h(
        "div.row",
        {},
        h("button.primary", { type: "submit", id: "inspect-run" }, "Inspect"),
        field("Features per token", topK),
        field("Rank the conversation's features by", rankBy),
        field("judged by", statistic),
        h("label.check", {}, withTemplate, " score the chat template too"),
        h("label.check", {}, steered, " with the working variant applied"),
      ),
    );
    main.append(
      h("h1", {}, "Inspector"),
      h("p.lead", {}, "Paste a conversation to see which features fire on each token (1.0 = a strong activation of that feature). The conversation's top features are the ones most unusual for this text; the chat template (dotted underline) is shown but not scored."),
      form,
      out,
    );
  },
};

async function run(out, text, options, withVariant) {
  const messages = parseConversation(text);
  if (!messages.length) {
    replace(out, h("p.error", {}, "Type a conversation first."));
    return;
  }
  const body = { messages, ...options };
  if (withVariant && !variant.isEmpty()) body.controller = variant.controller();
  replace(out, loading("Reading the conversation…"));
  try {
    const data = await post("/v1/inspect", body);
    replace(out, result(data, options.aggregate_by, body));
  } catch (err) {
    replace(out, h("p.error", {}, `Inspect failed: ${err.message}`));
    showError(err);
  }
}

function result(data, aggregate, request) {
  const tokens = data.tokens || [];
  const top = data.top_features || [];
  // null = each token's strongest feature. That is about 1.0 on every token by construction, so the view
  // starts shaded by one feature instead: the conversation's top one.
  const state = { colourBy: null, picked: null };
  const exact = new Map(); // feature index -> its activation on every token
  const heatmap = h("div.heatmap", { id: "heatmap" });
  const legend = h("p.legend", { "aria-live": "polite" });
  const detail = h("div.token-detail", { id: "token-detail", "aria-live": "polite" }, h("p.empty", {}, "Pick a token to list its features."));

  const actsFor = () => {
    if (state.colourBy !== null && exact.has(state.colourBy)) return exact.get(state.colourBy);
    return tokens.map((t) => {
      const list = t.top || [];
      if (state.colourBy === null) return list.length ? Math.max(...list.map((f) => f.activation)) : 0;
      const hit = list.find((f) => f.index === state.colourBy);
      return hit ? hit.activation : 0;
    });
  };
  const draw = () => {
    // Redrawing replaces the token buttons: put the keyboard focus back on the same token.
    const focused = heatmap.contains(document.activeElement) ? Number(document.activeElement.dataset.i) : null;
    const scale = 1; // 1.0 is "strong" in per-feature units; stronger activations saturate
    const by = state.colourBy === null ? "each token's strongest feature" : `feature #${state.colourBy}`;
    const template = tokens.map((t) => Boolean(t.template));
    replace(heatmap, tokenRun(tokens.map((t) => t.token), actsFor(), scale, { onPick: pick, label: by, focusIndex: state.picked ?? 0, template }));
    // For tests and scripts: which feature is shown, and whether from every token's exact activation.
    heatmap.dataset.feature = state.colourBy ?? "strongest";
    heatmap.dataset.exact = String(state.colourBy === null || exact.has(state.colourBy));
    if (state.picked !== null) heatmap.querySelectorAll(".tok")[state.picked]?.classList.add("picked");
    if (focused !== null) heatmap.querySelectorAll(".tok")[focused]?.focus();
    replace(
      legend,
      `Shaded by ${by}`,
      state.colourBy !== null
        ? [" · ", h("a", { href: `#/feature/${state.colourBy}` }, "open it"), " · ", h("button.link", { type: "button", onclick: () => colourBy(null) }, "shade by each token's strongest feature")]
        : " · pick “shade” on a feature to see where it fires",
    );
  };
  const colourBy = async (index) => {
    state.colourBy = index;
    draw(); // at once, from the per-token top lists; then exactly, on every token
    if (index === null || exact.has(index)) return;
    try {
      exact.set(index, await featureActs(request, index, tokens.length));
      if (state.colourBy === index) draw();
    } catch (err) {
      showError(err);
    }
  };
  const pick = (i) => {
    state.picked = i;
    draw();
    heatmap.querySelectorAll(".tok")[i]?.focus();
    const t = tokens[i];
    replace(detail, h("h3", {}, `Token ${i}: `, h("code", {}, shownToken(t.token))), featureTable(t.top || [], colourBy, "activation"));
  };
  colourBy(top.length ? top[0].index : null);
  return h(
    "div.columns",
    {},
    h("div.col-main", {}, panel("Token heatmap", legend, heatmap)),
    h(
      "div.col-side",
      {},
      panel("Token features", detail),
      panel(
        "Top features of the conversation",
        h("p.legend", { id: "inspect-ranked-by" }, `Ranked by ${data.ranked_by}: ${data.statistic}.`, data.note ? ` (${data.note})` : ""),
        featureTable(top, colourBy, aggregate),
      ),
    ),
  );
}

/** One feature's activation on every token, from the Ember route the goodfire SDK uses
 * (chat-attribution/compute-features restricted to that feature). */
async function featureActs(request, index, length) {
  const body = { messages: request.messages, include_feature_indexes: [index] };
  if (request.controller) body.controller = request.controller;
  const data = await post("/api/inference/v1/chat-attribution/compute-features", body);
  if (data.tokens.length !== length) throw new Error("compute-features returned a different tokenization");
  return data.tokens.map((t) => {
    const hit = (t.attributions || []).find((a) => a.index_in_sae === index);
    return hit ? hit.activation_strength : 0;
  });
}

/** Features with a value column: a token's activations, or the conversation's aggregate (`by`). */
function featureTable(features, colourBy, by) {
  if (!features.length) return h("p.empty", {}, "No feature fires here.");
  const perToken = by === "activation";
  const heading = perToken ? "Activation" : (AGGREGATIONS.find(([v]) => v === by) || [by, by])[1];
  const max = Math.max(perToken ? 1 : 1e-9, ...features.map((f) => f.activation));
  const specific = features.some((f) => f.specificity != null);
  const relevant = features.some((f) => f.relevance != null);
  return h(
    "table.data.compact.feature-acts",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Feature"),
        h("th.num", { scope: "col" }, heading),
        perToken || by === "count" ? null : h("th.num", { scope: "col" }, "Tokens"),
        specific ? h("th.num", { scope: "col", title: "-log10 of the corpus fraction of tokens on which the feature is at least this active" }, "Specificity") : null,
        relevant ? h("th.num", { scope: "col", title: "cosine of the text to the feature's contexts plus cosine to its label" }, "Relevance") : null,
        h("th", { scope: "col" }, h("span.sr-only", {}, "Actions")),
      ),
    ),
    h(
      "tbody",
      {},
      features.map((f) =>
        h(
          "tr",
          {},
          h("td", {}, featureLink(f)),
          h("td.num", {}, fmt(f.activation, 2), " ", meter(f.activation, max)),
          perToken || by === "count" ? null : h("td.num", {}, String(f.count ?? "")),
          specific ? h("td.num", {}, f.specificity == null ? "" : fmt(f.specificity, 1)) : null,
          relevant ? h("td.num", {}, f.relevance == null ? "" : fmt(f.relevance, 2)) : null,
          h(
            "td.actions",
            {},
            h("button.small", { type: "button", title: "Shade the text by this feature", "aria-label": `Shade by feature ${f.index}`, onclick: () => colourBy(f.index) }, "shade"),
            addToVariantButton(f),
          ),
        ),
      ),
    ),
  );
}

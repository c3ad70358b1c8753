// Contrast: which features tell two sets of conversations apart (POST /v1/contrast); one click adds a
// feature to the working variant (strengthen it, or suppress it).

import { post } from "../api.js";
import { field, fmt, h, replace } from "../dom.js";
import { parseConversations } from "../conversation.js";
import { addToVariantButton, featureLink, loading, meter, panel, showError } from "../widgets.js";

const EXAMPLE_1 = [
  "user: Tell me about the sea.\nassistant: Arr, the sea be a wild mistress, matey!",
  "user: How are you today?\nassistant: Ahoy! I be fine as a ship in fair winds, me hearty.",
].join("\n---\n");
const EXAMPLE_2 = [
  "user: Tell me about the sea.\nassistant: The sea covers most of the Earth's surface.",
  "user: How are you today?\nassistant: I am doing well, thank you for asking.",
].join("\n---\n");

const texts = { one: EXAMPLE_1, two: EXAMPLE_2 }; // kept while the tab is open

export const contrastPage = {
  title: () => "Contrast",
  render(main) {
    const one = h("textarea", { id: "contrast-1", rows: 9, spellcheck: "false", value: texts.one });
    const two = h("textarea", { id: "contrast-2", rows: 9, spellcheck: "false", value: texts.two });
    const topK = h("select", { id: "contrast-topk" }, [5, 10, 20, 50].map((k) => h("option", { value: k, selected: k === 10 }, String(k))));
    const out = h("div.contrast-out");
    const hint = "Separate conversations with a line “---”; roles as in the Inspector.";
    main.append(
      h("h1", {}, "Contrast"),
      h("p.lead", {}, "Two sets of conversations in, the features that distinguish them out."),
      h(
        "form.stack",
        {
          onsubmit: (e) => {
            e.preventDefault();
            texts.one = one.value;
            texts.two = two.value;
            run(out, one.value, two.value, Number(topK.value));
          },
        },
        h("div.columns.even", {}, field("Set A", one, hint), field("Set B", two, hint)),
        h("div.row", {}, h("button.primary", { type: "submit", id: "contrast-run" }, "Contrast"), field("Features per side", topK)),
      ),
      out,
    );
  },
};

async function run(out, textA, textB, topK) {
  const a = parseConversations(textA);
  const b = parseConversations(textB);
  if (!a.length || !b.length) {
    replace(out, h("p.error", {}, "Both sets need at least one conversation."));
    return;
  }
  replace(out, loading(`Comparing ${a.length} and ${b.length} conversations…`));
  try {
    const data = await post("/v1/contrast", { dataset_1: a, dataset_2: b, top_k: topK });
    const specific = data.ranked_by === "specificity" || data.ranked_by === "relevance";
    replace(
      out,
      data.note ? h("p.legend", { id: "contrast-note", role: "note" }, `Note: ${data.note}.`) : null,
      h(
        "div.columns.even",
        {},
        panel("More active in set A", list(data.dataset_1_features || [], specific)),
        panel("More active in set B", list(data.dataset_2_features || [], specific)),
      ),
    );
  } catch (err) {
    replace(out, h("p.error", {}, `Contrast failed: ${err.message}`));
    showError(err);
  }
}

function list(features, specific) {
  if (!features.length) return h("p.empty", {}, "No distinguishing features.");
  const max = Math.max(1e-9, ...features.map((f) => Math.abs(f.score)));
  return h(
    "table.data.compact",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Feature"),
        specific
          ? h("th.num", { scope: "col", title: "Difference in mean specificity over the conversations' text (decades; + favours set A), with its 90% bootstrap interval" }, "Effect [90%]")
          : h("th.num", { scope: "col", title: "Rank-biserial effect: +1 = always higher in set A, −1 = always higher in set B" }, "Effect"),
        h("th.num", { scope: "col", title: "Mean activation in set A (1.0 = strong)" }, "Mean A"),
        h("th.num", { scope: "col", title: "Mean activation in set B (1.0 = strong)" }, "Mean B"),
        h("th", { scope: "col" }, "Add to variant"),
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
          h("td.num", {}, fmt(f.score, 2), specific && f.score_low != null ? ` [${fmt(f.score_low, 2)}, ${fmt(f.score_high, 2)}]` : "", " ", meter(Math.abs(f.score), max)),
          h("td.num", {}, fmt(f.mean_1, 2)),
          h("td.num", {}, fmt(f.mean_2, 2)),
          h("td.actions", {}, addToVariantButton(f, { value: 0.5, text: "+0.5" }), " ", addToVariantButton(f, { value: -0.3, text: "−0.3" })),
        ),
      ),
    ),
  );
}

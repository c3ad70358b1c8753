// The playground's left column: the working variant as sliders and rules, AutoSteer, save/share/load,
// and its raw controller JSON. Every change goes through the `variant` store (variant.js).

import { ApiError, get, post } from "../api.js";
import { field, fmt, h, replace } from "../dom.js";
import { go } from "../router.js";
import { abortEventName, MODES, OPERATORS, refOf, variant } from "../variant.js";
import { featureLink, notify, panel, showError } from "../widgets.js";

// Slider ranges per mode. Nudge and pin values are in steering units, Ember's range (0.5-1.0 visibly
// steers, about 1.0 the feature's concept takes over, past ~2 replies degenerate; docs/steering.md);
// mul is a plain factor. The number box next to each slider takes any value.
const RANGES = { nudge: [-1.5, 1.5, 0.05], pin: [-1.5, 1.5, 0.05], mul: [0, 4, 0.1] };

let editingInPlace = false; // true while a row's own control writes to the variant (see refresh)

function updateInPlace(i, patch) {
  editingInPlace = true;
  try {
    variant.updateEdit(i, patch);
  } finally {
    editingInPlace = false;
  }
}

/** Look a feature up for its UUID and label; an index the lookup cannot answer still works (the
 * server checks the index against the SAE when the variant runs). */
export async function featureRef(index) {
  try {
    const f = await get(`/v1/features/${index}`);
    return { index, uuid: f.uuid || "", label: f.label?.text || "" };
  } catch (err) {
    // A bad index: say so. Anything else (no feature database on this server): go on without a label.
    if (err instanceof ApiError && (err.status === 400 || err.code === "feature_not_found")) throw err;
    return { index, uuid: "", label: "" };
  }
}

export function variantEditor() {
  const root = h("div.variant-editor");
  const status = h("div.variant-status", { "aria-live": "polite" });
  const edits = h("div.edits");
  const rules = h("div.rules");
  const json = h("textarea", { id: "controller-json", rows: 10, spellcheck: "false", "aria-label": "Controller JSON" });

  const naming = nameAndSave();
  let shown = "";
  const refresh = () => {
    const s = variant.state;
    // Re-render the rows when the variant changed elsewhere (added rows, a load, another tab), but not
    // for a change made by a row's own slider or box: that would end a drag and move the focus.
    const now = JSON.stringify([s.edits, s.rules, s.extraScopes.length]);
    if (now !== shown && !editingInPlace) {
      const focusKey = root.contains(document.activeElement) ? document.activeElement.dataset.focus : undefined;
      replace(edits, editRows());
      replace(rules, ruleRows());
      if (focusKey) root.querySelector(`[data-focus="${focusKey}"]`)?.focus(); // e.g. a mode just changed
    }
    shown = now;
    replace(status, statusLine());
    // Follow loads and clears, but never overwrite what the user is typing.
    if (document.activeElement !== naming.name) naming.name.value = s.name;
    if (document.activeElement !== json) json.value = JSON.stringify(variant.controller(), null, 2);
  };
  const unsubscribe = variant.subscribe(refresh);

  root.append(
    panel("Variant", naming.root, status),
    panel("Feature edits", edits, addByIndexForm()),
    panel("Conditional rules", h("p.hint", {}, "“When F1 > x, set F2 to y” turns the edit on from the first token where the condition holds; “abort when” stops the variant's reply."), rules, ruleForm()),
    panel(
      "Guard",
      h("p.hint", {}, "A classifier's score (0 to 1, over the conversation so far) as a condition: “abort” stops the variant's reply on the server the moment it holds; “pin” sets features (e.g. refusal features) from that token on."),
      guardForm(),
    ),
    panel("AutoSteer", autoSteerForm()),
    h(
      "details.panel",
      {},
      h("summary", {}, "Controller JSON (Ember format)"),
      h("p.hint", {}, "What the goodfire SDK's variant.controller.json() would send. Edit and apply, or paste one."),
      json,
      h("div.row", {}, h("button", { type: "button", onclick: () => applyJson(json.value) }, "Apply JSON")),
    ),
  );
  refresh();
  return { root, destroy: unsubscribe };
}

function statusLine() {
  const s = variant.state;
  const n = s.edits.length + s.rules.length + s.extraScopes.length;
  const parts = [h("span", {}, n ? `${s.edits.length} edit(s), ${s.rules.length + s.extraScopes.length} rule(s)` : "Empty: the variant replies like the base model.")];
  if (s.sourceId) {
    const url = `${location.origin}${location.pathname}#/playground?variant=${s.sourceId}`;
    const box = h("input.share", { type: "text", readonly: true, value: url, id: "share-link", "aria-label": "Share link" });
    parts.push(
      h("div.share-row", {}, 
        h("span", {}, s.dirty ? `Changed since saved as ` : `Saved as `, h("code", { id: "variant-id" }, s.sourceId), s.dirty ? " (save again for a new link)" : ""),
        box,
        h("button.small", { type: "button", onclick: () => copy(box) }, "Copy link"),
      ),
    );
  }
  return parts;
}

async function copy(input) {
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    notify("Link copied.");
  } catch {
    notify("Press Ctrl+C to copy the selected link.");
  }
}

function nameAndSave() {
  const name = h("input", { type: "text", id: "variant-name", value: variant.state.name, maxlength: 100, oninput: () => variant.setName(name.value) });
  const loadId = h("input", { type: "text", id: "load-variant-id", placeholder: "v-…", size: 14 });
  const save = async () => {
    if (variant.isEmpty()) {
      notify("Add an edit or a rule before saving.", { kind: "error" });
      return;
    }
    try {
      const saved = await post("/v1/variants", { name: name.value.trim() || "variant", controller: variant.controller() });
      variant.markSaved(saved.variant_id);
      go("/playground", { variant: saved.variant_id }); // the address bar now holds the share link
      notify(`Saved as ${saved.variant_id}.`);
    } catch (err) {
      showError(err);
    }
  };
  const root = h(
    "div.stack",
    {},
    h("div.row", {}, field("Name", name), h("button.primary", { type: "button", id: "save-variant", onclick: save }, "Save & share")),
    h(
      "form.row",
      { onsubmit: (e) => (e.preventDefault(), loadId.value.trim() && go("/playground", { variant: loadId.value.trim() })) },
      field("Load saved variant", loadId),
      h("button", { type: "submit" }, "Load"),
      h("button", { type: "button", onclick: () => { variant.clear(); go("/playground"); } }, "Clear"),
    ),
  );
  return { root, name };
}

function editRows() {
  const s = variant.state;
  if (!s.edits.length) return h("p.empty", {}, "No edits yet. Add features from a feature page, search results, Contrast or AutoSteer, or by index below.");
  return h(
    "ul.edit-list",
    {},
    s.edits.map((e, i) => {
      const [lo, hi, step] = RANGES[e.mode] || RANGES.nudge;
      const number = h("input.value", { type: "number", step, value: e.value, "aria-label": `Value for feature ${e.index}`, dataset: { focus: `value-${i}` } });
      const slider = h("input.slider", { type: "range", min: lo, max: hi, step, value: e.value, "aria-label": `${e.mode} strength for feature ${e.index}`, dataset: { focus: `slider-${i}` } });
      slider.addEventListener("input", () => {
        number.value = slider.value;
        updateInPlace(i, { value: Number(slider.value) });
      });
      number.addEventListener("change", () => {
        if (number.value === "" || Number.isNaN(Number(number.value))) return;
        slider.value = number.value;
        updateInPlace(i, { value: Number(number.value) });
      });
      const mode = h("select", { "aria-label": `Mode for feature ${e.index}`, dataset: { focus: `mode-${i}` } }, MODES.map((m) => h("option", { value: m, selected: m === e.mode }, m)));
      mode.addEventListener("change", () => variant.updateEdit(i, { mode: mode.value }));
      return h(
        "li.edit",
        { dataset: { index: String(e.index) } },
        h("div.edit-name", {}, featureLink(e)),
        h("div.edit-controls", {}, mode, slider, number, h("button.small.danger", { type: "button", "aria-label": `Remove feature ${e.index}`, onclick: () => variant.removeEdit(i) }, "✕")),
      );
    }),
  );
}

function addByIndexForm() {
  const index = h("input", { type: "number", min: 0, step: 1, id: "add-index", placeholder: "index" });
  return h(
    "form.row.add-index",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        if (index.value === "") return;
        try {
          variant.addEdit(await featureRef(Number(index.value)), { value: 0.5 });
          index.value = "";
        } catch (err) {
          showError(err);
        }
      },
    },
    field("Add feature #", index),
    h("button", { type: "submit" }, "Add"),
  );
}

function classifierLink(name) {
  return h("a.classifier-link", { href: `#/classifier/${encodeURIComponent(name)}` }, h("code", {}, name));
}

function describeRule(r) {
  const guard = r.if.classifier !== undefined;
  const cond = [guard ? classifierLink(r.if.classifier) : featureLink(r.if), ` ${r.op} ${fmt(r.threshold)}`];
  if (guard && r.kind === "abort") return [h("strong", {}, "Guard: abort when "), ...cond, h("small.hint", {}, ` (event ${r.event})`)];
  if (guard) {
    const feats = r.then.features.flatMap((f, i) => (i ? [", ", featureLink(f)] : [featureLink(f)]));
    return [h("strong", {}, "Guard: when "), ...cond, h("strong", {}, ` ${r.then.mode} `), ...feats, ` ${r.then.mode === "mul" ? "×" : "to"} ${fmt(r.then.value)}`];
  }
  if (r.kind === "abort") return [h("strong", {}, "Abort when "), ...cond, h("small.hint", {}, ` (event ${r.event})`)];
  return [h("strong", {}, "When "), ...cond, h("strong", {}, ` ${r.then.mode} `), featureLink(r.then), ` ${r.then.mode === "mul" ? "×" : "to"} ${fmt(r.then.value)}`];
}

function ruleRows() {
  const s = variant.state;
  const rows = s.rules.map((r, i) =>
    h("li.rule", {}, h("span", {}, describeRule(r)), h("button.small.danger", { type: "button", "aria-label": `Remove rule ${i + 1}`, onclick: () => variant.removeRule(i) }, "✕")),
  );
  if (s.extraScopes.length) {
    rows.push(
      h(
        "li.rule",
        {},
        h("span", {}, `${s.extraScopes.length} advanced scope(s) from JSON (nested conditions): kept as they are; see Controller JSON.`),
        h("button.small.danger", { type: "button", onclick: () => variant.clearExtra() }, "✕"),
      ),
    );
  }
  return rows.length ? h("ul.rule-list", {}, rows) : h("p.empty", {}, "No rules.");
}

function ruleForm() {
  const kind = h("select", { id: "rule-kind" }, h("option", { value: "when" }, "When … set …"), h("option", { value: "abort" }, "Abort when …"));
  const ifIndex = h("input", { type: "number", min: 0, step: 1, id: "rule-if", required: true, placeholder: "F1" });
  const op = h("select", { id: "rule-op" }, OPERATORS.map((o) => h("option", { value: o }, o)));
  const threshold = h("input", { type: "number", step: 0.05, value: 0.5, id: "rule-threshold", required: true });
  const thenIndex = h("input", { type: "number", min: 0, step: 1, id: "rule-then", placeholder: "F2" });
  const thenMode = h("select", { id: "rule-mode" }, MODES.map((m) => h("option", { value: m, selected: m === "pin" }, m)));
  const thenValue = h("input", { type: "number", step: 0.05, value: 0.5, id: "rule-value" });
  const thenPart = h("span.then-part", {}, field("then", thenMode), field("feature", thenIndex), field("to", thenValue));
  kind.addEventListener("change", () => (thenPart.hidden = kind.value === "abort"));
  return h(
    "form.rule-form",
    {
      "aria-label": "Add a rule",
      onsubmit: async (e) => {
        e.preventDefault();
        // Read the whole form before the first await: the feature lookups go to the server, and a
        // quick user (or test) may already be changing the form for the next rule meanwhile.
        const form = {
          kind: kind.value, ifIndex: Number(ifIndex.value), op: op.value, threshold: Number(threshold.value),
          thenIndex: thenIndex.value, thenMode: thenMode.value, thenValue: Number(thenValue.value),
        };
        if (form.kind !== "abort" && form.thenIndex === "") {
          notify("Name the feature to set (F2).", { kind: "error" });
          thenIndex.focus();
          return;
        }
        try {
          const ifRef = await featureRef(form.ifIndex);
          const base = { if: ifRef, op: form.op, threshold: form.threshold };
          if (form.kind === "abort") {
            variant.addRule({ kind: "abort", ...base, event: abortEventName(ifRef.index) });
          } else {
            const thenRef = await featureRef(Number(form.thenIndex));
            variant.addRule({ kind: "when", ...base, then: { ...thenRef, mode: form.thenMode, value: form.thenValue } });
          }
        } catch (err) {
          showError(err);
        }
      },
    },
    field("Rule", kind),
    field("feature", ifIndex),
    field("is", op),
    field("than", threshold),
    thenPart,
    h("button", { type: "submit" }, "Add rule"),
  );
}

/** The guard form: a classifier condition (GET /v1/classifiers lists the names; the server checks the
 * name and the threshold when the variant runs or is saved, and its 400 names the field). */
function guardForm() {
  const name = h("select", { id: "guard-classifier", "aria-label": "Classifier" }, h("option", { value: "" }, "loading…"));
  const op = h("select", { id: "guard-op" }, OPERATORS.map((o) => h("option", { value: o }, o)));
  const threshold = h("input", { type: "number", step: 0.05, value: 0.9, id: "guard-threshold", required: true });
  const action = h("select", { id: "guard-action" }, h("option", { value: "abort" }, "abort the reply"), h("option", { value: "pin" }, "pin features"));
  const feats = h("input", { type: "text", id: "guard-features", placeholder: "e.g. 2021, 2971", size: 12 });
  const value = h("input", { type: "number", step: 0.05, value: 1, id: "guard-value" });
  const pinPart = h("span.then-part", { hidden: true }, field("features #", feats), field("to", value));
  action.addEventListener("change", () => (pinPart.hidden = action.value !== "pin"));
  get("/v1/classifiers")
    .then((r) => {
      // A text-only (TF-IDF) classifier reads no activations, so it cannot be a condition.
      const usable = r.classifiers.filter((c) => c.kind !== "text");
      replace(name, usable.length ? usable.map((c) => h("option", { value: c.name, selected: c.name === "jailbreak" }, `${c.name} (${c.kind})`)) : h("option", { value: "" }, "no classifiers"));
    })
    .catch((err) => {
      replace(name, h("option", { value: "" }, "cannot list classifiers"));
      showError(err);
    });
  return h(
    "form.rule-form.guard-form",
    {
      "aria-label": "Add a guard",
      onsubmit: async (e) => {
        e.preventDefault();
        const form = { name: name.value, op: op.value, threshold: Number(threshold.value), action: action.value, feats: feats.value, value: Number(value.value) };
        if (!form.name) {
          notify("Choose a classifier (train one on the Classifiers page).", { kind: "error" });
          return;
        }
        const base = { if: { classifier: form.name }, op: form.op, threshold: form.threshold };
        if (form.action === "abort") {
          variant.addRule({ kind: "abort", ...base, event: abortEventName(form.name) });
          return;
        }
        const indices = form.feats.split(/[\s,]+/).filter(Boolean);
        if (!indices.length || indices.some((x) => !/^\d+$/.test(x))) {
          notify("Name the features to pin: indices separated by commas.", { kind: "error" });
          feats.focus();
          return;
        }
        try {
          const refs = await Promise.all(indices.map((x) => featureRef(Number(x))));
          variant.addRule({ kind: "when", ...base, then: { features: refs, mode: "pin", value: form.value } });
        } catch (err) {
          showError(err);
        }
      },
    },
    field("Classifier", name),
    field("score", op),
    field("than", threshold),
    field("then", action),
    pinPart,
    h("button", { type: "submit" }, "Add guard"),
  );
}

function autoSteerForm() {
  const goal = h("input", { type: "text", id: "autosteer-goal", placeholder: "e.g. talk like a pirate", required: true });
  const out = h("div.autosteer-out", { "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "AutoSteer");
  return h(
    "form.stack",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        button.disabled = true;
        replace(out, h("p.loading", {}, "Finding candidate features and trying them at several strengths (tens of seconds)…"));
        try {
          const result = await post("/v1/autosteer", { goal: goal.value.trim() });
          if (!result.edits.length) {
            replace(out, h("p.autosteer-none", {}, `No edit beat the unsteered replies for "${result.goal}" (${result.tried} tried). Rephrase the goal, or search for a feature and add it by hand.`));
            return;
          }
          variant.merge(result.controller);
          replace(
            out,
            h("p", {}, `Added ${result.edits.length} edit(s):`),
            h("ul", {}, result.edits.map((x) => h("li", {}, featureLink(refOf(x)), ` ${x.mode} ${fmt(x.value, 2)}`))),
          );
        } catch (err) {
          replace(out, h("p.error", {}, `AutoSteer failed: ${err.message}`));
        } finally {
          button.disabled = false;
        }
      },
    },
    h("div.row", {}, field("Goal", goal), button),
    out,
  );
}

function applyJson(text) {
  try {
    variant.load(JSON.parse(text), { name: variant.state.name, dirty: true });
    go("/playground"); // no longer the saved variant the address may name
    notify("Controller applied.");
  } catch (err) {
    notify(`Not a controller: ${err.message}`, { kind: "error" });
  }
}

// Pieces shared by several pages: feature links, activation-shaded tokens, the histogram, status messages.

import { fmt, h, replace } from "./dom.js";
import { variant } from "./variant.js";

/** "#123 label" linking to the feature's page. */
export function featureLink(f, { showIndex = true } = {}) {
  const index = f.index ?? f.index_in_sae;
  return h(
    "a.feature-link",
    { href: `#/feature/${index}` },
    showIndex ? h("span.feature-index", {}, `#${index}`) : null,
    " ",
    f.label || h("em.unlabeled", {}, "unlabeled"),
  );
}

/** Background for an activation relative to `scale` (1 = strongest): white → orange. Text stays dark.
 * The square root lifts weak activations enough to see (a third of the maximum still shows clearly). */
export function heat(act, scale) {
  const t = Math.sqrt(Math.max(0, Math.min(1, scale > 0 ? act / scale : 0)));
  if (t === 0) return "";
  return `hsl(32 100% ${Math.round(97 - 45 * t)}%)`;
}

/** How a token looks on screen: whitespace made visible, chat-template markers kept. */
export function shownToken(token) {
  return token.replace(/\n/g, "↵").replace(/\t/g, "⇥") || "∅";
}

/**
 * A run of tokens shaded by activation. `acts[i]` is the activation of token i; `scale` the value that
 * gets the full colour. With `onPick`, tokens are buttons (keyboard reachable); otherwise spans.
 */
export function tokenRun(tokens, acts, scale, { onPick, highlight, focusIndex = 0, label = "activation", template = [] } = {}) {
  const row = h("div.tokens", { role: onPick ? "group" : null, "aria-label": onPick ? "Tokens (arrow keys move, Enter picks)" : null });
  if (onPick) row.addEventListener("keydown", (e) => roveTokens(row, e));
  tokens.forEach((token, i) => {
    const act = acts[i] || 0;
    const attrs = {
      class: ["tok", act > 0 ? "fired" : "", i === highlight ? "peak" : "", /^<\|.*\|>$/.test(token) ? "special" : "", template[i] ? "template" : ""]
        .filter(Boolean)
        .join(" "),
      style: { background: heat(act, scale) },
      title: `${JSON.stringify(token)} · ${label} ${fmt(act)}${template[i] ? " · chat template (not scored)" : ""}`,
      dataset: { act: fmt(act), i: String(i) },
    };
    if (onPick) {
      attrs.type = "button";
      // One tab stop for the whole text (roving tabindex): a long conversation is not hundreds of Tabs.
      attrs.tabindex = i === focusIndex ? "0" : "-1";
      attrs["aria-label"] = `token ${i}: ${token} (${label} ${fmt(act)})`;
      attrs.onclick = () => onPick(i);
    }
    row.append(h(onPick ? "button" : "span", attrs, shownToken(token)));
    if (token.includes("\n")) row.append(h("br"));
  });
  return row;
}

/** Arrow keys, Home and End move the focus between the tokens of a run. */
function roveTokens(row, e) {
  const buttons = [...row.querySelectorAll("button.tok")];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const to = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[e.key];
  if (to === undefined || to < 0 || to >= buttons.length) return;
  e.preventDefault();
  buttons[at].tabIndex = -1;
  buttons[to].tabIndex = 0;
  buttons[to].focus();
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (and text): the charts' one building block. */
export function svgElement(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Activation histogram as inline SVG (bars with tooltips; axis ticks at both ends and the middle). */
export function histogram({ edges, counts }, { width = 520, height = 140 } = {}) {
  const el = svgElement;
  const pad = { left: 40, right: 8, top: 8, bottom: 22 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...counts);
  const total = counts.reduce((a, b) => a + b, 0);
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "histogram",
    role: "img",
    "aria-label": `Activation histogram: ${total} firing tokens from ${fmt(edges[0])} to ${fmt(edges[edges.length - 1])}`,
  });
  const barW = plotW / counts.length;
  counts.forEach((count, i) => {
    const barH = (count / max) * plotH;
    const bar = el("rect", {
      x: pad.left + i * barW + 0.5,
      y: pad.top + plotH - barH,
      width: Math.max(1, barW - 1),
      height: Math.max(count ? 1 : 0, barH),
      class: "bar",
    });
    bar.append(el("title", {}, `${fmt(edges[i])} – ${fmt(edges[i + 1])}: ${count} tokens`));
    svg.append(bar);
  });
  svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH, class: "axis" }));
  const ticks = [0, Math.floor(counts.length / 2), counts.length];
  for (const t of ticks) {
    svg.append(el("text", { x: pad.left + t * barW, y: height - 6, class: "tick", "text-anchor": "middle" }, fmt(edges[t], 2)));
  }
  svg.append(el("text", { x: pad.left - 6, y: pad.top + 10, class: "tick", "text-anchor": "end" }, String(max)));
  svg.append(el("text", { x: pad.left - 6, y: pad.top + plotH, class: "tick", "text-anchor": "end" }, "0"));
  return svg;
}

/** A horizontal bar for a value in [0, max] (lists of features with their activation). */
export function meter(value, max) {
  const t = Math.max(0, Math.min(1, max > 0 ? value / max : 0));
  return h("span.meter", { "aria-hidden": "true" }, h("span.meter-fill", { style: { width: `${Math.round(t * 100)}%` } }));
}

/** "+ variant" button: adds a nudge of `value` for the feature and says so. */
export function addToVariantButton(f, { value = 0.5, mode = "nudge", text = "+ variant" } = {}) {
  const index = f.index ?? f.index_in_sae;
  return h(
    "button.small",
    {
      type: "button",
      title: `Add feature #${index} to the working variant (${mode} ${value})`,
      "aria-label": `Add feature ${index} to the variant (${mode} ${value})`,
      onclick: () => {
        variant.addEdit(f, { mode, value });
        notify(`Added #${index} ${f.label || ""} to the variant (${mode} ${value}).`, { link: "#/playground", linkText: "Open playground" });
      },
    },
    text,
  );
}

/** A message in the status bar (announced to screen readers). kind: "info" | "error"; `link` adds a link,
 * `action` ({text, run}) a button. */
export function notify(message, { kind = "info", link, linkText, action } = {}) {
  const bar = document.getElementById("status");
  if (!bar) return;
  bar.className = `status ${kind}`;
  const dismiss = h("button.small", { type: "button", "aria-label": "Dismiss message", onclick: () => replace(bar) }, "✕");
  const act = action
    ? h("button.small", { type: "button", onclick: () => (action.run(), replace(bar)) }, action.text)
    : null;
  replace(bar, h("span", {}, message), link ? h("a", { href: link }, linkText || "open") : null, act, dismiss);
  clearTimeout(notify.timer);
  // Errors stay until dismissed (they may need reading); other messages fade after a while.
  if (kind !== "error") notify.timer = setTimeout(() => replace(bar), 8000);
}

export function showError(err) {
  if (err && err.name === "AbortError") return;
  notify(err && err.message ? err.message : String(err), { kind: "error" });
}

/** A section with a heading, for pages made of panels. */
export function panel(title, ...content) {
  const id = `p-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section.panel", { "aria-labelledby": id }, h("h2", { id }, title), ...content);
}

/** A placeholder shown while a request runs. */
export function loading(text = "Loading…") {
  return h("p.loading", { role: "status" }, text);
}

// Tiny DOM helpers. Every page builds its elements with h() so text from the server (labels, tokens,
// model output) is always set as text, never parsed as HTML.

/**
 * h("button.primary", {onclick, type: "button"}, "Save") -> <button class="primary" type="button">Save</button>
 * Attributes: `on*` functions become listeners, `class`/`style`/`dataset` work as expected, booleans
 * toggle the attribute, null/undefined/false are skipped. Children: strings, nodes, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs === null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = [el.className, value].filter(Boolean).join(" ");
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" || key === "checked" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form control: <label>Text <control></label>, so screen readers and clicks both work. */
export function field(labelText, control, hint) {
  return h("label.field", {}, h("span.field-label", {}, labelText), control, hint ? h("small.hint", {}, hint) : null);
}

/** Format a number compactly for tables and tooltips. */
export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toExponential(1);
  return Number(x.toFixed(digits)).toString();
}

export function pct(x) {
  if (x === null || x === undefined) return "–";
  return x >= 0.01 ? `${(x * 100).toFixed(1)}%` : `${(x * 100).toPrecision(2)}%`;
}

// The working variant: the steering the playground runs, edited from every page ("add to variant" on a
// feature page, contrast results, AutoSteer), kept in localStorage so it survives navigation and reloads.
// It is stored as simple rows the UI can edit and turned into Ember controller JSON (EMBER_PROTOCOL.md)
// only when sent, so the server sees exactly what a goodfire SDK Variant would send.

const STORAGE = "steerlab.variant";
export const MODES = ["nudge", "pin", "mul"]; // nudge = add to the activation, pin = set it, mul = scale it
export const OPERATORS = [">", ">=", "<", "<=", "==", "!="];
const SETTINGS = ["nonzero_strength_threshold", "min_nudge_entropy", "max_nudge_entropy"];

function empty() {
  return {
    name: "my variant",
    edits: [], // {index, uuid, label, mode, value}
    // {kind: "when", if: ref, op, threshold, then: {...ref, mode, value}} | {kind: "abort", if, op, threshold, event};
    // a guard reads a classifier instead: if: {classifier: NAME}, and its "when" sets several features at once,
    // then: {features: [ref, ...], mode, value} (our extension of the Ember JSON; see docs/classifiers.md)
    rules: [],
    extraScopes: [], // scopes the form cannot show (nested groups, …): kept verbatim so nothing is lost
    settings: {}, // nonzero_strength_threshold etc., passed through unchanged
    sourceId: null, // the saved variant this was loaded from / saved as
    dirty: false, // edited since it was loaded or saved
  };
}

let state = load();
let previous = null; // the unsaved variant a load replaced, for one "restore"
const listeners = new Set();

// Another tab changed the variant: follow it, so two open tabs never overwrite each other's edits.
window.addEventListener("storage", (e) => {
  if (e.key !== STORAGE) return;
  state = load();
  for (const fn of listeners) fn(state);
});

function load() {
  try {
    return { ...empty(), ...JSON.parse(localStorage.getItem(STORAGE) || "{}") };
  } catch {
    return empty();
  }
}

function changed({ dirty = true } = {}) {
  if (dirty) state.dirty = true;
  localStorage.setItem(STORAGE, JSON.stringify(state));
  for (const fn of listeners) fn(state);
}

export const variant = {
  get state() {
    return state;
  },
  subscribe(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  isEmpty() {
    return !state.edits.length && !state.rules.length && !state.extraScopes.length;
  },
  setName(name) {
    state.name = name;
    changed();
  },
  /** Add a feature edit (or update the mode/value of the one already there for that feature). */
  addEdit(feature, { mode = "nudge", value = 0.5 } = {}) {
    const ref = refOf(feature);
    const existing = state.edits.find((e) => e.index === ref.index && e.mode === mode);
    if (existing) existing.value = value;
    else state.edits.push({ ...ref, mode, value });
    changed();
  },
  updateEdit(i, patch) {
    Object.assign(state.edits[i], patch);
    changed();
  },
  removeEdit(i) {
    state.edits.splice(i, 1);
    changed();
  },
  addRule(rule) {
    state.rules.push(rule);
    changed();
  },
  updateRule(i, patch) {
    Object.assign(state.rules[i], patch);
    changed();
  },
  removeRule(i) {
    state.rules.splice(i, 1);
    changed();
  },
  clearExtra() {
    state.extraScopes = [];
    changed();
  },
  clear() {
    state = empty();
    changed({ dirty: false });
  },
  /** Replace the working variant with a controller (a saved variant, or JSON pasted by the user). */
  load(controller, { name, sourceId = null, dirty = false } = {}) {
    const parsed = fromController(controller); // throws on bad JSON before anything is replaced
    previous = state.dirty && !this.isEmpty() ? state : null;
    state = { ...empty(), ...parsed, sourceId, dirty };
    if (name) state.name = name;
    changed({ dirty });
  },
  /** Add a controller's edits and rules to the working variant (AutoSteer). */
  merge(controller) {
    const parsed = fromController(controller);
    for (const e of parsed.edits) this.addEdit(e, e);
    state.rules.push(...parsed.rules);
    state.extraScopes.push(...parsed.extraScopes);
    changed();
  },
  /** Whether a load replaced unsaved edits that restorePrevious() can bring back. */
  hasPrevious() {
    return previous !== null;
  },
  restorePrevious() {
    if (!previous) return;
    state = previous;
    previous = null;
    changed();
  },
  markSaved(sourceId) {
    state.sourceId = sourceId;
    state.dirty = false;
    changed({ dirty: false });
  },
  /** Event names of the abort rules: when the server reports one, the playground stops that reply. */
  abortEvents() {
    return state.rules.filter((r) => r.kind === "abort").map((r) => r.event);
  },
  controller() {
    return toController(state);
  },
};

// ------------------------------------------------------------------------------ controller JSON

export function refOf(f) {
  return { index: Number(f.index ?? f.index_in_sae), uuid: f.uuid || "", label: f.label || "" };
}

function wireFeature(ref) {
  return { uuid: ref.uuid || "", label: ref.label || "", index_in_sae: Number(ref.index), max_activation_strength: 1 };
}

function features(ref) {
  return { features: [wireFeature(ref)] };
}

function controllerJson(interventions, scopes = [], name = "", settings = {}) {
  const out = { interventions, scopes, name };
  for (const key of SETTINGS) out[key] = settings[key] ?? null;
  return out;
}

/** A rule's condition: a feature's activation, or a classifier's score (a guard). */
function condition(r) {
  if (r.if.classifier !== undefined) return { classifier: r.if.classifier, operator: r.op, right_hand: Number(r.threshold) };
  return { left_hand: features(r.if), right_hand: Number(r.threshold), operator: r.op };
}

function thenFeatures(then) {
  return then.features ? { features: then.features.map(wireFeature) } : features(then);
}

export function toController(s) {
  const interventions = s.edits.map((e) => ({ mode: e.mode, features: features(e), value: Number(e.value) }));
  const scopes = s.rules.map((r) => {
    const conditionals = { conditionals: [condition(r)], operator: "AND" };
    const inner =
      r.kind === "abort"
        ? controllerJson([])
        : controllerJson([{ mode: r.then.mode, features: thenFeatures(r.then), value: Number(r.then.value) }]);
    const scope = { conditionals, controller: inner, is_active: false, event_name: r.kind === "abort" ? r.event : null };
    // A guard's abort stops decoding on the server itself (what Variant.abort_when writes for a classifier).
    if (r.kind === "abort" && r.if.classifier !== undefined) scope.abort = true;
    return scope;
  });
  // The server derives a stable name from the content when it is empty; the variant's own name is stored
  // with it when saved, so leave the controller's name empty.
  return controllerJson(interventions, [...scopes, ...s.extraScopes], "", s.settings);
}

/** Parse controller JSON into editable rows; anything the form cannot show goes to extraScopes. */
export function fromController(c) {
  if (typeof c === "string") c = JSON.parse(c);
  if (!c || typeof c !== "object") throw new Error("a controller must be a JSON object");
  const edits = [];
  for (const iv of c.interventions || []) {
    const group = iv.features && iv.features.features ? iv.features.features : [iv.features];
    for (const f of group) edits.push({ ...refOf(f), mode: iv.mode, value: iv.value });
  }
  const extraScopes = [];
  const rules = [];
  for (const scope of c.scopes || []) {
    const rule = simpleRule(scope);
    if (rule) rules.push(rule);
    else extraScopes.push(scope);
  }
  const settings = {};
  for (const key of SETTINGS) if (c[key] !== undefined && c[key] !== null) settings[key] = c[key];
  return { edits, rules, extraScopes, settings };
}

function simpleRule(scope) {
  const group = scope.conditionals || {};
  const conds = group.conditionals || [];
  if (conds.length !== 1 || scope.is_active) return null;
  const cond = conds[0];
  if (typeof cond.right_hand !== "number") return null;
  const inner = scope.controller || {};
  const ivs = inner.interventions || [];
  if ((inner.scopes || []).length) return null;
  if (typeof cond.classifier === "string") return guardRule(scope, cond, ivs);
  const left = cond.left_hand && (cond.left_hand.features || [cond.left_hand]);
  if (!left || left.length !== 1 || scope.abort) return null;
  const base = { if: refOf(left[0]), op: cond.operator, threshold: cond.right_hand };
  if (scope.event_name && ivs.length === 0) return { kind: "abort", ...base, event: scope.event_name };
  if (!scope.event_name && ivs.length === 1) {
    const iv = ivs[0];
    const then = iv.features.features || [iv.features];
    if (then.length !== 1 || !MODES.includes(iv.mode)) return null;
    return { kind: "when", ...base, then: { ...refOf(then[0]), mode: iv.mode, value: iv.value } };
  }
  return null;
}

/** A classifier condition the guard form can show: abort (on the server), or set features when it holds. */
function guardRule(scope, cond, ivs) {
  const base = { if: { classifier: cond.classifier }, op: cond.operator, threshold: cond.right_hand };
  if (scope.abort && ivs.length === 0) return { kind: "abort", ...base, event: scope.event_name || "abort" };
  if (!scope.abort && !scope.event_name && ivs.length === 1 && MODES.includes(ivs[0].mode)) {
    const iv = ivs[0];
    const then = iv.features.features || [iv.features];
    return { kind: "when", ...base, then: { features: then.map(refOf), mode: iv.mode, value: iv.value } };
  }
  return null;
}

/** A fresh event name for an abort rule, unique within the variant (a feature's index, or "guard_" + a
 * classifier's name). */
export function abortEventName(index) {
  const taken = new Set(state.rules.map((r) => r.event));
  let name = typeof index === "string" ? `guard_${index}` : `abort_f${index}`;
  const stem = name;
  for (let i = 2; taken.has(name); i++) name = `${stem}_${i}`;
  return name;
}

// Steering playground: the same conversation sent to the base model and to the working variant, both
// streamed side by side (POST /v1/chat/completions with stream: true, the variant as `controller`).

import { get, streamChat } from "../api.js";
import { field, h, replace } from "../dom.js";
import { go } from "../router.js";
import { variant } from "../variant.js";
import { notify, showError } from "../widgets.js";
import { variantEditor } from "./variant-editor.js";

// The transcripts live in memory for the session, so visiting a feature page and coming back keeps them.
// Each side keeps its own assistant replies: the variant's next turn sees the variant's earlier answers.
const chat = { base: [], variant: [] };
const settings = { maxTokens: 64, temperature: 0, seed: 1 };

let view = null;

export const playgroundPage = {
  title: () => "Playground",
  render(main, { params }) {
    const editor = variantEditor();
    const columns = { base: transcript("base", "Base model"), variant: transcript("variant", "Variant") };
    const prompt = h("textarea", { id: "prompt", rows: 3, placeholder: "Message both models… (Enter sends, Shift+Enter for a new line)", "aria-label": "Message" });
    const send = h("button.primary", { type: "submit", id: "send" }, "Send");
    const stop = h("button", { type: "button", id: "stop", disabled: true }, "Stop");
    const maxTokens = h("input", { type: "number", min: 1, max: 1024, value: settings.maxTokens, id: "max-tokens" });
    const temperature = h("input", { type: "number", min: 0, max: 2, step: 0.1, value: settings.temperature, id: "temperature", title: "0 = greedy (the same reply every time)" });
    const seed = h("input", { type: "number", min: 0, step: 1, value: settings.seed, id: "seed" });
    for (const [input, key] of [[maxTokens, "maxTokens"], [temperature, "temperature"], [seed, "seed"]]) {
      input.addEventListener("change", () => (settings[key] = Number(input.value)));
    }
    prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    const form = h(
      "form.prompt-form",
      { onsubmit: (e) => (e.preventDefault(), sendTurn()) },
      prompt,
      h(
        "div.row",
        {},
        send,
        stop,
        h("button", { type: "button", onclick: clearChat }, "Clear chat"),
        field("Max tokens", maxTokens),
        field("Temperature", temperature),
        field("Seed", seed),
      ),
    );
    main.append(
      h("h1", {}, "Steering playground"),
      h(
        "div.playground",
        {},
        h("aside.controls", { "aria-label": "Variant" }, editor.root),
        h("div.chat", {}, h("div.transcripts", {}, columns.base.root, columns.variant.root), form),
      ),
    );
    view = { columns, prompt, send, stop, aborts: [] };
    stop.addEventListener("click", () => view.aborts.forEach((a) => a.abort()));
    drawAll();
    this.update(params);
    return () => {
      view.aborts.forEach((a) => a.abort());
      editor.destroy();
      view = null;
    };
  },
  update(params) {
    const id = params.get("variant");
    // Load the shared variant unless it is the one being edited already (keep unsaved changes).
    if (id && id !== variant.state.sourceId) loadVariant(id);
  },
};

async function loadVariant(id) {
  try {
    const saved = await get(`/v1/variants/${encodeURIComponent(id)}`);
    variant.load(saved.controller, { name: saved.name, sourceId: saved.variant_id });
    const restore = variant.hasPrevious()
      ? { text: "Restore my unsaved variant", run: restorePrevious }
      : undefined;
    notify(`Loaded variant “${saved.name}” (${saved.variant_id}).`, { action: restore });
  } catch (err) {
    showError(err);
  }
}

function restorePrevious() {
  variant.restorePrevious();
  // The address must stop naming the loaded variant, or the next visit would load it again.
  go("/playground", { variant: variant.state.sourceId });
}

function transcript(side, title) {
  const log = h("div.log", { id: `log-${side}`, role: "log", "aria-live": "polite", "aria-label": `${title} conversation` });
  const root = h("section.transcript", { class: side, "aria-labelledby": `t-${side}` }, h("h2", { id: `t-${side}` }, title), log);
  return { root, log };
}

function bubble(message) {
  return h(
    "div.msg",
    { class: message.role, dataset: { role: message.role } },
    h("span.who", {}, message.role === "user" ? "You" : "Model"),
    h("div.text", {}, message.content),
    message.note ? h("div.note", {}, message.note) : null,
  );
}

function drawSide(side) {
  const empty = side === "base" ? "Unsteered replies appear here." : "Steered replies appear here.";
  replace(view.columns[side].log, chat[side].length ? chat[side].map(bubble) : h("p.empty", {}, empty));
}

function drawAll() {
  drawSide("base");
  drawSide("variant");
}

function clearChat() {
  chat.base = [];
  chat.variant = [];
  if (view) drawAll();
}

async function sendTurn() {
  const text = view.prompt.value.trim();
  if (!text || view.send.disabled) return;
  view.prompt.value = "";
  const steering = variant.isEmpty() ? null : variant.controller();
  const aborts = variant.abortEvents();
  view.send.disabled = true;
  view.stop.disabled = false;
  try {
    await Promise.all(["base", "variant"].map((side) => streamSide(side, text, side === "variant" ? steering : null, aborts)));
  } finally {
    if (view) {
      view.send.disabled = false;
      view.stop.disabled = true;
      view.prompt.focus();
    }
  }
}

/** Send the user turn on one side and stream the reply into its transcript. */
async function streamSide(side, text, controller, abortEvents) {
  chat[side].push({ role: "user", content: text });
  const messages = chat[side].map(({ role, content }) => ({ role, content }));
  const reply = { role: "assistant", content: "" };
  chat[side].push(reply);
  drawSide(side); // only this side: the other may already be streaming into its own nodes
  const node = view.columns[side].log.lastElementChild;
  const textNode = node.querySelector(".text");
  node.classList.add("streaming");
  const abort = new AbortController();
  view.aborts.push(abort);
  const body = { messages, max_completion_tokens: settings.maxTokens, temperature: settings.temperature, seed: settings.seed };
  if (controller) body.controller = controller;
  try {
    const result = await streamChat(body, {
      signal: abort.signal,
      onDelta: (_, all) => {
        reply.content = all;
        textNode.textContent = all;
      },
      onEvents: (names) => {
        // The goodfire SDK aborts when an abort_when event arrives; do the same (only this side).
        const hit = names.find((n) => abortEvents.includes(n));
        reply.note = hit ? `Aborted by rule (${hit}).` : `Events: ${names.join(", ")}`;
        if (hit) abort.abort();
      },
    });
    if (result.finishReason === "length") reply.note = reply.note || "Stopped at the token limit.";
  } catch (err) {
    if (err.name !== "AbortError") {
      reply.note = `Error: ${err.message}`;
      showError(err);
    } else if (!reply.note) {
      reply.note = "Stopped.";
    }
  } finally {
    node.classList.remove("streaming");
    if (view) {
      view.aborts = view.aborts.filter((a) => a !== abort);
      if (reply.note) node.append(h("div.note", {}, reply.note));
      node.dataset.done = "true";
    }
  }
}

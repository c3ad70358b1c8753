// Entry point: the API-key bar, the navigation, and the views.

import { get, getKey, setKey } from "./api.js";
import { h, replace } from "./dom.js";
import { route, start } from "./router.js";
import { classifierPage, classifiersPage } from "./pages/classifier.js";
import { contrastPage } from "./pages/contrast.js";
import { featurePage } from "./pages/feature.js";
import { finetuneRunPage, finetuneRunsPage } from "./pages/finetune.js";
import { inspectorPage } from "./pages/inspector.js";
import { playgroundPage } from "./pages/playground.js";
import { searchPage } from "./pages/search.js";
import { variant } from "./variant.js";

route("/search", searchPage);
route("/feature/:index", featurePage);
route("/playground", playgroundPage);
route("/inspect", inspectorPage);
route("/contrast", contrastPage);
route("/classifiers", classifiersPage);
route("/classifier/:name", classifierPage);
route("/finetune", finetuneRunsPage);
route("/finetune/:name", finetuneRunPage);

// ------------------------------------------------------------------------------------- API key
// A keyed server (the default) needs "Authorization: Bearer <key>" on every call; the key is kept in
// this browser's localStorage. In --open mode the server needs none and the field stays hidden.

const keyBar = document.getElementById("key-bar");

async function checkKey() {
  try {
    const who = await get("/v1/whoami");
    showKeyState(who);
  } catch (err) {
    showKeyForm(err.status === 401 ? err.message : `Server unreachable: ${err.message}`);
  }
}

function showKeyState(who) {
  const open = who.key_id.startsWith("open:");
  replace(
    keyBar,
    h("span.key-state", { id: "key-state" }, open ? "open mode (no key needed)" : `key: ${who.name}`),
    open ? null : h("button.small", { type: "button", onclick: () => showKeyForm() }, "change"),
  );
}

function showKeyForm(problem) {
  const input = h("input", { type: "password", id: "api-key", autocomplete: "off", placeholder: "sl-…", value: getKey(), size: 18 });
  replace(
    keyBar,
    h(
      "form.key-form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          setKey(input.value.trim());
          checkKey().then(() => window.dispatchEvent(new HashChangeEvent("hashchange")));
        },
      },
      h("label", { for: "api-key" }, "API key"),
      input,
      h("button.small", { type: "submit" }, "Use key"),
      problem ? h("span.key-problem", { role: "alert" }, problem) : null,
    ),
  );
}

window.addEventListener("steerlab:auth-required", (e) => {
  if (!document.getElementById("api-key")) showKeyForm(e.detail);
});

// ---------------------------------------------------------------------------------- navigation

const nav = document.getElementById("nav");
const variantCount = h("span.badge", { id: "variant-count", "aria-label": "features in the variant" });
nav.querySelector('a[href="#/playground"]').append(" ", variantCount);
const updateCount = () => {
  const n = variant.state.edits.length + variant.state.rules.length + variant.state.extraScopes.length;
  variantCount.textContent = n ? String(n) : "";
};
variant.subscribe(updateCount);
updateCount();

function markActive(pattern) {
  const section = { "/feature/:index": "/search", "/classifier/:name": "/classifiers", "/finetune/:name": "/finetune" }[pattern] || pattern;
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === `#${section}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

get("/health")
  .then((info) => (document.getElementById("model-name").textContent = info.model || "no model loaded"))
  .catch(() => {});
checkKey();
start(document.getElementById("main"), { fallback: "#/search", onChange: markActive });

// The skip link must not change the hash (that would be read as a route): focus the content instead.
document.querySelector(".skip-link").addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main").focus();
});

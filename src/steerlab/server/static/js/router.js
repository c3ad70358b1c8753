// Hash routing: every view has a shareable address (#/feature/123, #/playground?variant=v-…) and the
// browser's back button works, with no server-side routes needed.

const routes = [];
let current = null; // {route, page}

/**
 * Register a view. `pattern` is a path like "/feature/:index"; `page` is
 * {title(args), render(main, {args, params}) -> cleanup?, update?(params, args)}.
 * `update` lets a view handle a change of its own query (e.g. a new search) without a full re-render,
 * so the keyboard focus stays where the user is typing.
 */
export function route(pattern, page) {
  const names = [];
  const regex = new RegExp(
    "^" + pattern.replace(/:(\w+)/g, (_, name) => (names.push(name), "([^/]+)")) + "$",
  );
  routes.push({ pattern, regex, names, page });
}

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, params: new URLSearchParams(query) };
}

/** Build "#/path?a=b" from a path and params (empty values dropped). */
export function link(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  const qs = query.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

export function go(path, params) {
  location.hash = link(path, params);
}

export function start(main, { fallback, onChange }) {
  let first = true;
  const render = () => {
    const { path, params } = parseHash();
    let found = null;
    for (const r of routes) {
      const m = r.regex.exec(path);
      if (m) {
        const args = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
        found = { route: r, args };
        break;
      }
    }
    if (!found) {
      location.replace(fallback);
      return;
    }
    const { route: r, args } = found;
    document.title = `${r.page.title(args)} · steerlab`;
    onChange(r.pattern);
    if (current && current.route === r && r.page.update) {
      current.args = args;
      r.page.update(params, args);
      return;
    }
    if (current && typeof current.cleanup === "function") current.cleanup();
    main.replaceChildren();
    const cleanup = r.page.render(main, { args, params });
    current = { route: r, args, cleanup };
    // Move focus to the new view's heading so keyboard and screen-reader users start at the top of it
    // (not on first load: the browser's own initial focus is what people expect there).
    const heading = main.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      // A view that focused its own first control (the search box) keeps that.
      if (!first && !main.contains(document.activeElement)) heading.focus({ preventScroll: true });
    }
    first = false;
    window.scrollTo(0, 0);
  };
  window.addEventListener("hashchange", render);
  render();
}

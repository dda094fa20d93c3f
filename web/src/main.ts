// The page's shell: login gate, navigation by role, hash routes, the language toggle.

import { hasSession, logout, me, setSignedOutHandler } from "./api";
import { clear, h } from "./dom";
import { getLang, setLang, t } from "./i18n";
import type { Me } from "./types";
import { renderAsk } from "./views/ask";
import { renderAudit, renderCollections, renderStatus, renderUsers } from "./views/admin";
import { renderDocuments } from "./views/documents";
import { renderLogin } from "./views/login";

export interface Ctx {
  me: Me;
  can: (permission: string) => boolean;
}

type Cleanup = (() => void) | void;
interface Route {
  path: string;
  label: string;
  allowed: (ctx: Ctx) => boolean;
  render: (root: HTMLElement, ctx: Ctx) => Cleanup;
}

const ROUTES: Route[] = [
  { path: "ask", label: "nav.ask", allowed: (c) => c.can("query"), render: renderAsk },
  { path: "documents", label: "nav.documents", allowed: (c) => c.can("documents:list"), render: renderDocuments },
  { path: "admin/users", label: "nav.users", allowed: (c) => c.can("users:manage"), render: renderUsers },
  { path: "admin/collections", label: "nav.collections", allowed: (c) => c.can("collections:manage"), render: renderCollections },
  { path: "admin/status", label: "nav.status", allowed: (c) => c.me.role === "admin", render: renderStatus },
  { path: "admin/audit", label: "nav.audit", allowed: (c) => c.can("audit:read"), render: renderAudit },
];

const app = document.getElementById("app") as HTMLElement;
let ctx: Ctx | null = null;
let cleanup: Cleanup;

function currentPath(): string {
  return location.hash.replace(/^#\/?/, "");
}

function stopView(): void {
  if (typeof cleanup === "function") cleanup();
  cleanup = undefined;
}

function langButton(): HTMLButtonElement {
  return h(
    "button",
    {
      type: "button",
      class: "lang-toggle",
      "data-testid": "lang-toggle",
      lang: getLang() === "ja" ? "en" : "ja",
      onclick: () => {
        setLang(getLang() === "ja" ? "en" : "ja");
        render();
      },
    },
    t("lang.switch"),
  );
}

function showLogin(): void {
  stopView();
  ctx = null;
  clear(app);
  const main = h("main", { id: "main", tabindex: "-1", class: "login-main" });
  app.append(h("header", { class: "topbar" }, h("span", { class: "brand" }, t("app.name")), langButton()), main);
  renderLogin(main, () => void start());
}

function render(): void {
  if (!ctx) {
    showLogin();
    return;
  }
  const c = ctx;
  stopView();
  clear(app);
  const allowed = ROUTES.filter((r) => r.allowed(c));
  const path = currentPath();
  const route = allowed.find((r) => r.path === path) ?? allowed[0];
  const nav = h(
    "nav",
    { class: "nav", "aria-label": t("nav.label") },
    h(
      "ul",
      {},
      allowed.map((r) =>
        h(
          "li",
          {},
          h(
            "a",
            {
              href: `#/${r.path}`,
              "data-testid": `nav-${r.path.replace("/", "-")}`,
              "aria-current": r === route ? "page" : null,
            },
            t(r.label),
          ),
        ),
      ),
    ),
  );
  const userBox = h(
    "div",
    { class: "user-box" },
    h("span", { class: "user-name", "data-testid": "user-name" }, c.me.name || c.me.id),
    h("span", { class: "role-badge", "data-testid": "user-role" }, t(`role.${c.me.role}`)),
    langButton(),
    h("button", { type: "button", "data-testid": "logout", onclick: () => void logout() }, t("nav.logout")),
  );
  const main = h("main", { id: "main", tabindex: "-1" });
  app.append(h("header", { class: "topbar" }, h("span", { class: "brand" }, t("app.name")), nav, userBox), main);
  if (!route) {
    main.append(h("p", { class: "empty" }, t("nav.nothing")));
    return;
  }
  if (path !== route.path) history.replaceState(null, "", `#/${route.path}`);
  document.title = `${t(route.label)} — ${t("app.name")}`;
  cleanup = route.render(main, c);
}

async function start(): Promise<void> {
  if (!hasSession()) {
    showLogin();
    return;
  }
  try {
    const who = await me();
    const permissions = new Set(who.permissions);
    ctx = { me: who, can: (p) => permissions.has(p) };
  } catch {
    ctx = null;
  }
  render();
}

setSignedOutHandler(() => {
  ctx = null;
  showLogin();
});
window.addEventListener("hashchange", () => {
  if (ctx) {
    render();
    (document.getElementById("main") as HTMLElement | null)?.focus();
  }
});
document.documentElement.lang = getLang();
void start();

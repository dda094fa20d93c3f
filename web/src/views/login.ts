// The login form.

import { login } from "../api";
import { h } from "../dom";
import { errorText, t } from "../i18n";

export function renderLogin(root: HTMLElement, onDone: () => void): void {
  const error = h("p", { class: "error", role: "alert", "data-testid": "login-error" });
  const username = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "login-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "login-submit" }, t("login.submit"));
  const form = h(
    "form",
    { class: "card login-card", "data-testid": "login-form" },
    h("h1", {}, t("login.title")),
    h("p", { class: "muted" }, t("login.lead")),
    h("label", { for: "login-username" }, t("login.username")),
    username,
    h("label", { for: "login-password" }, t("login.password")),
    password,
    error,
    submit,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    login(username.value.trim(), password.value)
      .then(onDone)
      .catch((err: unknown) => {
        error.textContent = errorText(err);
        password.select();
      })
      .finally(() => {
        submit.disabled = false;
      });
  });
  root.append(form);
  username.focus();
}

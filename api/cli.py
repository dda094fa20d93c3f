"""``bunko users create|list|set-role``: user management from the command line (mounted by
``bunko.cli``). It talks to the database in the settings directly, so it works before any admin
can log in (the first admin) and without the API running."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from bunko.runtime import Runtime

users_app = typer.Typer(no_args_is_help=True, help="Manage users and roles.")
console = Console()
err = Console(stderr=True)

ROLE_HELP = "admin | power_user | user | viewer"


def _runtime() -> Runtime:
    """The runtime of the settings in the environment; a configuration error ends the command with
    its message (exit 2), as in every other ``bunko`` command."""
    from bunko.runtime import Runtime
    from bunko.settings import Settings

    try:
        return Runtime(Settings())
    except Exception as exc:
        raise _fail(exc) from None


def _fail(exc: Exception) -> typer.Exit:
    from bunko.errors import BunkoError, Unavailable

    if isinstance(exc, BunkoError):
        err.print(f"[red]error ({exc.code}):[/red] {exc.message}")
        return typer.Exit(3 if isinstance(exc, Unavailable) else 2)
    raise exc


@users_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)] = "user",
    email: Annotated[str, typer.Option()] = "",
    name: Annotated[str, typer.Option(help="display name")] = "",
    password_env: Annotated[str, typer.Option(
        help="read the password from this environment variable instead of a prompt")] = "",
) -> None:
    """Create a user (the password is prompted for, never passed as an argument)."""
    from bunko import auth

    if password_env:
        password = os.environ.get(password_env, "")
        if not password:
            err.print(f"[red]error:[/red] the environment variable {password_env} is empty or unset")
            raise typer.Exit(2)
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    rt = _runtime()
    try:
        user = auth.create_user(rt, username, password, role=role, email=email, name=name)
    except Exception as exc:
        raise _fail(exc) from exc
    console.print(f"created [bold]{user.username}[/bold] ({user.role}) id={user.id}")


@users_app.command("list")
def list_users() -> None:
    """List users with their roles."""
    from bunko import auth

    rt = _runtime()
    table = Table("id", "username", "role", "active", "email", "created")
    for u in auth.list_users(rt):
        table.add_row(u.id, u.username, u.role, "yes" if u.active else "no", u.email,
                      u.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@users_app.command("set-role")
def set_role(
    user: Annotated[str, typer.Argument(help="username or id")],
    role: Annotated[str, typer.Argument(help=ROLE_HELP)],
) -> None:
    """Change a user's role (their refresh tokens are revoked; they log in again)."""
    from bunko import audit, auth

    rt = _runtime()
    try:
        before = auth.get_user(rt, user)
        after = auth.set_role(rt, user, role)
    except Exception as exc:
        raise _fail(exc) from exc
    audit.record(rt, "role_change", actor="cli", target=after.id,
                 detail={"from": before.role, "to": after.role})
    console.print(f"{after.username}: {before.role} → {after.role}")

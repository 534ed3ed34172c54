"""The ``runyard`` command.

Nothing here imports the server side: ``runyard --help`` and every client command work
with only the base install. The server commands come from ``runyard.cli.serve``, which
imports server modules lazily inside its commands; if even that import fails (the
``server`` extra is missing), stand-ins explain how to install it.

Adding a command group is one line in :func:`_register_groups`.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer

from . import (
    admin,
    auth,
    connections,
    data,
    email_triggers,
    evaluation,
    files,
    generate,
    mcp,
    mcp_tools,
    runs,
    schedules,
    secrets,
    sets,
    templates,
    tokens,
    tools,
    webhooks,
    workflows,
)
from ._context import STATE
from ._output import Exit, fail

app = typer.Typer(
    name="runyard",
    help="runyard: Python functions as versioned tools with an HTTP API; every call a durable run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from runyard import __version__

        typer.echo(f"runyard {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", envvar="RUNYARD_PROFILE", help="Config profile to use.")
    ] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="Server URL (overrides the profile).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key (overrides the profile).")] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    STATE.profile, STATE.base_url, STATE.api_key = profile, base_url, api_key
    STATE.cached = None


def _register_groups() -> None:
    app.command("login")(auth.login)
    app.command("logout")(auth.logout)
    app.command("deploy")(tools.deploy)
    app.command("run")(runs.run)
    app.add_typer(tools.app, name="tools")
    app.add_typer(runs.app, name="runs")
    evaluation.register(runs.app)  # runs expected / compare / feedback
    app.add_typer(evaluation.app, name="batches")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(connections.app, name="connections")
    app.add_typer(mcp_tools.app, name="mcp-tools")
    app.add_typer(tokens.app, name="tokens")
    app.add_typer(templates.app, name="templates")
    app.add_typer(sets.app, name="sets")
    app.add_typer(schedules.app, name="schedules")
    app.add_typer(webhooks.app, name="webhooks")
    app.add_typer(email_triggers.app, name="email-triggers")
    app.add_typer(files.app, name="files")
    app.add_typer(workflows.app, name="workflows")
    app.add_typer(workflows.folders_app, name="folders")
    app.command("generate")(generate.generate)
    app.command("mcp")(mcp.mcp)
    app.add_typer(data.app, name="data")
    app.add_typer(data.users_app, name="users")
    app.add_typer(admin.app, name="admin")


def _missing_server(name: str, reason: str) -> Any:
    def command(ctx: typer.Context) -> None:
        raise fail(f"`runyard {name}` needs the server: {reason}", code=Exit.ERROR)

    command.__doc__ = f"Start the {name} (needs the server extra: pip install 'runyard[server]')."
    return command


def _register_server_commands() -> None:
    try:
        from . import serve
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        reason = (
            "this build has no server commands"
            if missing == "runyard.cli.serve"
            else f"{missing} is not installed; pip install 'runyard[server]'"
        )
        extra = {"allow_extra_args": True, "ignore_unknown_options": True}
        for name in ("up", "server", "worker"):
            app.command(name, context_settings=extra, add_help_option=True)(_missing_server(name, reason))
        return
    app.command("up")(_needs_server(serve.up))
    app.command("server")(_needs_server(serve.server))
    app.command("worker")(_needs_server(serve.worker))
    from . import doctor

    app.command("doctor")(_needs_server(doctor.doctor))


def _needs_server(command: Any) -> Any:
    """The serve commands import the server lazily; without the extra that import fails
    inside the command, and deserves one clear line instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ImportError as exc:
            if (exc.name or "").startswith("runyard.") and not _is_server_module(exc.name or ""):
                raise
            raise fail(
                f"`runyard {command.__name__}` needs the server: {exc.name or exc} is not installed; "
                "pip install 'runyard[server]'"
            ) from None

    return wrapper


def _is_server_module(name: str) -> bool:
    return name.startswith(("runyard.api", "runyard.services", "runyard.engine", "runyard.store", "runyard.config",
                            "runyard.node", "runyard.wiring"))


_register_groups()
_register_server_commands()

if __name__ == "__main__":
    app()

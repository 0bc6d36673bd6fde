"""``feedback-themes reporting …``: grant a tenant's read-only role, publish every project (docs/bi.md). The storage
modules are imported inside the commands, as in ``service.cli``."""

from __future__ import annotations

import typer

reporting_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL `reporting` schema for BI tools (docs/bi.md).")


@reporting_app.command("grant")
def grant_command(
    role: str = typer.Option(..., help="Role to create or update (lower-case SQL name)."),
    tenant: str = typer.Option(..., help="Tenant name whose rows the role sees."),
    nologin: bool = typer.Option(False, "--nologin", help="NOLOGIN role, to GRANT to existing users."),
    password: str = typer.Option(None, help="Password to set (default: a new random one, printed)."),
) -> None:
    """Create a read-only role that sees only one tenant's rows of the reporting tables."""
    from sqlalchemy.engine import make_url

    from service.settings import get_settings
    from service.storage.reporting_schema import grant_tenant_role
    from service.storage.session import session_scope, upgrade_database

    upgrade_database()
    try:
        with session_scope() as session:
            secret = grant_tenant_role(session, role, tenant, login=not nologin, password=password)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    url = make_url(get_settings().resolved_database_url)
    typer.echo(f"role {role} reads tenant {tenant!r}'s rows of the schema `reporting` "
               f"(host {url.host or 'localhost'}, port {url.port or 5432}, database {url.database})")  # fmt: skip
    if secret:
        typer.echo(f"password (shown once): {secret}")
    else:
        typer.echo(f'NOLOGIN: give it to a user with  GRANT "{role}" TO some_user;  then  SET ROLE "{role}";')


@reporting_app.command("publish")
def publish_command() -> None:
    """Publish every project's report tables now (a backfill; finished jobs and edits publish by themselves)."""
    from service.storage.reporting_schema import publish_all
    from service.storage.session import session_scope, upgrade_database

    upgrade_database()
    with session_scope() as session:
        if session.get_bind().dialect.name != "postgresql":
            typer.echo("error: the reporting schema needs PostgreSQL (set FEEDBACK_THEMES_DATABASE_URL)", err=True)
            raise typer.Exit(2)
        typer.echo(f"published {publish_all(session)} projects")

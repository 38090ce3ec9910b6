"""The manifest rules that span blocks, each problem reported with the JSON path of the
offending value (the structure itself is pydantic's job, in `broker.manifest.models`)."""

from __future__ import annotations

from broker.errors import Problem
from broker.http_rules.permissions import pattern_problem
from broker.manifest import settings_schema
from broker.manifest.cron import cron_problem
from broker.manifest.models import BasicAuth, Manifest
from broker.manifest.templates import allowed_url, check_template

# Parameters the broker itself sets; a manifest overriding them would break the protocol or
# its security (state, PKCE, redirect_uri), so they are refused.
_RESERVED_AUTHORIZE = {
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
}
_RESERVED_TOKEN = {
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "client_assertion",
    "client_assertion_type",
}
_TOKEN_SETTINGS = {"access_token", "refresh_token", "id_token"}


def cross_check(m: Manifest) -> list[Problem]:
    return [
        *_check_permissions(m),
        *_check_connection(m),
        *_check_http_auth(m),
        *_check_webhooks(m),
        *_check_streams(m),
        *_check_fields(m),
    ]


def _check_permissions(m: Manifest) -> list[Problem]:
    problems = [
        Problem(f"$.permissions.http[{i}]", problem)
        for i, pattern in enumerate(m.permissions.http)
        if (problem := pattern_problem(pattern)) is not None
    ]
    declared = settings_schema.declared(m.settings_schema)
    problems += [
        Problem(
            f"$.permissions.secrets.{name}",
            f"grants {name!r}, which settingsSchema does not declare",
        )
        for name in m.permissions.secrets
        if name not in declared
    ]
    return problems


def _check_connection(m: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    schema = m.settings_schema
    secrets = settings_schema.secret_names(schema)
    setup = m.connection.setup
    if setup and setup.webhook_url_template is not None:
        problems += check_template(
            m, "$.connection.setup.webhookUrlTemplate", setup.webhook_url_template, relative_ok=True
        )
    oauth = m.connection.oauth
    if oauth is None:
        if not secrets:
            problems.append(
                Problem(
                    "$.connection",
                    "declares no credentials: add connection.oauth or an x-secret setting",
                )
            )
        return problems
    where = "$.connection.oauth"
    if oauth.type == "authorization_code" and oauth.authorization_url_template is None:
        problems.append(
            Problem(f"{where}.authorizationUrlTemplate", "required for type authorization_code")
        )
    if oauth.type == "client_credentials" and oauth.authorization_url_template is not None:
        problems.append(
            Problem(
                f"{where}.authorizationUrlTemplate", "client_credentials has no authorization step"
            )
        )
    for alias, template in oauth.templates():
        problems += check_template(m, f"{where}.{alias}", template)
    if oauth.issuer is not None and not allowed_url(oauth.issuer):
        problems.append(Problem(f"{where}.issuer", "must be an https:// URL"))
    if not oauth.scope_separator:
        problems.append(Problem(f"{where}.scopeSeparator", "must not be empty"))
    for i, scope in enumerate(oauth.scopes):
        if (
            not scope
            or scope.strip() != scope
            or (oauth.scope_separator and oauth.scope_separator in scope)
        ):
            problems.append(
                Problem(f"{where}.scopes[{i}]", "empty, padded, or contains the scope separator")
            )
    for block, reserved in (
        ("authorizationParams", _RESERVED_AUTHORIZE),
        ("tokenParams", _RESERVED_TOKEN),
    ):
        params = (
            oauth.authorization_params if block == "authorizationParams" else oauth.token_params
        )
        problems += [
            Problem(f"{where}.{block}.{name}", "is set by the broker and cannot be overridden")
            for name in params
            if name in reserved
        ]
    problems += [
        Problem(
            f"$.connection.settingsSchema.properties.{name}",
            "an OAuth connector gets tokens from the OAuth flow, not from settings",
        )
        for name in settings_schema.declared(schema) & _TOKEN_SETTINGS
    ]
    return problems


def _check_http_auth(m: Manifest) -> list[Problem]:
    """The settings `httpAuth` names are declared; the credential parts are x-secret (a
    Basic username may be a plain setting, as Twilio's account SID is). They need no grant
    in permissions.secrets: the proxy injects them, the runtime never reads them."""
    auth = m.connection.http_auth
    if auth is None:
        return []
    where = "$.connection.httpAuth"
    if m.oauth is not None:
        return [Problem(where, "an OAuth connector's calls carry its access token (no httpAuth)")]
    declared = settings_schema.declared(m.settings_schema)
    secrets = settings_schema.secret_names(m.settings_schema)
    if isinstance(auth, BasicAuth):
        if auth.username is None and auth.password is None:
            return [Problem(where, "basic needs a username or a password setting")]
        named = [("username", auth.username, False), ("password", auth.password, True)]
    else:
        named = [("secret", auth.secret, True)]
    problems: list[Problem] = []
    for field, name, secret in named:
        if name is None:
            continue
        if name not in declared:
            problems.append(
                Problem(f"{where}.{field}", f"{name!r} is not declared in settingsSchema")
            )
        elif secret and name not in secrets:
            problems.append(
                Problem(f"{where}.{field}", f"{name!r} is a credential: declare it x-secret")
            )
    return problems


def _check_webhooks(m: Manifest) -> list[Problem]:
    if m.webhooks is None:
        return []
    secret = m.webhooks.secret
    if secret == "client_secret":
        if m.connection.oauth is None:
            return [Problem("$.webhooks.secret", "'client_secret' needs connection.oauth")]
        return []
    if secret not in settings_schema.secret_names(m.settings_schema):
        return [Problem("$.webhooks.secret", f"{secret!r} is not a declared x-secret setting")]
    return []


def _check_streams(m: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, stream in enumerate(m.streams):
        where = f"$.streams[{i}]"
        if stream.key in seen:
            problems.append(Problem(f"{where}.key", f"duplicate stream key {stream.key!r}"))
        seen.add(stream.key)
        if stream.mode == "poll":
            problem = (
                "a poll stream needs a cron schedule"
                if stream.schedule is None
                else cron_problem(stream.schedule)
            )
            if problem:
                problems.append(Problem(f"{where}.schedule", problem))
        else:
            if stream.schedule is not None:
                problems.append(Problem(f"{where}.schedule", "a webhook stream has no schedule"))
            if m.webhooks is None:
                problems.append(Problem(f"{where}.mode", "a webhook stream needs a webhooks block"))
    return problems


def _check_fields(m: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    declared: set[tuple[str, str, str]] = set()
    for i, f in enumerate(m.fields):
        where = f"$.fields[{i}]"
        ident = (f.entity, f.line_collection, f.key)
        if ident in declared:
            problems.append(Problem(f"{where}.key", f"duplicate line field {f.key!r}"))
        declared.add(ident)
        if f.entity not in m.permissions.entities:
            problems.append(
                Problem(f"{where}.entity", f"{f.entity!r} is not in permissions.entities")
            )
        if f.type == "select" and not f.options:
            problems.append(Problem(f"{where}.options", "a select field needs options"))
        if f.type != "select" and f.options is not None:
            problems.append(Problem(f"{where}.options", "only select fields have options"))
        if f.type == "currency" and not f.currency_field:
            problems.append(
                Problem(f"{where}.currencyField", "a currency field needs currencyField")
            )
        if f.type != "currency" and f.currency_field is not None:
            problems.append(
                Problem(f"{where}.currencyField", "only currency fields have currencyField")
            )
    ids: set[str] = set()
    for i, col in enumerate(m.ui.line_columns if m.ui else []):
        where = f"$.ui.lineColumns[{i}]"
        if col.id in ids:
            problems.append(Problem(f"{where}.id", f"duplicate column id {col.id!r}"))
        ids.add(col.id)
        if (col.entity, col.line_collection, col.field) not in declared:
            problems.append(
                Problem(
                    f"{where}.field",
                    f"{col.field!r} is not a line field of {col.entity}.{col.line_collection}",
                )
            )
    return problems

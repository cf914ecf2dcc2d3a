"""A parsed `postgresql://` URL that keeps its password apart from everything else.

The password never leaves this object except through `password_env()`, which the
subprocess runner and the database driver receive; every other view of the URL is
password-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

SCHEMES = ("postgresql", "postgres")


# Query parameters that would make libpq connect somewhere other than what the guard
# compares, or that carry a secret into argv: refused, with where to put the value instead.
_REFUSED_PARAMS = {
    "dbname": "put the database name in the path",
    "user": "put the user before the @",
    "hostaddr": "put the address in the host part",
    "service": "name the host, port and database in the URL",
    "password": "put it in user:password@ or PGPASSWORD",
    "sslpassword": "use an unencrypted key file or a passfile",
}


@dataclass(frozen=True)
class ConnInfo:
    """Where a database is and who connects to it; `password` is None when libpq finds it.

    `host` is a host name, an IP address, or a unix-socket folder (starting with "/").
    `options` are the remaining libpq parameters (sslmode, options, ...).
    """

    host: str
    port: int
    database: str
    user: str | None
    password: str | None = field(repr=False, compare=False)
    options: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        """The URL without the password: safe for argv and logs."""
        user = quote(self.user, safe="") + "@" if self.user else ""
        params = list(self.options)
        if self.host.startswith("/"):
            netloc = user
            params = [("host", self.host), ("port", str(self.port)), *params]
        else:
            host = f"[{self.host}]" if ":" in self.host else self.host
            netloc = f"{user}{host}:{self.port}"
        query = f"?{urlencode(params)}" if params else ""
        return f"postgresql://{netloc}/{quote(self.database, safe='')}{query}"

    def with_database(self, database: str) -> ConnInfo:
        """The same server and credentials, another database."""
        return ConnInfo(self.host, self.port, database, self.user, self.password, self.options)

    def password_env(self) -> dict[str, str]:
        """Environment for a libpq client: PGPASSWORD when the URL carried one, else nothing."""
        return {"PGPASSWORD": self.password} if self.password is not None else {}

    def __str__(self) -> str:
        return self.url


def _port(text: str | None, default: int = 5432) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("has an invalid port")
    return int(text)


def parse(url: str) -> ConnInfo:
    """Parse a `postgresql://user:password@host:port/database?params` URL.

    A unix-socket folder may be given as `?host=/path` (with `?port=`). Raises ValueError
    (with a message free of the password) when the URL is not of that form or uses a query
    parameter that would connect elsewhere than the URL says (dbname, hostaddr, service...).
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        # the standard library's message quotes the netloc, password included
        raise ValueError("is not a valid URL (percent-encode unusual characters)") from None
    if parts.scheme not in SCHEMES:
        raise ValueError("must be a postgresql:// URL")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for key, _value in pairs:
        if key in _REFUSED_PARAMS:
            raise ValueError(f"has ?{key}=, which is not supported: {_REFUSED_PARAMS[key]}")
    params = dict(pairs)
    try:
        netloc_port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    host = parts.hostname or ""
    if "host" in params:
        if host:
            raise ValueError("names its host twice (in the URL and in ?host=)")
        host, port = params["host"], _port(params.get("port"), netloc_port or 5432)
    elif "port" in params:
        raise ValueError("names its port in ?port=; put it after the host (host:PORT)")
    else:
        port = netloc_port or 5432
    if not host:
        raise ValueError("names no host")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError("names no database (postgresql://user@host:port/DATABASE)")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    options = tuple((k, v) for k, v in pairs if k not in ("host", "port"))
    return ConnInfo(host, port, database, user, password, options)


# libpq's environment variables that stand for a connection keyword (PostgreSQL's "Environment
# Variables" page). Host, port, database, hostaddr and service are not here: every URL names
# its own, and the production guard compares what the URL says. PGUSER fills the user part.
LIBPQ_VARIABLES = {
    "PGPASSFILE": "passfile",
    "PGREQUIREAUTH": "require_auth",
    "PGCHANNELBINDING": "channel_binding",
    "PGOPTIONS": "options",
    "PGAPPNAME": "application_name",
    "PGSSLMODE": "sslmode",
    "PGREQUIRESSL": "requiressl",
    "PGSSLNEGOTIATION": "sslnegotiation",
    "PGSSLCOMPRESSION": "sslcompression",
    "PGSSLCERT": "sslcert",
    "PGSSLKEY": "sslkey",
    "PGSSLCERTMODE": "sslcertmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PGSSLCRL": "sslcrl",
    "PGSSLCRLDIR": "sslcrldir",
    "PGSSLSNI": "sslsni",
    "PGREQUIREPEER": "requirepeer",
    "PGSSLMINPROTOCOLVERSION": "ssl_min_protocol_version",
    "PGSSLMAXPROTOCOLVERSION": "ssl_max_protocol_version",
    "PGGSSENCMODE": "gssencmode",
    "PGKRBSRVNAME": "krbsrvname",
    "PGGSSLIB": "gsslib",
    "PGGSSDELEGATION": "gssdelegation",
    "PGCONNECT_TIMEOUT": "connect_timeout",
    "PGCLIENTENCODING": "client_encoding",
    "PGTARGETSESSIONATTRS": "target_session_attrs",
    "PGLOADBALANCEHOSTS": "load_balance_hosts",
}


def with_variables(
    info: ConnInfo, variables: Mapping[str, str], password: str | None = None
) -> ConnInfo:
    """`info` completed by libpq `variables` (PGSSLMODE=require and the like, as an env file
    gives them) and by `password`: what the URL says wins, as it would in libpq. Gives a
    connection that needs no process environment to reach the same server the same way."""
    present = {key for key, _value in info.options}
    added = tuple(
        (keyword, variables[name])
        for name, keyword in LIBPQ_VARIABLES.items()
        if name in variables and keyword not in present
    )
    return ConnInfo(
        info.host,
        info.port,
        info.database,
        info.user if info.user is not None else variables.get("PGUSER"),
        info.password if info.password is not None else password,
        info.options + added,
    )

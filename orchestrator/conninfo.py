"""A parsed `postgresql://` URL that keeps its password apart from everything else.

The password never leaves this object except through `password_env()`, which the
subprocess runner and the database driver receive; every other view of the URL is
password-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class ConnInfo:
    """Where a database is and who connects to it; `password` is None when libpq finds it."""

    host: str
    port: int
    database: str
    user: str | None
    password: str | None = field(repr=False, compare=False)
    query: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        """The URL without the password: safe for argv and logs."""
        netloc = quote(self.user, safe="") + "@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if "host" not in dict(self.query):
            netloc += f"{host}:{self.port}"
        return urlunsplit(
            ("postgresql", netloc, "/" + quote(self.database), urlencode(self.query), "")
        )

    def with_database(self, database: str) -> ConnInfo:
        """The same server and credentials, another database."""
        return ConnInfo(self.host, self.port, database, self.user, self.password, self.query)

    def password_env(self) -> dict[str, str]:
        """Environment for a libpq client: PGPASSWORD when the URL carried one, else nothing."""
        return {"PGPASSWORD": self.password} if self.password is not None else {}

    def __str__(self) -> str:
        return self.url


def parse(url: str) -> ConnInfo:
    """Parse a `postgresql://user:password@host:port/database?params` URL.

    Raises ValueError (with a message free of the password) when the URL is not of that form.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise ValueError("must be a postgresql:// URL")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ValueError("has an invalid port") from None
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    host = parts.hostname or dict(query).get("host", "")
    if not host:
        raise ValueError("names no host")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError("names no database (postgresql://user@host:port/DATABASE)")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return ConnInfo(host, port, database, user, password, query)

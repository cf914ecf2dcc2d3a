"""What a backup's tables look like: columns with their types, keys, partitions.

Taken from the source's catalogs in the dump's own snapshot and kept in the manifest, so
tools that reason about the archive (masking rules, `mask check`) need no connection to
production and see exactly the schema the archive holds. Pure data; no I/O here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

CASELESS = "caseless"  # the compared_as of a column whose collation ignores case


class Column(BaseModel):
    """One column as the catalogs describe it.

    `type` is `format_type()` (for people: "character varying(50)", "public.email_domain");
    `base_type` is the internal name of the underlying type, domains resolved ("varchar",
    "bpchar", "text", "int4", "date", "timestamptz", "jsonb", "citext"...); `category` is
    pg_type.typcategory ("S" string, "N" numeric, "D" date/time, "B" boolean, "U" user
    types incl. json/jsonb, "A" array, "E" enum, "I" network...); `max_length` the n of
    varchar(n)/char(n), of the elements for arrays of them (None when unlimited).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    base_type: str
    category: str
    max_length: int | None = None
    not_null: bool = False  # NOT NULL on the column or its domain
    generated: bool = False  # generated columns are computed, never in the COPY data
    checks: tuple[str, ...] = ()  # CHECK constraints of its domain, or of the column alone
    labels: tuple[str, ...] = ()  # an enum's labels, in order (domains resolved; older: none)
    # how its collation tells values apart: "" byte for byte (deterministic ones); "case"
    # whatever their case and width (a nondeterministic ICU collation such as
    # und-u-ks-level2, as the server answered 'A' = 'a' but not 'e' = 'é'); "other" a
    # nondeterministic one that ignores more (accents, punctuation). Older backups: ""
    collation: str = ""

    @property
    def compared_as(self) -> str:
        """The base type whose equality the column's values follow: CASELESS for a
        column whose collation compares whatever the case, `base_type` otherwise."""
        return CASELESS if self.collation == "case" else self.base_type


class ForeignKey(BaseModel):
    """`columns` of the owning table reference `referenced_columns` of table `references`."""

    model_config = ConfigDict(frozen=True)

    columns: tuple[str, ...]
    references: str  # a table key (names.table_key)
    referenced_columns: tuple[str, ...]


class Table(BaseModel):
    """One table (a partitioned parent, a partition, or a plain table)."""

    model_config = ConfigDict(frozen=True)

    columns: tuple[Column, ...] = ()
    partitioned: bool = False
    parent: str | None = None  # the partitioned table a partition belongs to (a table key)
    unique: tuple[tuple[str, ...], ...] = ()  # primary key, unique constraints and indexes
    # the columns unique indexes on expressions read (lower(name)): unique keys too, for
    # what masking may do to them, though not keys a subset or a share can look rows up by
    unique_through: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    # its pg_class oid in the dumped snapshot: what `pg_restore --list` prints for its data,
    # the one exact link between a TOC line and a table (names print unquoted there)
    oid: int | None = None

    def column(self, name: str) -> Column | None:
        """Give the column called `name`, or None."""
        return next((c for c in self.columns if c.name == name), None)

    def key_columns(self) -> set[str]:
        """Give the columns that are part of a primary key or a unique constraint or index,
        alone or with others, or read by a unique index on an expression."""
        return {name for columns in self.unique for name in columns} | set(self.unique_through)


class SchemaFacts(BaseModel):
    """Every user table of the source, keyed like row counts (`names.table_key`)."""

    model_config = ConfigDict(frozen=True)

    tables: dict[str, Table] = Field(default_factory=dict)
    large_objects: int = 0

    def by_oid(self) -> dict[int, str]:
        """The table keys by their oid in the dumped snapshot (tables that recorded one)."""
        return {table.oid: key for key, table in self.tables.items() if table.oid is not None}

    def root_of(self, key: str) -> str:
        """The top partitioned table that `key` is a partition of (or `key` itself)."""
        seen = {key}
        table = self.tables.get(key)
        while table is not None and table.parent is not None and table.parent not in seen:
            key = table.parent
            seen.add(key)
            table = self.tables.get(key)
        return key

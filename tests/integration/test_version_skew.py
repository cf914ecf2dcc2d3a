"""A backup of the newest server restored onto the oldest one, plainly and masked: what the
old server lacks fails the restore clearly (exit 1, the server's error and the versions
named), and the target keeps its previous copy, no staging database left behind."""

from __future__ import annotations

import pytest

from tests.conftest import Clusters, backed_up_with_suggested_rules
from tests.harness.targets import fresh_target, old_content

pytestmark = pytest.mark.integration

NEWEST, OLDEST = 18, 14
NEWER_ONLY = """
CREATE TABLE customers (id int PRIMARY KEY, email text, nick text,
    CONSTRAINT one_nick UNIQUE NULLS NOT DISTINCT (nick));
INSERT INTO customers SELECT g, 'u' || g || '@x.example', 'n' || g FROM generate_series(1, 10) g;
"""


@pytest.mark.parametrize("target", ["backup", "dev"])
def test_a_feature_the_older_target_lacks_fails_clearly_and_keeps_its_copy(
    clusters: Clusters, tmp_path, target: str
):
    source, old = clusters.get(NEWEST), clusters.get(OLDEST)
    db = f"skew_{target}"
    source.create_database(db)
    source.psql(NEWER_ONLY, db)
    kept = fresh_target(old)
    orch, _rules = backed_up_with_suggested_rules(
        clusters, tmp_path, source.url(db), old.url(kept), "skew-mask-key-0123456789abcdef"
    )
    orch.env["BACKUP_DATABASE_URL"] = old.url(kept)
    result = orch.run("restore", "--target", target)
    assert result.returncode == 1, result.stderr[-1500:]
    last = result.stderr.strip().splitlines()[-1]
    assert 'syntax error at or near "NULLS"' in last
    assert f"the backup is of PostgreSQL {NEWEST}" in last and f"runs {OLDEST}" in last
    assert old_content(old, kept) == "old content"
    assert old.psql(f"SELECT count(*) FROM pg_database WHERE datname LIKE '{kept}%'") == "1"

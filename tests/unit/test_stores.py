"""Several stores: settings with _N variables, labels, the fan-out and fallback layer, and
what sync copies and rekey re-encrypts (decided without touching a store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import pytest

from orchestrator import catalog
from orchestrator.catalog import Copy, Encryption, Located, Manifest
from orchestrator.errors import ConfigError, Interrupted, NotFound, StorageError
from orchestrator.job import StoreConfig, store_labels
from orchestrator.logs import mask
from orchestrator.operations.rekey import stale
from orchestrator.operations.sync import missing_copies
from orchestrator.settings import StoreSettings, load_settings, numbered_stores
from orchestrator.storage import open_storage
from orchestrator.storage.multi import NamedStore, fan_out, first_success
from tests.conftest import initialised


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, []),
        ({"STORAGE_URL_2": "s3://b2/p"}, [(2, "s3://b2/p", None)]),
        (
            {
                "STORAGE_URL_3": "/mnt/nas",
                "STORAGE_URL_2": "s3://b2/p",
                "S3_ENDPOINT_URL_2": "https://e2",
            },
            [(2, "s3://b2/p", "https://e2"), (3, "/mnt/nas", None)],
        ),
        ({"STORAGE_URL_2": "  ", "S3_REGION": "x"}, []),
    ],
)
def test_numbered_variables_make_more_stores_in_order(
    variables: dict[str, str], expected: list[tuple[int, str, str | None]]
) -> None:
    stores = numbered_stores(variables)
    assert [(s.number, s.url, s.endpoint_url) for s in stores] == expected


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"AWS_ACCESS_KEY_ID_2": "k"}, "AWS_ACCESS_KEY_ID_2 is set but STORAGE_URL_2 is not"),
        (
            {"STORAGE_URL_2": "s3://b/p", "S3_ENDPOINT_URL_2": "ftp://x"},
            "S3_ENDPOINT_URL_2: must start",
        ),
        ({"STORAGE_URL_2": "s3://b/p", "S3_MAX_CONCURRENCY_2": "0"}, "S3_MAX_CONCURRENCY_2: "),
        (
            {"STORAGE_URL_2": "s3://b/p", "S3_CHECKSUM_ALGORITHM_2": "MD5"},
            "S3_CHECKSUM_ALGORITHM_2: ",
        ),
        ({"STORAGE_URL_12": "s3://b/p"}, "STORAGE_URL_12: stores are numbered 2 to 9"),
        ({"STORAGE_URL_1": "s3://b/p"}, "STORAGE_URL_1: stores are numbered 2 to 9"),
    ],
)
def test_bad_store_variables_name_the_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        numbered_stores(variables)
    assert str(caught.value).startswith(message)


def test_a_second_store_keeps_its_own_secret_key_out_of_every_message() -> None:
    secret = "second-store-secret-81ae"
    (store,) = numbered_stores({"STORAGE_URL_2": "s3://b/p", "AWS_SECRET_ACCESS_KEY_2": secret})
    assert secret not in repr(store) and secret not in repr(store.s3_options())
    assert store.s3_options().secret_access_key == secret
    assert mask(f"boom {secret}") == "boom ***"


def test_load_settings_reads_numbered_stores_from_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("STORAGE_URL=/a\nSTORAGE_URL_2=/b\nS3_REGION_2=eu-west-1\n")
    monkeypatch.setenv("STORAGE_URL_3", "/c")
    settings = load_settings(tmp_path / ".env")
    assert [(s.setting, s.url) for s in settings.stores()] == [
        ("STORAGE_URL", "/a"),
        ("STORAGE_URL_2", "/b"),
        ("STORAGE_URL_3", "/c"),
    ]
    assert settings.stores()[1].region == "eu-west-1"
    assert settings.model_copy().stores() == settings.stores()


def _store(number: int, url: str, endpoint: str | None = None) -> StoreSettings:
    return StoreSettings(number=number, url=url, endpoint_url=endpoint)


@pytest.mark.parametrize(
    ("stores", "labels"),
    [
        ([_store(1, "a"), _store(2, "b")], ["a", "b"]),
        (
            [_store(1, "s3://b/p", "http://h1:9000"), _store(2, "s3://b/p", "https://h2")],
            ["s3://b/p@h1:9000", "s3://b/p@h2"],
        ),
        ([_store(1, "s3://b/p"), _store(2, "s3://b/p")], ["s3://b/p#1", "s3://b/p#2"]),
    ],
)
def test_labels_tell_stores_apart(stores: list[StoreSettings], labels: list[str]) -> None:
    configs = tuple(StoreConfig(s.number, s.url, s.s3_options()) for s in stores)
    assert store_labels(configs, [s.url for s in stores]) == labels


def test_a_bad_second_store_url_names_its_own_variable() -> None:
    with pytest.raises(ConfigError, match=r"^STORAGE_URL_2: unsupported scheme"):
        open_storage("ftp://x/y", _store(2, "ftp://x/y").s3_options())


def _named(tmp_path: Path, *names: str) -> list[NamedStore]:
    return [
        NamedStore(n, f"STORAGE_URL_{i + 1}", initialised(open_storage(str(tmp_path / n))))
        for i, n in enumerate(names)
    ]


def test_fan_out_gives_every_store_its_own_outcome(tmp_path: Path) -> None:
    stores = _named(tmp_path, "one", "two", "three")

    def work(store: NamedStore) -> str:
        if store.label == "two":
            raise StorageError("two is down")
        return store.label.upper()

    outcomes = fan_out(stores, work)
    assert [(o.store.label, o.value, str(o.error) if o.error else None) for o in outcomes] == [
        ("one", "ONE", None),
        ("two", None, "two is down"),
        ("three", "THREE", None),
    ]


def test_a_stop_is_never_swallowed_as_one_store_failing(tmp_path: Path) -> None:
    def work(_store: NamedStore) -> None:
        raise Interrupted("stopped by SIGTERM", 15)

    for stores in (_named(tmp_path, "one"), _named(tmp_path, "one", "two")):
        with pytest.raises(Interrupted):
            fan_out(stores, work)
        with pytest.raises(Interrupted):
            first_success(stores, work, "read")


def test_first_success_falls_back_in_order_and_logs_why(tmp_path: Path) -> None:
    stores = _named(tmp_path, "one", "two", "three")
    tried: list[str] = []

    def work(store: NamedStore) -> str:
        tried.append(store.label)
        if store.label != "three":
            raise NotFound(f"nothing in {store.label}")
        return "found"

    assert first_success(stores, work, "read") == "found"
    assert tried == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("errors", "kind", "text"),
    [
        ([StorageError("down")], StorageError, "down"),
        (
            [ConfigError("A: denied"), ConfigError("B: no bucket")],
            ConfigError,
            "one: A: denied; two: B",
        ),
        (
            [ConfigError("A: denied"), StorageError("down")],
            Exception,
            "could not read from any store",
        ),
    ],
)
def test_when_every_store_fails_the_error_names_each(
    tmp_path: Path, errors: list[Exception], kind: type[Exception], text: str
) -> None:
    stores = _named(tmp_path, "one", "two")[: len(errors)]
    failures: Iterator[Exception] = iter(errors)

    def work(_store: NamedStore) -> None:
        raise next(failures)

    with pytest.raises(kind, match=text.replace("(", r"\(")) as caught:
        first_success(stores, work, "read")
    if len(errors) > 1 and kind is Exception:
        assert not isinstance(caught.value, ConfigError)


def _manifest(backup_id: str, recipients: tuple[str, ...] | None = None) -> Manifest:
    return Manifest(
        id=backup_id,
        created_at=datetime(2026, 11, 30, 6, tzinfo=UTC),
        database="shop",
        dump_key=catalog.dump_key_for(backup_id, encrypted=recipients is not None),
        size_bytes=10,
        sha256="ab",
        server_version="17.2",
        server_version_num=170002,
        pg_dump_version="17.2",
        duration_seconds=1.0,
        encryption=Encryption(recipients=recipients) if recipients else None,
    )


def test_missing_copies_lists_each_backup_with_the_stores_that_lack_it(tmp_path: Path) -> None:
    one, two, three = _named(tmp_path, "one", "two", "three")
    a, b = _manifest("shop-20261130T060000Z"), _manifest("shop-20261129T060000Z")
    everywhere = Located((Copy(one, a), Copy(two, a), Copy(three, a)))
    partly = Located((Copy(two, b),))
    gaps = missing_copies([everywhere, partly], [one, two, three])
    assert [(g.manifest.id, [s.label for s in lacking]) for g, lacking in gaps] == [
        ("shop-20261129T060000Z", ["one", "three"])
    ]


@pytest.mark.parametrize(
    ("damaged", "expected"),
    [
        ({}, []),  # every copy whole: nothing to do
        ({"one": {"shop-20261130T060000Z"}}, [(["two", "three"], ["one"])]),
        (
            {"one": {"shop-20261130T060000Z"}, "two": {"shop-20261130T060000Z"}},
            [(["three"], ["one", "two"])],
        ),
        ({"one": {"x"}, "two": {"shop-20261130T060000Z"}}, [(["one", "three"], ["two"])]),
        ({label: {"shop-20261130T060000Z"} for label in ("one", "two", "three")}, []),  # none whole
    ],
)
def test_a_damaged_copy_counts_as_lacking_and_is_never_copied_from(
    tmp_path: Path, damaged: dict[str, set[str]], expected: list[tuple[list[str], list[str]]]
) -> None:
    one, two, three = _named(tmp_path, "one", "two", "three")
    a = _manifest("shop-20261130T060000Z")
    everywhere = Located((Copy(one, a), Copy(two, a), Copy(three, a)))
    gaps = missing_copies([everywhere], [one, two, three], damaged)
    assert [(g.stores, [s.label for s in lacking]) for g, lacking in gaps] == expected


KEY_A = str(pyrage.x25519.Identity.generate().to_public())
KEY_B = str(pyrage.x25519.Identity.generate().to_public())


@pytest.mark.parametrize(
    ("stored", "current", "expected"),
    [
        (None, [KEY_A], True),
        ((KEY_A,), [KEY_A], False),
        ((KEY_A, KEY_B), [KEY_B, KEY_A], False),
        ((KEY_A,), [KEY_A, KEY_B], True),
        ((KEY_A, KEY_B), [KEY_B], True),
    ],
)
def test_a_copy_is_stale_unless_encrypted_to_exactly_the_current_recipients(
    tmp_path: Path, stored: tuple[str, ...] | None, current: list[str], expected: bool
) -> None:
    (one,) = _named(tmp_path, "one")
    assert stale(Copy(one, _manifest("shop-20261130T060000Z", stored)), current) is expected


def test_commands_that_do_not_mask_never_load_the_masking_core():
    """numpy and cryptography cost every command 0.2 s and 25 MiB: only masking loads them."""
    import subprocess
    import sys

    code = (
        "import sys, orchestrator.cli, orchestrator.commands.pipeline;"
        "from orchestrator.operations import masked_load;"
        "from orchestrator.masking import transforms;"
        "print(masked_load.KEY_SETTING == transforms.KEY_SETTING)"
    )
    quiet = "import sys, orchestrator.cli, orchestrator.commands.pipeline;" + (
        "print('numpy' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", quiet], capture_output=True, text=True).stdout.strip()
        == "False"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "True"
    )

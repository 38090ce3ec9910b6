"""Key rotation as the operator runs it (broker.services.rotation, `broker keys rewrap|retire|
status`): progress reports over the sealed layer's rewrap, and retiring a key that is still
in use. The rewrap itself is tested on real stores in tests/store/test_rewrap.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import metrics
from broker.crypto import Keyring, save_keyring
from broker.errors import UnknownKey
from broker.services.rotation import Progress, rewrap
from broker.store import keys, open_store
from tests.store.rewrap_support import BOTH, OLD, cli_run, fill, key_ids, sealed


def test_progress_rate_and_eta() -> None:
    assert Progress(done=0, total=100, rewrapped=0, elapsed=0.0).eta is None
    halfway = Progress(done=50, total=100, rewrapped=40, elapsed=2.0)
    assert (halfway.rate, halfway.eta) == (25.0, 2.0)
    # records created since the count can take `done` past `total`: nothing is left then
    assert Progress(done=120, total=100, rewrapped=120, elapsed=1.0).eta == 0


async def test_progress_is_reported_per_page_and_once_at_the_end(tmp_path: Path) -> None:
    raw = await open_store(f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        await fill(sealed(raw, OLD), 1000)
        reports: list[Progress] = []
        # a stale total (records were created since the count) is raised to what was scanned
        summary = await rewrap(
            sealed(raw, BOTH), batch=100, total=10, on_progress=reports.append, progress_every=0
        )
        assert summary.ok and summary.rewrapped == 1000
        done = [p.done for p in reports]
        assert done == sorted(done) and len(reports) >= 10
        assert reports[-1] == Progress(1000, 1000, 1000, summary.elapsed)
        assert all(p.total == max(10, p.done) for p in reports)

        quiet: list[Progress] = []
        again = await rewrap(
            sealed(raw, BOTH), batch=100, on_progress=quiet.append, progress_every=3600
        )
        assert (again.skipped, again.rewrapped) == (1000, 0)
        assert quiet == [Progress(1000, 1000, 0, again.elapsed)]
    finally:
        await raw.close()


def rewrap_gauge(name: str, **labels: str) -> float:
    found = metrics.REWRAP_REGISTRY.get_sample_value(name, labels)
    assert found is not None, name
    return found


async def test_the_rewrap_keeps_its_progress_in_its_metrics(tmp_path: Path) -> None:
    raw = await open_store(f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        await fill(sealed(raw, OLD), 500)
        await sealed(raw, BOTH).put(keys.connection("conn_fresh"), b"{}")
        seen: list[tuple[float, float]] = []

        def during(p: Progress) -> None:
            running = rewrap_gauge("broker_rewrap_running")
            seen.append((running, rewrap_gauge("broker_rewrap_records", result="scanned")))

        await rewrap(sealed(raw, BOTH), batch=50, total=501, on_progress=during, progress_every=0)
        scanned = [done for _, done in seen]
        assert scanned == sorted(scanned) and len(scanned) >= 10  # page by page
        assert {running for running, _ in seen[:-1]} == {1}
        assert rewrap_gauge("broker_rewrap_running") == 0
        assert rewrap_gauge("broker_rewrap_expected_records") == 501
        results = ("scanned", "rewrapped", "skipped", "vanished", "failed")
        counts = [rewrap_gauge("broker_rewrap_records", result=r) for r in results]
        assert counts == [501, 500, 1, 0, 0]
    finally:
        await raw.close()


async def test_keys_rewrap_writes_its_metrics_file(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'broker.db'}"
    keyring_file = tmp_path / "keyring.json"
    save_keyring(keyring_file, BOTH)
    raw = await open_store(store_url)
    try:
        await fill(sealed(raw, OLD), 120)
    finally:
        await raw.close()
    target = tmp_path / "textfile" / "broker_rewrap.prom"
    target.parent.mkdir()
    code, _, _ = cli_run(store_url, keyring_file, "rewrap", "--metrics-file", str(target))
    assert code == 0
    samples = {
        (s.name, tuple(s.labels.values())): s.value
        for family in text_string_to_metric_families(target.read_text())
        for s in family.samples
    }
    assert samples[("broker_rewrap_records", ("rewrapped",))] == 120
    assert samples[("broker_rewrap_expected_records", ())] == 120
    assert samples[("broker_rewrap_running", ())] == 0
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


# --- retire -----------------------------------------------------------------------------------


async def test_retire_refuses_while_used_and_a_retired_key_is_named(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'broker.db'}"
    keyring_file = tmp_path / "keyring.json"
    save_keyring(keyring_file, BOTH)
    raw = await open_store(store_url)
    try:
        names = await fill(sealed(raw, OLD), 30)
        await sealed(raw, BOTH).put(keys.connection("conn_fresh"), b"{}")

        code, out, _ = cli_run(store_url, keyring_file, "rewrap", "--dry-run")
        assert code == 0
        assert "31 scanned, 30 would rewrap, 1 skipped (already primary)" in out
        assert await key_ids(raw) == {"k-old": 30, "k-new": 1}  # a dry run writes nothing

        code, _, err = cli_run(store_url, keyring_file, "retire", "k-old")
        assert code == 1
        assert "refusing to retire k-old: 30 record(s)" in err
        code, _, err = cli_run(store_url, keyring_file, "retire", "k-new")
        assert code == 2
        assert "primary" in err
        assert Keyring.load(keyring_file).ids == ["k-new", "k-old"]

        # An operator removes the key by hand anyway: its records fail by name, stay stored.
        save_keyring(keyring_file, BOTH.without("k-old"))
        with pytest.raises(UnknownKey, match="k-old") as caught:
            await sealed(raw, BOTH.without("k-old")).get(names[0])
        assert caught.value.key_id == "k-old"
        code, out, _ = cli_run(store_url, keyring_file, "rewrap")
        assert code == 1
        assert "failed: unknown key k-old: 30 (e.g. {conn_000000}:record" in out
        assert await key_ids(raw) == {"k-old": 30, "k-new": 1}

        # Put the key back: rewrap completes and retire goes through.
        save_keyring(keyring_file, BOTH)
        assert cli_run(store_url, keyring_file, "rewrap")[0] == 0
        code, out, _ = cli_run(store_url, keyring_file, "retire", "k-old")
        assert code == 0, out
        assert Keyring.load(keyring_file).ids == ["k-new"]
        code, out, _ = cli_run(store_url, keyring_file, "status")
        assert code == 0
        # every record (the test's 31 and the rewraps' own keys.rewrap_completed events) under
        # the one remaining key
        words = out.split()
        assert words[:6] == ["KEY", "ID", "PRIMARY", "RECORDS", "k-new", "yes"]
        assert len(words) == 7 and int(words[6]) > 31
    finally:
        await raw.close()

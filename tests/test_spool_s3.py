"""The spool on S3 (a real SeaweedFS on loopback): the same promises as on a local folder."""

from __future__ import annotations

import datetime
import signal
import time
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud import spool
from tap_tradecloud.spool import EventMeta, SpoolConflictError, SpoolWriter
from tests.seaweedfs import SeaweedFS
from tests.webhook_helpers import (
    Load,
    ReceiverProcess,
    auth_headers,
    bookmarks,
    config,
    event_body,
    receiver_in_thread,
    sync,
    ten_events_after_restart,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

META = EventMeta(received_at="2026-01-02T03:04:05.678Z", method="POST", path="/webhooks/tradecloud")


def test_writer_and_reader_on_s3_group_commit_in_order(s3_spool: str, tmp_path: Path) -> None:
    bodies = [f'{{"n":{n}}}'.encode() for n in range(200)]
    with SpoolWriter(s3_spool, "edge-a") as writer:
        futures = [writer.submit(body, META) for body in bodies]  # arrive together
        sequences = [future.result(timeout=30) for future in futures]
        name = writer.quarantine(b"not json", META, "body is not valid JSON")

    store = spool.open_store(s3_spool)
    assert sequences == list(range(1, 201))
    assert 1 <= len(store.segments("edge-a")) < 200  # grouped: fewer PUTs than events
    assert [(e.sequence, e.body) for e in spool.iter_events(s3_spool, "edge-a")] == list(
        zip(sequences, bodies, strict=True)
    )
    assert [e.sequence for e in spool.iter_events(s3_spool, "edge-a", after=150)] == list(
        range(151, 201)
    )
    assert spool.highest_sequence(s3_spool, "edge-a") == 200
    assert spool.list_partitions(s3_spool) == ["edge-a"]
    assert spool.partition_identity(s3_spool, "edge-a")
    [kept] = spool.iter_quarantine(s3_spool, "edge-a")
    assert (kept.name, kept.body, kept.reason) == (name, b"not json", "body is not valid JSON")
    assert list(tmp_path.iterdir()) == []  # nothing on local disk


def test_a_second_writer_with_the_same_id_overwrites_nothing_on_s3(s3_spool: str) -> None:
    with SpoolWriter(s3_spool, "edge-a") as first, SpoolWriter(s3_spool, "edge-a") as second:
        assert first.write_event(b'{"first":1}', META) == 1
        with pytest.raises(SpoolConflictError, match=r"already exists.*Nothing was overwritten"):
            second.write_event(b'{"second":1}', META)
        assert second.write_event(b'{"second":2}', META) == 2  # it read the partition's end
        with pytest.raises(SpoolConflictError):
            first.write_event(b'{"first":2}', META)

    read = [(e.sequence, e.body) for e in spool.iter_events(s3_spool, "edge-a")]
    assert read == [(1, b'{"first":1}'), (2, b'{"second":2}')]


def test_pruning_on_s3_deletes_only_segments_at_or_below_the_bookmark(s3_spool: str) -> None:
    with SpoolWriter(s3_spool, "edge-a") as writer:
        for n in range(5):
            writer.write_event(f'{{"n":{n}}}'.encode(), META)  # one segment each
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    earlier = later - datetime.timedelta(days=1)

    assert spool.prune_events(s3_spool, "edge-a", up_to=3, received_before=earlier) == []
    assert spool.prune_events(s3_spool, "edge-a", up_to=3, received_before=later) == [1, 2, 3]
    assert spool.prune_events(s3_spool, "edge-a", up_to=5, received_before=later) == [4]
    assert [e.sequence for e in spool.iter_events(s3_spool, "edge-a")] == [5]
    with SpoolWriter(s3_spool, "edge-a") as writer:
        assert writer.write_event(b"{}", META) == 6  # the kept last segment says where it goes


def test_two_receivers_on_one_bucket_one_killed_every_acknowledged_event_once(
    s3_spool: str, tmp_path: Path
) -> None:
    cwd, logs = tmp_path / "cwd", tmp_path / "logs"
    cwd.mkdir()
    logs.mkdir()

    def receiver(instance: str) -> ReceiverProcess:
        return ReceiverProcess(s3_spool, instance, log_dir=logs, cwd=cwd)

    edge_a, edge_b = receiver("edge-a"), receiver("edge-b")
    try:
        edge_a.wait_healthy()
        edge_b.wait_healthy()
        load_a = Load(edge_a.webhook_url, threads=4, per_thread=80, prefix="a").start()
        load_b = Load(edge_b.webhook_url, threads=4, per_thread=80, prefix="b").start()
        load_a.wait_for_acknowledgements(100)
        edge_a.process.send_signal(signal.SIGKILL)
        load_a.join()
        load_b.join()
    finally:
        edge_a.stop()
        edge_b.stop()
    restarted = receiver("edge-a")
    after = ten_events_after_restart(restarted)

    records, states, _ = sync(config(s3_spool))
    again, _, _ = sync(config(s3_spool), states[-1])

    acknowledged = load_a.acknowledged | load_b.acknowledged | after.acknowledged
    attempted = load_a.attempted | load_b.attempted | after.attempted
    read = [record["event_id"] for record in records]
    assert len(load_a.acknowledged) >= 100
    assert load_a.failed > 0  # the kill hit the receiver under load
    assert len(load_b.acknowledged) == 4 * 80
    assert len(after.acknowledged) == 10
    assert len(read) == len(set(read))  # none read twice
    assert acknowledged <= set(read)  # every acknowledged one read
    assert set(read) <= attempted  # nothing else
    assert again == []  # a rerun emits nothing
    assert set(bookmarks(states[-1])) == {"edge-a", "edge-b"}
    assert list(cwd.iterdir()) == []  # nothing written to local disk


def test_two_receivers_with_the_same_id_overwrite_nothing(s3_spool: str, tmp_path: Path) -> None:
    receivers = [ReceiverProcess(s3_spool, "edge", log_dir=tmp_path) for _ in range(2)]
    try:
        for running in receivers:
            running.wait_healthy()
        loads = [
            Load(r.webhook_url, threads=4, per_thread=30, prefix=f"r{i}").start()
            for i, r in enumerate(receivers)
        ]
        for load in loads:
            load.join()
    finally:
        for running in receivers:
            running.stop()

    records, _, _ = sync(config(s3_spool))

    acknowledged = set().union(*(load.acknowledged for load in loads))
    read = [record["event_id"] for record in records]
    assert sum(load.failed for load in loads) > 0  # the second writer's first segment conflicted
    assert any("already exists" in running.log() for running in receivers)  # said loudly
    assert len(read) == len(set(read))
    assert acknowledged <= set(read)  # nothing acknowledged was overwritten


@pytest.fixture
def own_seaweedfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    server = SeaweedFS(tmp_path / "weed").start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()


def post(url: str, message_id: str) -> int:
    body = event_body(message_id=message_id)
    return requests.post(url, data=body, headers=auth_headers(), timeout=30).status_code


def test_with_the_store_down_the_receiver_answers_503_then_recovers(
    own_seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    url = f"s3://{own_seaweedfs.create_bucket()}/spool"
    statuses: dict[str, int] = {}
    with receiver_in_thread(url, instance="edge") as running:  # type: ignore[arg-type]
        statuses["before"] = post(running.webhook_url, "before")
        own_seaweedfs.stop(grace=0)  # the store crashes
        statuses["down"] = post(running.webhook_url, "down")
        health = requests.get(running.url + "/healthz", timeout=30).status_code
        own_seaweedfs.start()
        deadline = time.monotonic() + 60
        while (status := post(running.webhook_url, "after")) != 200:
            assert time.monotonic() < deadline, f"still {status} after the store came back"
            time.sleep(0.5)
        statuses["after"] = status

    records, _, _ = sync(config(url))

    assert statuses == {"before": 200, "down": 503, "after": 200}
    assert health == 503
    read = [record["event"]["orderEvent"]["meta"]["messageId"] for record in records]
    assert "before" in read
    assert "after" in read
    assert "down" not in read  # nothing acknowledged, nothing stored
    assert len(read) == len(set(read))

"""The contract every trial store passes, shipped for plug-in stores (as ``optuna.testing.storages``).

A store class is tested by subclassing :class:`StoreContract` in a pytest test module and
overriding its ``store`` fixture: a fresh, empty store whose URL other connections and
processes reach through :func:`tracker.store.open_store` (register the store's URL scheme,
e.g. by its ``tracker.stores`` entry point)::

    from tracker.testing.store import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            store = MyStore.from_url(f"mystore://{tmp_path}/db")
            yield store
            store.close()

Everything here uses real connections, threads and processes. This module imports pytest:
only tests import it.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tracker.errors import NotFoundError, StoreError, UsageError
from tracker.store import (
    FORGOTTEN_ON_REQUEUE,
    STATUSES,
    TRANSITIONS,
    BaseStore,
    Configuration,
    MetricPoint,
    Optimization,
    TestUse,
    Trial,
    Worker,
    now,
    open_store,
    sources,
)

__all__ = ["CLAIMER", "RACER", "SHA", "StoreContract", "make", "optimization"]

SHA = "ab" * 32
"""A sha256 for artifact records."""

def make(status: str = "queued", **kw: Any) -> Trial:
    """A trial record with a fresh id; any field can be given."""
    kw.setdefault("id", uuid.uuid4().hex[:12])
    kw.setdefault("experiment", "e")
    kw.setdefault("seed", 1)
    kw.setdefault("params", {"lr": 0.1})
    kw.setdefault("created", now())
    return Trial(status=status, **kw)


def optimization(id: str, **kw: Any) -> Optimization:
    """An optimization record; any field can be given."""
    kw.setdefault("experiment", "quad")
    kw.setdefault("strategy", "tpe")
    kw.setdefault("settings", {"metric": "val/loss", "goal": "min"})
    kw.setdefault("status", "running")
    kw.setdefault("created", now())
    return Optimization(id=id, **kw)

# a separate process racing for trials through its own connection (ids on stdin, wins on stdout)
RACER = textwrap.dedent("""
    import json, sys, time
    from tracker.store import open_store
    store = open_store(sys.argv[1])
    ids = json.loads(sys.stdin.read())
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    won = [t for t in ids if store.transition(t, "running", expected=["queued"], owner={"proc": sys.argv[3]})]
    store.close()
    print(json.dumps(won))
""")

CLAIMER = textwrap.dedent("""
    import json, sys, time
    from tracker.store import open_store
    store = open_store(sys.argv[1])
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    won = []
    while True:
        got = store.claim("q", {"worker": sys.argv[3]}, lease=60, limit=int(sys.argv[4]))
        if not got:
            break
        won += [t.id for t in got]
    store.close()
    print(json.dumps(won))
""")


class StoreContract:
    """Subclasses override ``store`` (a fresh, empty store that ``open_store(store.url)`` reaches)."""

    @pytest.fixture
    def store(self) -> Iterator[BaseStore]:
        raise NotImplementedError

    def connect(self, store: BaseStore) -> BaseStore:
        """Another connection to the same store (as another command or machine would open it)."""
        return open_store(store.url)

    @contextlib.contextmanager
    def nothing_written(self, store: BaseStore) -> Iterator[None]:
        """Every record and event is as it was after the block."""
        def snapshot() -> tuple[list[Trial], dict[str, Any]]:
            trials = store.list_trials()
            return trials, {t.id: (store.events(t.id), store.metrics(t.id), store.artifacts(t.id)) for t in trials}

        before = snapshot()
        yield
        assert snapshot() == before

    # ------------------------------------------------------------------ the transition table

    def test_sources_is_the_transition_table_read_backwards(self) -> None:
        assert set(TRANSITIONS) == set(STATUSES)
        for status in STATUSES:
            assert sources(status) == {s for s in STATUSES if status in TRANSITIONS[s]}
        with pytest.raises(ValueError, match="unknown status"):
            sources("paused")

    @pytest.mark.parametrize("source", STATUSES)
    def test_every_transition_follows_the_table(self, store: BaseStore, source: str) -> None:
        for target in STATUSES:
            trial = make(source)
            store.add_trials([trial])
            events = len(store.events(trial.id))
            if target in TRANSITIONS[source]:
                assert store.transition(trial.id, target, event="why"), (source, target)
                assert store.get(trial.id).status == target
                assert store.events(trial.id)[-1].message == f"{target}: why"
            else:
                # not allowed from here: a compare-and-set that does not match...
                assert not store.transition(trial.id, target), (source, target)
                # ...and asking for it explicitly is a programming error
                with pytest.raises(ValueError):
                    store.transition(trial.id, target, expected=[source])
                assert store.get(trial.id).status == source
                assert len(store.events(trial.id)) == events  # a refused change leaves no trace

    def test_expected_narrows_the_table(self, store: BaseStore) -> None:
        trial = make("queued")
        store.add_trials([trial])
        assert not store.transition(trial.id, "cancelled", expected=["running"])
        assert store.get(trial.id).status == "queued"
        assert store.transition(trial.id, "cancelled", expected=["running", "queued"])
        with pytest.raises(ValueError):
            store.transition(trial.id, "paused")
        assert not store.transition("000000000000", "running")  # no such trial: nothing to win

    def test_transition_sets_fields_and_running_clears_a_stale_stop_request(self, store: BaseStore) -> None:
        trial = make("lost", stop_requested="cancelled by the user", error="no heartbeat")
        store.add_trials([trial])
        assert store.transition(trial.id, "running", expected=["lost"], error=None, host="gpu9")
        current = store.get(trial.id)
        assert (current.status, current.stop_requested, current.error, current.host) == ("running", None, None, "gpu9")
        with pytest.raises(ValueError):  # fields go through the same rules as update()
            store.transition(trial.id, "completed", extra={"x": 1})
        assert store.get(trial.id).status == "running"  # and a refused field undoes the whole change

    # ------------------------------------------------------------------ compare-and-set

    def test_racing_threads_each_win_a_trial_exactly_once(self, store: BaseStore) -> None:
        trials = [make("queued") for _ in range(60)]
        store.add_trials(trials)
        ids = [t.id for t in trials]
        workers = 4
        conns = [self.connect(store) for _ in range(workers)]
        barrier = threading.Barrier(workers)
        wins: list[list[str]] = [[] for _ in range(workers)]
        errors: list[BaseException] = []

        def race(k: int) -> None:
            try:
                barrier.wait()
                for tid in (ids if k % 2 == 0 else ids[::-1]):
                    if conns[k].transition(tid, "running", expected=["queued"], owner={"worker": k}):
                        wins[k].append(tid)
            except BaseException as exc:  # reported below: a thread's assertion would be lost
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(k,)) for k in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for conn in conns:
            conn.close()
        assert not errors, errors
        won = [tid for w in wins for tid in w]
        assert sorted(won) == sorted(ids)  # every trial won, none twice
        for k, w in enumerate(wins):
            for tid in w:
                trial = store.get(tid)
                assert trial.status == "running" and trial.owner == {"worker": k}
                assert [e.message for e in store.events(tid)] == ["queued", "running"]

    def test_start_racing_cancel_has_one_winner(self, store: BaseStore) -> None:
        trials = [make("queued") for _ in range(40)]
        store.add_trials(trials)
        a, b = self.connect(store), self.connect(store)
        barrier = threading.Barrier(2)
        results: dict[str, dict[str, bool]] = {"running": {}, "cancelled": {}}

        def race(conn: BaseStore, status: str) -> None:
            barrier.wait()
            for t in trials:
                results[status][t.id] = conn.transition(t.id, status, expected=["queued"])

        threads = [threading.Thread(target=race, args=(a, "running")),
                   threading.Thread(target=race, args=(b, "cancelled"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        a.close()
        b.close()
        for t in trials:
            started, cancelled = results["running"][t.id], results["cancelled"][t.id]
            assert started != cancelled, t.id
            assert store.get(t.id).status == ("running" if started else "cancelled")

    def test_racing_processes_each_win_a_trial_exactly_once(self, store: BaseStore) -> None:
        trials = [make("queued") for _ in range(100)]
        store.add_trials(trials)
        ids = [t.id for t in trials]
        start = time.time() + 2.0  # every process imported and connected by then
        procs = [subprocess.Popen([sys.executable, "-c", RACER, store.url, str(start), str(k)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in range(3)]
        outputs = []
        for k, proc in enumerate(procs):
            order = ids if k % 2 == 0 else ids[::-1]
            out, err = proc.communicate(json.dumps(order), timeout=60)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out))
        won = [tid for w in outputs for tid in w]
        assert sorted(won) == sorted(ids)
        for k, w in enumerate(outputs):
            assert all(store.get(tid).owner == {"proc": str(k)} for tid in w)

    # ------------------------------------------------------------------ the queue

    def test_claim_takes_the_oldest_queued_trials_of_its_queue(self, store: BaseStore) -> None:
        queued = [make("queued", queue="q", max_attempts=2, created=f"2026-01-0{d}T00:00:00.000Z")
                  for d in (3, 1, 2)]
        others = [make("queued", heartbeat=5.0, owner={"pid": 1}), make("queued", queue="other"),
                  make("failed", queue="q")]
        store.add_trials(queued + others)
        owner = {"worker": "w1", "host": "h", "pid": 1}
        got = store.claim("q", owner, lease=30, limit=2, at=1000.0)
        assert [t.id for t in got] == [queued[1].id, queued[2].id]
        for t in got:
            assert (t.status, t.owner, t.heartbeat, t.lease, t.attempts, t.handle) == ("running", owner, 1000.0, 30,
                                                                                        1, {})
            assert t.started and t.host == "h"
            assert store.events(t.id)[-1].message == "running: claimed by w1 (attempt 1 of 2)"
        assert [t.id for t in self.connect(store).claim("q", owner, lease=30, limit=5)] == [queued[0].id]
        assert store.claim("q", owner, lease=30) == []
        assert [store.get(t.id).status for t in others] == ["queued", "queued", "failed"]
        assert store.count(queue="q") == 4 and store.count_by_status(queue="q") == {"e": {"running": 3, "failed": 1}}
        assert self.connect(store).queue_counts() == {"q": {"e": {"running": 3, "failed": 1}},
                                                      "other": {"e": {"queued": 1}}}
        owned = {t.id for t in store.list_trials(status=["queued", "running"], owned=True)}
        assert owned == {queued[0].id, queued[1].id, queued[2].id, others[0].id}  # not those waiting in a queue

    @pytest.mark.parametrize("limit", [1, 3])
    def test_racing_claimers_never_get_the_same_trial(self, store: BaseStore, limit: int) -> None:
        trials = [make("queued", queue="q") for _ in range(150)]
        store.add_trials(trials)
        start = time.time() + 2.0
        procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, store.url, str(start), f"w{k}", str(limit)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
        won = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            won.append(json.loads(out))
        flat = [tid for w in won for tid in w]
        assert sorted(flat) == sorted(t.id for t in trials)  # each exactly once
        for k, w in enumerate(won):
            assert all(store.get(tid).owner == {"worker": f"w{k}"} for tid in w)
        assert {store.get(t.id).attempts for t in trials} == {1}

    def test_every_error_of_a_queue_trial_is_kept(self, store: BaseStore) -> None:
        queued, plain = make("queued", queue="q", max_attempts=3), make("running")
        store.add_trials([queued, plain])
        store.claim("q", {"worker": "w1"}, lease=30)
        assert store.finalize(queued.id, "failed", exit_code=1, error="exit code 1\nboom")
        assert store.finalize(plain.id, "failed", exit_code=1, error="exit code 1")
        assert store.get(plain.id).errors == []
        [entry] = store.get(queued.id).errors
        assert entry["attempt"] == 1 and entry["status"] == "failed" and entry["worker"] == "w1"
        assert entry["error"] == "exit code 1\nboom" and entry["at"]
        assert store.requeue(queued.id, expected=["failed"])  # by hand: a retry of a failure
        store.claim("q", {"worker": "w2"}, lease=30)
        store.transition(queued.id, "cancelled", expected=["running"], error="the worker stopped")
        errors = store.get(queued.id).errors
        assert [(e["attempt"], e["status"], e["worker"]) for e in errors] == [(1, "failed", "w1"),
                                                                             (2, "cancelled", "w2")]

    def test_requeue_only_with_attempts_left_and_forgets_the_attempt(self, store: BaseStore) -> None:
        t = make("queued", queue="q", max_attempts=2)
        store.add_trials([t, plain := make("lost")])
        store.claim("q", {"worker": "w1", "host": "h"}, lease=30)
        store.append_metrics(t.id, [MetricPoint("loss", 0.5, 1)])
        store.update(t.id, handle={"dir": "/x"}, pid=42)
        assert store.transition(t.id, "lost", expected=["running"], error="no heartbeat")
        assert not store.requeue(t.id, expected=["cancelled"])  # not in expected
        assert store.requeue(t.id)
        back = store.get(t.id)
        assert (back.status, back.owner, back.handle, back.heartbeat, back.pid, back.host, back.started,
                back.error, back.metrics, back.step, back.attempts) == ("queued", {}, {}, None, None, None, None,
                                                                        None, {}, None, 1)
        assert store.metrics(t.id) == [] and len(back.errors) == 1
        assert store.events(t.id)[-1].message == "queued: requeued (attempt 1 of 2 did not finish)"
        store.claim("q", {"worker": "w2"}, lease=30)
        store.transition(t.id, "lost", expected=["running"], error="again")
        assert not store.requeue(t.id)  # attempt 2 of 2: no more
        assert store.get(t.id).status == "lost" and len(store.get(t.id).errors) == 2
        assert not store.requeue(plain.id)  # not a queue trial

    def test_a_requeued_trial_forgets_every_field_of_its_attempt(self, store: BaseStore) -> None:
        t = make("queued", queue="q", max_attempts=2, tags=["keep"], note="kept")
        store.add_trials([t])
        store.claim("q", {"worker": "w1", "host": "h"}, lease=30)
        store.request_stop(t.id, "asked")
        store.update(t.id, handle={"dir": "/x"}, pid=42, duration=3.0, exit_code=1, finished=now())
        assert store.transition(t.id, "failed", expected=["running"], error="boom")
        assert store.requeue(t.id, expected=["failed"])
        back = store.get(t.id)
        assert {name: getattr(back, name) for name in FORGOTTEN_ON_REQUEUE} == FORGOTTEN_ON_REQUEUE
        assert (back.params, back.tags, back.note, back.attempts, len(back.errors)) == (t.params, ["keep"], "kept",
                                                                                        1, 1)

    def test_expiry_requeues_a_lost_queue_trial_while_it_has_attempts(self, store: BaseStore) -> None:
        t = make("queued", queue="q", max_attempts=2)
        store.add_trials([t])
        store.claim("q", {"worker": "w1"}, lease=10, at=100.0)
        assert store.expire(at=200.0) == ([t.id], [])
        back = store.get(t.id)
        assert (back.status, back.owner, back.attempts) == ("queued", {}, 1)
        assert back.errors[0]["status"] == "lost" and "requeued while it has attempts left" in back.errors[0]["error"]
        assert [e.message.split(":")[0] for e in store.events(t.id)][-2:] == ["lost", "queued"]
        assert store.expire(at=10**9) == ([], [])  # waiting in the queue: nobody owns it, it never expires
        store.claim("q", {"worker": "w2"}, lease=10, at=300.0)
        assert store.expire(at=400.0) == ([t.id], [])
        assert store.get(t.id).status == "lost" and store.get(t.id).attempts == 2

    def test_workers_are_registered_beat_and_end(self, store: BaseStore) -> None:
        w = Worker("w1", "q", "h", 10, 2, now(), 1000.0, 30, info={"commit": "abc"})
        store.register_worker(w)
        store.register_worker(Worker("w2", "other", "h2", 11, 1, now(), 1000.0, 30))
        assert store.workers(at=1010.0)[0] == w
        store.worker_beat("w1", running=["t1", "t2"], done=3, at=1100.0)
        [got] = self.connect(store).workers(queue="q", at=1110.0)
        assert (got.heartbeat, got.running, got.done, got.status) == (1100.0, ["t1", "t2"], 3, "running")
        assert store.workers(queue="q", at=1200.0)[0].status == "lost"  # computed, not written
        assert store.workers(queue="q", at=1110.0)[0].status == "running"
        store.end_worker("w1")
        assert store.workers(queue="q", at=1200.0)[0].status == "stopped"
        assert [x.id for x in store.workers()] == ["w1", "w2"]

    def test_blobs_are_kept_by_their_hash(self, store: BaseStore) -> None:
        import hashlib

        data = b"diff --git a/x b/x\n\x00\xff"
        sha = store.put_blob(data)
        assert sha == hashlib.sha256(data).hexdigest() and store.put_blob(data) == sha
        assert self.connect(store).blob(sha) == data and store.blob("0" * 64) is None

    def test_test_uses_outlive_the_trials(self, store: BaseStore) -> None:
        trial = make("completed", phase="test")
        store.add_trials([trial])
        first = TestUse("k1", "e", {"lr": 0.1}, "c0ffee", "run1", "2026-01-01T00:00:00Z")
        store.record_test_use(first)
        store.record_test_use(TestUse("k1", "copy", {"lr": 0.1}, "c0ffee", "run2", "2026-01-02T00:00:00Z"))
        store.record_test_use(TestUse("k2", "e", {"lr": 0.5}, None, "run3", "2026-01-03T00:00:00Z"))
        store.delete([trial.id])
        assert [u.run_id for u in self.connect(store).test_uses("k1")] == ["run1", "run2"]
        assert store.test_uses("k1")[0] == first and store.test_uses("nope") == []

    # ------------------------------------------------------------------ field updates

    def test_update_sets_only_named_columns_and_refuses_status_and_extra(self, store: BaseStore) -> None:
        trial = make("running", host="gpu1", extra={"keep": 1})
        store.add_trials([trial])
        store.update(trial.id, pid=123, event="started its script")
        current = store.get(trial.id)
        assert (current.pid, current.host, current.status, current.extra) == (123, "gpu1", "running", {"keep": 1})
        assert store.events(trial.id)[-1].message == "started its script"
        for field, value in (("status", "completed"), ("extra", {}), ("id", "x"), ("params", {}),
                             ("metrics", {}), ("no_such_column", 1)):
            with pytest.raises(ValueError):
                store.update(trial.id, **{field: value})
        assert store.get(trial.id) == current
        with pytest.raises(NotFoundError):
            store.update("000000000000", pid=1)

    def test_merge_extra_keeps_other_keys_and_none_removes(self, store: BaseStore) -> None:
        trial = make("running", extra={"a": 1, "nested": {"x": 1}})
        store.add_trials([trial])
        store.merge_extra(trial.id, {"b": 2, "nested": {"y": 2}})
        assert store.get(trial.id).extra == {"a": 1, "b": 2, "nested": {"x": 1, "y": 2}}
        store.merge_extra(trial.id, {"a": None})
        assert store.get(trial.id).extra == {"b": 2, "nested": {"x": 1, "y": 2}}

    def test_request_stop_only_on_running_and_first_reason_wins(self, store: BaseStore) -> None:
        running, queued, done = make("running"), make("queued"), make("completed")
        store.add_trials([running, queued, done])
        assert store.request_stop(running.id, "pruned at step 3")
        assert store.request_stop(running.id, "cancelled by the user")  # still a request, not a new reason
        assert store.get(running.id).stop_requested == "pruned at step 3"
        assert store.get(running.id).status == "running"  # only the owner ends it
        assert not store.request_stop(queued.id, "x") and store.get(queued.id).stop_requested is None
        assert not store.request_stop(done.id, "x") and store.get(done.id).stop_requested is None
        assert not store.request_stop("000000000000", "x")

    def test_stop_request_racing_the_owners_writes_loses_neither(self, store: BaseStore) -> None:
        trials = [make("running") for _ in range(25)]
        store.add_trials(trials)
        owner, other = self.connect(store), self.connect(store)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def owner_writes() -> None:
            try:
                barrier.wait()
                for round_ in range(4):
                    for t in trials:
                        owner.merge_extra(t.id, {f"k{round_}": round_})
                        owner.update(t.id, pid=round_ + 1, host=f"h{round_}")
            except BaseException as exc:
                errors.append(exc)

        def stops() -> None:
            try:
                barrier.wait()
                for t in trials:
                    assert other.request_stop(t.id, "cancelled by the user")
                    other.merge_extra(t.id, {"by_other": True})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=owner_writes), threading.Thread(target=stops)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        owner.close()
        other.close()
        assert not errors, errors
        for t in trials:
            current = store.get(t.id)
            assert current.stop_requested == "cancelled by the user"
            assert current.extra == {"k0": 0, "k1": 1, "k2": 2, "k3": 3, "by_other": True}
            assert (current.pid, current.host, current.status) == (4, "h3", "running")

    # ------------------------------------------------------------------ finalize

    def test_finalize_writes_status_metrics_artifacts_and_extra_together(self, store: BaseStore) -> None:
        trial = make("running", extra={"keep": 1}, heartbeat=time.time(), lease=30)
        store.add_trials([trial])
        store.append_metrics(trial.id, [MetricPoint("train/loss", 1.0, 0)])
        assert store.finalize(trial.id, "completed",
                              metrics=[MetricPoint("train/loss", 0.5, 1), MetricPoint("val/acc", 0.9)],
                              artifacts=[("model.json", 10, SHA), ("stdout.log", 3, SHA)],
                              extra={"autolog": {"C": 0.5}}, finished=now(), exit_code=0, duration=1.5)
        final = store.get(trial.id)
        assert (final.status, final.exit_code, final.duration) == ("completed", 0, 1.5)
        assert final.metrics == {"train/loss": 0.5, "val/acc": 0.9} and final.step == 1
        assert final.extra == {"keep": 1, "autolog": {"C": 0.5}}
        assert final.heartbeat is None  # nobody needs to renew a finished trial
        assert store.artifacts(trial.id) == [("model.json", 10, SHA), ("stdout.log", 3, SHA)]
        assert [(p.name, p.step) for p in store.metrics(trial.id)] == [
            ("train/loss", 0), ("train/loss", 1), ("val/acc", None)]
        # replace_metrics: an adopted trial's final read supersedes what an earlier owner stored
        again = make("running")
        store.add_trials([again])
        store.append_metrics(again.id, [MetricPoint("old", 1.0, 7)])
        assert store.finalize(again.id, "failed", metrics=[MetricPoint("new", 2.0, 1)], replace_metrics=True)
        assert store.get(again.id).metrics == {"new": 2.0} and store.get(again.id).step == 1
        assert [p.name for p in store.metrics(again.id)] == ["new"]

    @pytest.mark.parametrize("status", ["queued", "completed", "failed", "lost", "cancelled", "pruned"])
    def test_finalize_of_a_trial_that_is_not_running_changes_nothing(self, store: BaseStore, status: str) -> None:
        trial = make(status, metrics={"val/acc": 0.5}, extra={"keep": 1}, error="before", exit_code=7)
        store.add_trials([trial])
        with self.nothing_written(store):
            assert not store.finalize(trial.id, "completed", metrics=[MetricPoint("val/acc", 0.9, 1)],
                                      artifacts=[("model.json", 1, SHA)], extra={"new": 1},
                                      finished=now(), exit_code=0, error=None)
        assert store.get(trial.id).status == status

    def test_a_failing_finalize_leaves_the_trial_running_and_untouched(self, store: BaseStore) -> None:
        trial = make("running", extra={"keep": 1})
        store.add_trials([trial])
        store.append_metrics(trial.id, [MetricPoint("train/loss", 1.0, 0)])
        with self.nothing_written(store):
            with pytest.raises((StoreError, ValueError)):  # the same file twice: the artifacts part fails
                store.finalize(trial.id, "completed", metrics=[MetricPoint("val/acc", 0.9, 1)],
                               artifacts=[("model.json", 1, SHA), ("model.json", 1, SHA)],
                               extra={"new": 1}, exit_code=0)
            with pytest.raises(ValueError):  # a field no one may set: refused after the status changed
                store.finalize(trial.id, "completed", metrics=[MetricPoint("val/acc", 0.9, 1)],
                               extra={"new": 1}, exit_code=0, no_such_column=1)
        assert store.get(trial.id).status == "running"
        assert store.finalize(trial.id, "completed", exit_code=0)  # and it can still end properly

    def test_readers_never_see_half_a_finalize(self, store: BaseStore) -> None:
        trials = [make("running") for _ in range(30)]
        store.add_trials(trials)
        reader = self.connect(store)
        done = threading.Event()
        torn: list[str] = []

        def read() -> None:
            while not done.is_set():
                for t in trials:
                    current = reader.get(t.id)
                    if current.status == "completed" and (current.metrics != {"val/acc": 1.0}
                                                          or reader.artifacts(t.id) != [("model.json", 1, SHA)]):
                        torn.append(t.id)

        thread = threading.Thread(target=read)
        thread.start()
        try:
            for t in trials:
                assert store.finalize(t.id, "completed", metrics=[MetricPoint("val/acc", 1.0, 1)],
                                      artifacts=[("model.json", 1, SHA)], exit_code=0)
        finally:
            done.set()
            thread.join()
            reader.close()
        assert not torn

    # ------------------------------------------------------------------ live metrics

    def test_live_metrics_last_values_latest_step_and_history(self, store: BaseStore) -> None:
        trial = make("running")
        store.add_trials([trial])
        other = self.connect(store)
        try:
            store.append_metrics(trial.id, [MetricPoint("train/loss", 1.0, 0, "train"),
                                            MetricPoint("val/acc", 0.1, 0, "validate")])
            assert other.get(trial.id).metrics == {"train/loss": 1.0, "val/acc": 0.1}  # visible to every reader
            assert other.get(trial.id).step == 0
            store.append_metrics(trial.id, [MetricPoint("train/loss", 0.5, 1), MetricPoint("train/loss", 0.25, 2)])
            current = other.get(trial.id)
            assert current.metrics == {"train/loss": 0.25, "val/acc": 0.1} and current.step == 2
            store.append_metrics(trial.id, [MetricPoint("lr", 0.01)])  # no step: the latest step stays
            assert other.get(trial.id).step == 2 and other.get(trial.id).metrics["lr"] == 0.01
            store.append_metrics(trial.id, [])  # nothing new: nothing changes
            assert other.get(trial.id).step == 2
        finally:
            other.close()
        history = store.metrics(trial.id)
        assert [(p.name, p.value, p.step) for p in history] == [
            ("train/loss", 1.0, 0), ("val/acc", 0.1, 0), ("train/loss", 0.5, 1), ("train/loss", 0.25, 2),
            ("lr", 0.01, None)]
        assert history[0].phase == "train" and history[1].phase == "validate"
        assert [p.step for p in store.metrics(trial.id, "train/loss")] == [0, 1, 2]
        assert store.metrics(trial.id, "nothing") == []
        store.append_metrics(trial.id, [MetricPoint("val/acc", 0.9, 5)], replace=True)
        assert store.get(trial.id).metrics == {"val/acc": 0.9} and store.get(trial.id).step == 5
        assert [p.name for p in store.metrics(trial.id)] == ["val/acc"]
        store.append_metrics(trial.id, [], replace=True)  # what 'trials reset' does
        assert store.get(trial.id).metrics == {} and store.get(trial.id).step is None
        assert store.metrics(trial.id) == []

    # ------------------------------------------------------------------ heartbeats and expiry

    def test_heartbeat_renews_only_queued_and_running(self, store: BaseStore) -> None:
        running, queued, done, lost = make("running"), make("queued"), make("completed"), make("lost")
        store.add_trials([running, queued, done, lost])
        assert store.heartbeat([t.id for t in (running, queued, done, lost)], at=1000.0) == 2
        assert store.get(running.id).heartbeat == store.get(queued.id).heartbeat == 1000.0
        assert store.get(done.id).heartbeat is None and store.get(lost.id).heartbeat is None
        assert store.heartbeat([], at=1.0) == 0
        many = [make("queued") for _ in range(1200)]  # more ids than one statement takes
        store.add_trials(many)
        assert store.heartbeat([t.id for t in many], at=5.0) == 1200

    def test_expiry_loses_running_cancels_queued_and_spares_the_rest(self, store: BaseStore) -> None:
        running = make("running", lease=10, started=now())
        queued = make("queued", lease=10)
        unowned = make("queued", lease=10)  # never heartbeated: created but no run owns it
        done = make("completed", lease=10)
        store.add_trials([running, queued, unowned, done])
        store.heartbeat([running.id, queued.id, done.id], at=1000.0)
        with self.nothing_written(store):
            assert store.expire(at=1009.0) == ([], [])
            assert store.expire(at=1010.0) == ([], [])  # the lease is still valid at its very end
        store.heartbeat([running.id], at=1005.0)  # renewed: good for another lease
        assert store.expire(at=1012.0) == ([], [queued.id])
        assert store.expire(at=1016.0) == ([running.id], [])
        lost, cancelled = store.get(running.id), store.get(queued.id)
        assert lost.status == "lost" and "no heartbeat for over 10 s" in lost.error
        assert "tracker trials reset" in lost.error and lost.finished and lost.heartbeat is None
        assert cancelled.status == "cancelled" and cancelled.error == "never started: the run was killed"
        assert cancelled.finished and cancelled.heartbeat is None
        assert store.events(running.id)[-1].message == "lost"
        assert store.events(queued.id)[-1].message == "cancelled"
        with self.nothing_written(store):  # done once; never again, whatever the time
            assert store.expire(at=math.inf) == ([], [])
        assert store.get(unowned.id).status == "queued" and store.get(done.id).status == "completed"
        assert store.heartbeat([running.id], at=2000.0) == 0  # a heartbeat never revives a lost trial
        assert store.get(running.id).status == "lost"

    def test_expiry_at_real_time_with_the_default_lease(self, store: BaseStore) -> None:
        fresh = make("running", lease=None)
        stale = make("running", lease=None)
        store.add_trials([fresh, stale])
        store.heartbeat([fresh.id])
        store.heartbeat([stale.id], at=time.time() - 61)  # no lease recorded: 60 s
        assert store.expire() == ([stale.id], [])
        assert store.get(fresh.id).status == "running"
        assert "60 s" in store.get(stale.id).error

    def test_expire_limited_to_ids_with_a_reason(self, store: BaseStore) -> None:
        a, b, q = make("running", lease=600), make("running", lease=600), make("queued", lease=600)
        store.add_trials([a, b, q])
        store.heartbeat([a.id, b.id, q.id])
        with self.nothing_written(store):
            assert store.expire(at=math.inf, ids=[]) == ([], [])
        lost, cancelled = store.expire(at=math.inf, ids=[a.id, q.id], reason="the tracker process running "
                                       "this trial died")
        assert (lost, cancelled) == ([a.id], [q.id])
        assert store.get(a.id).error.startswith("the tracker process running this trial died")
        assert store.get(b.id).status == "running"

    # ------------------------------------------------------------------ listing

    @pytest.fixture
    def listed(self, store: BaseStore) -> list[Trial]:
        trials = [
            make("completed", experiment="e1", params={"lr": 0.1, "opt": "sgd"}, run_id="r1",
                 created="2026-01-01T00:00:01.000Z", metrics={"val/acc": 0.5}, step=3, seed=11),
            make("failed", experiment="e1", params={"lr": 0.2, "opt": "sgd"}, run_id="r1",
                 created="2026-01-01T00:00:02.000Z", seed=22),
            make("completed", experiment="e1", params={"lr": 0.1, "opt": "adam"}, run_id="r1",
                 created="2026-01-01T00:00:03.000Z", metrics={"val/acc": 0.7, "loss": 0.1}, step=9, seed=33),
            make("running", experiment="e2", params={"lr": 0.1}, run_id="r2",
                 created="2026-01-01T00:00:04.000Z", seed=11, dirty=True),
            make("queued", experiment="e2", params={"lr": 0.3}, run_id="r2",
                 created="2026-01-01T00:00:05.000Z", seed=22),
        ]
        store.add_trials(trials)
        return trials

    def test_list_trials_filters_order_and_limit(self, store: BaseStore, listed: list[Trial]) -> None:
        def ids(*indexes: int) -> list[str]:
            return [listed[i].id for i in indexes]

        assert store.list_trials() == listed  # records come back as they went in, oldest first
        assert [t.id for t in store.list_trials(experiment="e1")] == ids(0, 1, 2)
        assert [t.id for t in store.list_trials(experiment=["e1", "e2"])] == ids(0, 1, 2, 3, 4)
        assert [t.id for t in store.list_trials(status="completed")] == ids(0, 2)
        assert [t.id for t in store.list_trials(status=["running", "queued"])] == ids(3, 4)
        assert [t.id for t in store.list_trials(params={"lr": 0.1})] == ids(0, 2, 3)
        assert [t.id for t in store.list_trials(params={"lr": 0.1, "opt": "sgd"})] == ids(0)
        assert [t.id for t in store.list_trials(experiment="e1", params={"lr": 0.1})] == ids(0, 2)
        assert [t.id for t in store.list_trials(run_id="r2")] == ids(3, 4)
        assert [t.id for t in store.list_trials(ids=ids(4, 1))] == ids(1, 4)
        assert store.list_trials(experiment="nope") == [] and store.list_trials(ids=[]) == []
        assert [t.id for t in store.list_trials(limit=2)] == ids(3, 4)  # the newest two, oldest first
        assert [t.id for t in store.list_trials(limit=2, newest_first=True)] == ids(4, 3)
        assert [t.id for t in store.list_trials(newest_first=True)] == ids(4, 3, 2, 1, 0)
        assert [t.id for t in store.list_trials(experiment="e1", limit=2)] == ids(1, 2)

    def test_every_filter_takes_one_value_or_several(self, store: BaseStore) -> None:
        a, b, c = make("queued", queue="qa"), make("queued", queue="qb"), make("queued")
        store.add_trials([a, b, c])
        assert [t.id for t in store.list_trials(queue="qa")] == [a.id]
        assert [t.id for t in store.list_trials(queue=["qa"])] == [a.id]
        assert [t.id for t in store.list_trials(queue=["qa", "qb"])] == [a.id, b.id]
        assert store.count(queue=["qb", "nope"]) == 1 and store.list_trials(queue=[]) == []
        many = [make("completed", extra={"fingerprint": f"f{i}"}) for i in range(600)]  # past any argument limit
        store.add_trials(many)
        assert store.list_trials(ids=[t.id for t in many]) == many
        assert store.count(fingerprints=[f"f{i}" for i in range(0, 600, 2)]) == 300
        assert store.heartbeat([t.id for t in many]) == 0 and store.delete([t.id for t in many]) == 600

    def test_fingerprints_filter_finds_trials_by_their_fingerprint(self, store: BaseStore) -> None:
        a, b, c = (make("completed", extra={"fingerprint": f}) for f in ("fa", "fb", "fa"))
        store.add_trials([a, b, c, make("completed")])
        assert [t.id for t in store.list_trials(fingerprints=["fa"])] == [a.id, c.id]
        assert [t.id for t in store.list_trials(fingerprints=["fb", "zz"])] == [b.id]
        assert store.list_trials(fingerprints=[]) == []
        many = [f"f{i}" for i in range(5000)] + ["fb"]  # more than any limit on query arguments
        assert [t.id for t in store.list_trials(fingerprints=many)] == [b.id]

    def test_get_by_id_or_unique_prefix(self, store: BaseStore) -> None:
        a, b = make(id="abc111def000"), make(id="abc222def000")
        store.add_trials([a, b])
        assert store.get("abc1").id == a.id and store.get(f" {b.id} ").id == b.id
        with pytest.raises(UsageError, match="ambiguous"):
            store.get("abc")
        with pytest.raises(NotFoundError):
            store.get("fff")
        with pytest.raises(UsageError):
            store.get("  ")

    def test_a_ref_of_pattern_characters_is_no_trial(self, store: BaseStore) -> None:
        only = make(id="abc111def000")
        store.add_trials([only])
        for ref in ("%", "_", "%_"):
            with pytest.raises(NotFoundError):
                store.get(ref)  # 'tracker trials delete %' must not pick the only trial

    def test_summaries_json_is_the_documented_summary(self, store: BaseStore, listed: list[Trial]) -> None:
        rows = json.loads(store.summaries_json())
        assert rows == [t.summary() for t in listed]
        assert rows[2]["step"] == 9 and rows[1]["step"] is None and rows[3]["dirty"] is True
        assert set(rows[0]) == set(listed[0].summary())
        assert [r["id"] for r in json.loads(store.summaries_json(experiment="e1", status="completed"))] == [
            listed[0].id, listed[2].id]
        assert [r["id"] for r in json.loads(store.summaries_json(limit=1))] == [listed[4].id]
        assert json.loads(store.summaries_json(experiment="nope")) == []

    def test_counts_key_names_and_table(self, store: BaseStore, listed: list[Trial]) -> None:
        assert store.count() == 5
        assert store.count(experiment="e1") == 3 and store.count(status=["completed", "failed"]) == 3
        assert store.count(params={"lr": 0.1}) == 3 and store.count(run_id="r2") == 2
        assert store.count_by_status() == {"e1": {"completed": 2, "failed": 1}, "e2": {"running": 1, "queued": 1}}
        params, metrics = store.key_names(experiment="e1")
        assert set(params) == {"lr", "opt"} and set(metrics) == {"val/acc", "loss"}
        assert store.key_names(experiment="e2")[1] == []
        rows = store.table(["lr"], ["val/acc"], experiment="e1")
        assert [(r[0], r[2], r[4], r[-2], r[-1]) for r in rows] == [
            (listed[0].id, "completed", 3, 0.1, 0.5), (listed[1].id, "failed", None, 0.2, None),
            (listed[2].id, "completed", 9, 0.1, 0.7)]

    def test_an_infinite_metric_keeps_the_metrics_readable(self, store: BaseStore) -> None:
        trial = make("running")
        store.add_trials([trial])
        store.append_metrics(trial.id, [MetricPoint("val/loss", 0.5, 0), MetricPoint("val/loss", math.inf, 1),
                                        MetricPoint("val/acc", -math.inf, 1)])
        assert store.get(trial.id).metrics == {"val/loss": math.inf, "val/acc": -math.inf}
        assert store.table([], ["val/loss"])[0][-1] == math.inf  # SQLite's json_extract reads the column
        store.finalize(trial.id, "completed")
        assert [r[4:7] for r in store.metric_rows("val/loss", experiments=["e"], goal="min")] == [(math.inf, 0.5, 0)]
        copy = replace(store.get(trial.id), id="copy")
        store.import_trial(copy, [])
        assert store.get("copy").metrics == {"val/loss": math.inf, "val/acc": -math.inf}

    def test_a_nan_metric_is_left_out_and_noted(self, store: BaseStore) -> None:
        trial = make("running")
        store.add_trials([trial])
        store.append_metrics(trial.id, [MetricPoint("train/loss", 0.5, 0), MetricPoint("train/loss", math.nan, 1),
                                        MetricPoint("val/acc", 0.25, 1)])
        store.finalize(trial.id, "completed", metrics=[MetricPoint("val/acc", math.nan)])
        final = store.get(trial.id)
        assert final.status == "completed" and final.metrics == {"train/loss": 0.5, "val/acc": 0.25}
        assert [(p.name, p.value) for p in store.metrics(trial.id)] == [("train/loss", 0.5), ("val/acc", 0.25)]
        notes = [e.message for e in store.events(trial.id) if "NaN" in e.message]
        assert notes == ["metric train/loss reported NaN at step 1 (not stored)",
                         "metric val/acc reported NaN (not stored)"]

    def test_metric_rows_are_lean_rows_with_the_best_along_each_curve(self, store: BaseStore) -> None:
        def trial(status: str, curve: list[tuple[int | None, float]], **kw: Any) -> Trial:
            t = make("running", **kw)
            store.add_trials([t])
            store.finalize(t.id, status, metrics=[MetricPoint("val/acc", v, s) for s, v in curve]
                           + [MetricPoint("val/loss", 1 - curve[-1][1], curve[-1][0])])
            return t

        a = trial("completed", [(0, 0.5), (1, 0.8), (2, 0.7)], seed=1, params={"lr": 0.1, "act": "relu"})
        b = trial("completed", [(0, 0.6), (1, 0.6), (2, 0.9)], seed=2, params={"lr": 0.2})
        trial("failed", [(0, 0.99)], seed=3)
        trial("pruned", [(0, 0.98)], seed=4)
        trial("completed", [(0, 0.97)], experiment="other")
        c = make("running", seed=5)
        store.add_trials([c])
        store.finalize(c.id, "completed", metrics=[MetricPoint("train/loss", 0.3, 0)])  # no val/acc at all
        rows = store.metric_rows("val/acc", experiments=["e"], also=["val/loss", "nothing"])
        assert [r[:3] for r in rows] == [(a.id, "e", 1), (b.id, "e", 2), (c.id, "e", 5)]  # completed only, in order
        assert json.loads(rows[0][3]) == {"lr": 0.1, "act": "relu"}
        assert [r[4:] for r in rows] == [(0.7, 0.8, 1, pytest.approx(0.3), None),
                                         (0.9, 0.9, 2, pytest.approx(0.1), None),
                                         (None, None, None, None, None)]
        low = store.metric_rows("val/acc", experiments=["e", "other"], goal="min")
        assert [(r[5], r[6]) for r in low] == [(0.5, 0), (0.6, 0), (0.97, 0), (None, None)]  # ties: the first step
        assert store.metric_rows("val/acc", experiments=["e"], phase="test") == []
        assert store.metric_rows("val/acc", experiments=["nope"]) == []
        with pytest.raises(ValueError, match="goal"):
            store.metric_rows("val/acc", experiments=["e"], goal="up")

    # ------------------------------------------------------------------ tags and notes

    def test_tags_are_added_once_removed_and_recorded(self, store: BaseStore) -> None:
        a, b = make("completed", tags=["sweep"]), make("running")
        store.add_trials([a, b])
        assert store.get(a.id).tags == ["sweep"] and store.get(b.id).tags == []
        store.tag([a.id, b.id], add=["best", "sweep", "best", "fig:2"])
        assert store.get(a.id).tags == ["sweep", "best", "fig:2"]  # each once, in the order added
        assert store.get(b.id).tags == ["best", "sweep", "fig:2"]
        store.tag([a.id], remove=["sweep", "absent"], add=["v2"])
        assert store.get(a.id).tags == ["best", "fig:2", "v2"]
        assert [e.message for e in store.events(a.id) if e.message.startswith("tags")] == [
            "tags +best +fig:2", "tags +v2 -sweep"]
        before = store.get(b.id)
        with self.nothing_written(store), pytest.raises(NotFoundError):
            store.tag([b.id, "000000000000"], add=["x"])  # all or nothing
        assert store.get(b.id) == before
        with self.nothing_written(store):
            store.tag([a.id], add=["v2"])  # nothing to change: no write, no event
        with pytest.raises(ValueError, match="tags"):
            store.update(a.id, tags=["sneaky"])  # the index must not drift from the record
        other = self.connect(store)
        assert other.get(a.id).tags == ["best", "fig:2", "v2"]  # another connection sees the same
        other.close()

    def test_a_note_is_a_field_update(self, store: BaseStore) -> None:
        trial = make("running")
        store.add_trials([trial])
        store.update(trial.id, note="lr too high\nsee fig 3", event="note set")
        assert store.get(trial.id).note == "lr too high\nsee fig 3"
        assert store.get(trial.id).status == "running" and store.events(trial.id)[-1].message == "note set"
        store.update(trial.id, note=None)
        assert store.get(trial.id).note is None

    def test_listing_by_tag(self, store: BaseStore, listed: list[Trial]) -> None:
        store.tag([listed[0].id, listed[2].id, listed[3].id], add=["best"])
        store.tag([listed[2].id], add=["paper"])
        store.update(listed[2].id, note="the one in the paper")
        assert [t.id for t in store.list_trials(tags=["best"])] == [listed[0].id, listed[2].id, listed[3].id]
        assert [t.id for t in store.list_trials(tags=["best", "paper"])] == [listed[2].id]  # every tag
        assert [t.id for t in store.list_trials(tags=["best"], experiment="e2")] == [listed[3].id]
        assert [t.id for t in store.list_trials(tags=["best"], limit=1)] == [listed[3].id]
        assert store.list_trials(tags=["nope"]) == [] and store.count(tags=["best"]) == 3
        rows = json.loads(store.summaries_json(tags=["paper"]))
        assert rows == [store.get(listed[2].id).summary()]
        assert (rows[0]["tags"], rows[0]["note"]) == (["best", "paper"], "the one in the paper")
        assert json.loads(store.summaries_json())[1]["tags"] == []
        table = store.table([], [], tags=["best"])
        assert [(r[0], r[12]) for r in table] == [(listed[0].id, "best"), (listed[2].id, "best,paper"),
                                                  (listed[3].id, "best")]
        assert store.table([], [], ids=[listed[1].id])[0][12] == ""
        assert store.key_names(tags=["paper"]) == (["lr", "opt"], ["val/acc", "loss"])

    def test_tags_follow_imports_and_deletes(self, store: BaseStore) -> None:
        trial = make("completed", tags=["old"])
        store.add_trials([trial])
        store.import_trial(Trial(**{**trial.as_dict(), "tags": ["restored"], "note": "from a backup"}), [])
        assert store.list_trials(tags=["old"]) == []
        assert [(t.tags, t.note) for t in store.list_trials(tags=["restored"])] == [(["restored"], "from a backup")]
        store.delete([trial.id])
        assert store.list_trials(tags=["restored"]) == [] and store.count(tags=["restored"]) == 0

    def test_delete_takes_everything_of_a_trial(self, store: BaseStore) -> None:
        a, b = make("completed"), make("completed")
        store.add_trials([a, b])
        store.append_metrics(a.id, [MetricPoint("x", 1.0, 1)])
        assert store.delete([a.id, "000000000000"]) == 1
        with pytest.raises(NotFoundError):
            store.get(a.id)
        assert store.metrics(a.id) == [] and store.events(a.id) == [] and store.list_trials() == [b]

    # ------------------------------------------------------------------ imports (restores)

    def test_imported_record_is_owned_by_nobody_and_never_expires(self, store: BaseStore) -> None:
        original = make("completed", owner={"host": "elsewhere", "pid": 1}, handle={"host": "gpu1", "dir": "/x"},
                        heartbeat=time.time() - 3600, lease=2, pid=99, stop_requested="cancelled",
                        metrics={"val/acc": 0.9}, step=2, extra={"autolog": {"C": 1}})
        points = [MetricPoint("val/acc", 0.5, 1, "validate", "2026-01-01T00:00:00.000Z"),
                  MetricPoint("val/acc", 0.9, 2, "validate", "2026-01-01T00:00:01.000Z")]
        store.import_trial(original, points, [("model.json", 5, SHA)])
        restored = store.get(original.id)
        assert (restored.owner, restored.handle, restored.heartbeat, restored.pid, restored.stop_requested) == (
            {}, {}, None, None, None)
        assert (restored.status, restored.metrics, restored.step, restored.extra) == (
            "completed", {"val/acc": 0.9}, 2, {"autolog": {"C": 1}})
        assert store.metrics(original.id) == points and store.artifacts(original.id) == [("model.json", 5, SHA)]
        assert store.list_trials(params={"lr": 0.1}) == [restored]
        with self.nothing_written(store):
            assert store.expire(at=math.inf) == ([], [])

    @pytest.mark.parametrize("status", ["queued", "running"])
    def test_a_record_copied_while_active_arrives_lost(self, store: BaseStore, status: str) -> None:
        original = make(status, owner={"host": "elsewhere", "pid": 1}, heartbeat=time.time(), lease=2)
        store.import_trial(original, [])
        restored = store.get(original.id)
        assert restored.status == "lost" and restored.heartbeat is None and restored.owner == {}
        assert f"while it was {status}" in restored.error
        assert store.expire(at=math.inf) == ([], [])
        assert store.transition(original.id, "queued", expected=["lost"])  # and it can be reset

    def test_import_replaces_any_copy(self, store: BaseStore) -> None:
        first = make("running", params={"lr": 0.1})
        store.add_trials([first])
        store.append_metrics(first.id, [MetricPoint("old", 1.0, 1)])
        again = make("completed", id=first.id, params={"lr": 0.5})
        store.import_trial(again, [MetricPoint("new", 2.0, 3)], [("a.txt", 1, SHA)])
        assert [t.id for t in store.list_trials()] == [first.id]
        assert store.get(first.id).params == {"lr": 0.5} and store.get(first.id).status == "completed"
        assert store.list_trials(params={"lr": 0.1}) == [] and len(store.list_trials(params={"lr": 0.5})) == 1
        assert [p.name for p in store.metrics(first.id)] == ["new"]

    def test_import_keeps_the_records_metrics_when_there_is_no_history(self, store: BaseStore) -> None:
        original = make("completed", metrics={"val/acc": 0.9}, step=4)
        store.import_trial(original, [])
        assert store.get(original.id).metrics == {"val/acc": 0.9}
        assert store.get(original.id).step == 4

    # ------------------------------------------------------------------ the store itself

    def test_migrations_are_listed_and_reopening_changes_nothing(self, store: BaseStore) -> None:
        applied = store.migrations()
        assert applied and applied == sorted(applied)
        trial = make("completed")
        store.add_trials([trial])
        for _ in range(2):
            other = self.connect(store)
            assert other.migrations() == applied
            assert other.get(trial.id) == trial
            other.close()

    def test_experiments_and_environments(self, store: BaseStore) -> None:
        store.save_experiment("e", {"command": ["python"]}, "h1")
        store.save_experiment("e", {"command": ["python3"]}, "h2")  # latest wins, no error
        assert store.experiment("e") == {"command": ["python3"]} and store.experiment("nope") is None
        store.save_environment("env1", {"python": "3.11"})
        store.save_environment("env1", {"python": "changed"})  # deduplicated by id
        assert store.environment("env1") == {"python": "3.11"} and store.environment("nope") is None
        trial = make("queued", env_id="env1")
        store.add_trials([trial])
        assert store.get(trial.id).env_id == "env1"

    # ------------------------------------------------------------------ optimizations (search state)

    def test_optimizations_by_id_unique_prefix_and_experiment(self, store: BaseStore) -> None:
        first = optimization("abc123000001", experiment="quad")
        second = optimization("abc456000002", experiment="quad", settings={"metric": "val/loss", "seeds": [1, 2]})
        other = optimization("def789000003", experiment="other")
        for o in (first, second, other):
            store.add_optimization(o)
        assert store.get_optimization("abc123000001") == first
        assert store.get_optimization(" abc4 ") == second and store.get_optimization("d") == other
        with pytest.raises(UsageError, match="ambiguous"):
            store.get_optimization("abc")
        for ref in ("zzz", "%", "_", ""):
            with pytest.raises(NotFoundError):
                store.get_optimization(ref)
        assert store.list_optimizations() == [first, second, other]  # oldest first
        assert store.list_optimizations(experiment="quad") == [first, second]
        assert self.connect(store).get_optimization("abc4").settings == {"metric": "val/loss", "seeds": [1, 2]}

    def test_update_optimization_sets_only_named_fields(self, store: BaseStore) -> None:
        o = optimization("abc123000001")
        store.add_optimization(o)
        store.update_optimization(o.id, status="stopped", error="3 failed", finished="2026-01-01T00:00:00.000Z",
                                  settings={"budget": 9})
        assert store.get_optimization(o.id) == replace(o, status="stopped", error="3 failed",
                                                       finished="2026-01-01T00:00:00.000Z", settings={"budget": 9})
        for bad in ({"id": "x"}, {"nope": 1}):
            with pytest.raises(ValueError):
                store.update_optimization(o.id, **bad)
        assert store.get_optimization(o.id).status == "stopped"

    def test_claiming_an_optimization_is_compare_and_set(self, store: BaseStore) -> None:
        dead = {"host": "h", "pid": 1, "start": 5, "boot": "b"}
        o = optimization("abc123000001", status="interrupted", owner=dead)
        store.add_optimization(o)
        store.update_optimization(o.id, error="interrupted", finished="2026-01-01T00:00:00.000Z")
        barrier = threading.Barrier(2)
        won: list[int] = []

        def claim(i: int) -> None:
            other = self.connect(store)  # two resumes in two processes, each with its own connection
            barrier.wait()
            if other.claim_optimization(o.id, {"host": "h", "pid": 100 + i}, unless=dead):
                won.append(i)
            other.close()

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1  # exactly one of the two resumes goes on
        claimed = store.get_optimization(o.id)
        assert claimed.owner == {"host": "h", "pid": 100 + won[0]}
        assert (claimed.status, claimed.error, claimed.finished) == ("running", None, None)
        assert not store.claim_optimization(o.id, {"pid": 7}, unless=dead)  # the old owner is no longer it
        assert store.claim_optimization(o.id, {"pid": 7}, unless=claimed.owner)

    def test_adding_a_configuration_whose_number_is_taken_fails(self, store: BaseStore) -> None:
        store.add_optimization(optimization("abc123000001"))
        first = Configuration("abc123000001", 0, {"x": 0.1}, "running", now())
        assert store.add_configuration(first)
        assert not self.connect(store).add_configuration(replace(first, params={"x": 0.2}))
        assert store.configurations("abc123000001") == [first]
        won: list[bool] = []
        threads = [threading.Thread(target=lambda k=k: won.append(self.connect(store).add_configuration(
            Configuration("abc123000001", 1, {"x": k / 10}, "running", now())))) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == [False, False, False, True] and len(store.configurations("abc123000001")) == 2

    def test_configurations_are_upserted_and_listed_by_number(self, store: BaseStore) -> None:
        for o in ("abc123000001", "def789000003"):
            store.add_optimization(optimization(o))
        for number in (2, 0, 1):
            store.save_configuration(Configuration("abc123000001", number, {"x": number / 10, "act": "tanh"},
                                                   "running", now()))
        store.save_configuration(Configuration("def789000003", 0, {"x": 0.9}, "running", now()))
        done = Configuration("abc123000001", 1, {"x": 0.1, "act": "tanh"}, "complete", now(), value=0.25,
                             values={"11": 0.2, "22": 0.3}, finished=now())
        store.save_configuration(done)  # the same number again: replaced, not added
        pruned = Configuration("abc123000001", 2, {"x": 0.2, "act": "tanh"}, "pruned", now(), step=4,
                               values={"11": 0.9}, finished=now())
        store.save_configuration(pruned)
        confs = self.connect(store).configurations("abc123000001")
        assert [c.number for c in confs] == [0, 1, 2]
        assert confs[1] == done and confs[2] == pruned and confs[0].state == "running"
        assert [c.params for c in store.configurations("def789000003")] == [{"x": 0.9}]
        assert store.configurations("nope") == []

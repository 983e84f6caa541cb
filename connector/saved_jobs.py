"""The jobs' last state kept in the state store, for `connector status` while the daemon is
not running.

The jobs' health is runtime state; without this, a status read after a stop (or a crash)
showed every job as never run, the last error gone with the process. The daemon saves the
jobs' part of its status every minute and when it stops (`meta` key `jobs`), so a crash
loses at most the last minute of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from connector.errors import StoreError
from connector.ports import Store

KEY = "jobs"
#: The parts of the status document that are the jobs'.
JOBS = ("pull", "push", "reconcile")


def save_jobs(store: Store, status: Mapping[str, Any], *, saved_at: str) -> None:
    """Keep the jobs' part of `status` (a status document), stamped `saved_at`."""
    saved = {"saved_at": saved_at, **{job: status[job] for job in JOBS}}
    store.put_meta(KEY, orjson.dumps(saved).decode())


def with_saved_jobs(snapshot: dict[str, Any], store: Store) -> dict[str, Any]:
    """`snapshot`, taken with the daemon not running, with the jobs as it last saved them
    and `daemon.jobs_saved_at`; as it is when nothing was saved or the store cannot say."""
    try:
        saved = store.meta().get(KEY)
    except StoreError:  # the snapshot already says why the store's figures are missing
        return snapshot
    if saved is None:
        return snapshot
    jobs = orjson.loads(saved)
    snapshot["daemon"]["jobs_saved_at"] = jobs.get("saved_at")
    snapshot.update({job: jobs[job] for job in JOBS if job in jobs})
    return snapshot

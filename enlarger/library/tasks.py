"""The maintenance tasks every project runs (reference 003): their job types, priorities
and periods, and the per-project schedules that fire them. What each task does is in
`maintenance`; this module is what projects and the photo API need to set them up."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # this module is read by `enlarger --help`, which loads no database
    import sqlalchemy as sa

    from enlarger.queue import JobQueue

HOUR = 3600.0


class Maintenance(StrEnum):
    TRASH = "trash_maintenance"  # purge trash entries older than the retention
    MANIFEST_CHECK = "manifest_check"  # database vs folder: missing or changed files
    FOLDER_CHECK = "folder_check"  # files in the folder the database does not know
    MANIFEST_CLEANING = "manifest_cleaning"  # orphaned records and derivatives


PRIORITY = {
    Maintenance.TRASH: 100,
    Maintenance.MANIFEST_CHECK: 95,
    Maintenance.FOLDER_CHECK: 95,
    Maintenance.MANIFEST_CLEANING: 80,
}
PERIOD_S = {
    Maintenance.TRASH: HOUR,
    Maintenance.MANIFEST_CHECK: 6 * HOUR,
    Maintenance.FOLDER_CHECK: 6 * HOUR,
    Maintenance.MANIFEST_CLEANING: 24 * HOUR,
}
AFTER_COMMIT = (Maintenance.MANIFEST_CHECK, Maintenance.FOLDER_CHECK, Maintenance.MANIFEST_CLEANING)


def schedule_name(folder: str, task: Maintenance) -> str:
    return f"project:{folder}:{task.value}"


def schedule_project(queue: JobQueue, conn: sa.Connection, folder: str) -> None:
    """A new project's four maintenance schedules, committed with the project; each fires
    first one period from now."""
    from enlarger.queue import Schedule

    schedules = [
        Schedule(
            schedule_name(folder, task),
            task.value,
            PERIOD_S[task],
            {"folder": folder},
            PRIORITY[task],
        )
        for task in Maintenance
    ]
    queue.store.sync_schedules(schedules, conn, first_run_after_period=True)


def enqueue_task(queue: JobQueue, folder: str, task: Maintenance) -> int:
    """Run a task now, at its priority (after commit-changes)."""
    return queue.enqueue(task.value, {"folder": folder}, priority=PRIORITY[task]).id

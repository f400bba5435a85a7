"""The progress bar speaks the same units as every other size evidencekit prints (KiB, MiB)."""

from __future__ import annotations

from rich.progress import Progress

from evidencekit.cli.render import BinarySpeedColumn, RichProgress


def test_the_bar_counts_and_rates_in_binary_units():
    bar = RichProgress()
    columns = bar._progress.columns
    progress = Progress()
    task_id = progress.add_task("x", total=3 * 1024 * 1024, files="")
    progress.update(task_id, completed=1536 * 1024)
    task = progress.tasks[0]
    shown = " ".join(str(column.render(task)) for column in columns
                     if type(column).__name__ in ("DownloadColumn", "BinarySpeedColumn"))
    assert "MiB" in shown and "MB" not in shown.replace("MiB", "")
    speed = BinarySpeedColumn()
    task.finished_speed = 2.5 * 1024 * 1024
    assert str(speed.render(task)) == "2.5 MiB/s"


def test_the_file_count_is_plural_only_when_it_should_be():
    bar = RichProgress()
    bar._files = 1
    assert bar._files_text() == "1 file"
    bar._total_files = 1
    assert bar._files_text() == "1/1 file"
    bar._files, bar._total_files = 3, 12
    assert bar._files_text() == "3/12 files"


def test_the_bar_shows_what_was_read_when_the_total_is_unknown():
    # capture --stdin: a stream's length is known only at its end
    bar = RichProgress()
    progress = Progress()
    task_id = progress.add_task("Capturing", total=None, files="")
    progress.update(task_id, completed=5 * 1024 * 1024)
    task = progress.tasks[0]
    shown = " ".join(str(column.render(task)) for column in bar._progress.columns
                     if type(column).__name__ != "BarColumn")
    assert "5.0/? MiB" in shown
    bar._progress.columns[1].render(task)  # the bar itself: pulsing, no error

"""Log hygiene (issue 14, item 8): one message is capped in length, repeats are folded, and a
message that keeps coming back stops filling the rotating log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.logsetup import MAX_MESSAGE_CHARS, TidyHandler, cap_message


@pytest.fixture()
def log_file(tmp_path: Path) -> tuple[logging.Logger, TidyHandler, Path]:
    path = tmp_path / "app.log"
    target = logging.FileHandler(path, encoding="utf-8")
    target.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    tidy = TidyHandler(target, max_repeats=5)
    logger = logging.getLogger(f"hostile.{tmp_path.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(tidy)
    yield logger, tidy, path
    logger.removeHandler(tidy)
    tidy.close()


def test_cap_message() -> None:
    assert cap_message("short") == "short"
    capped = cap_message("x" * 53_000)
    assert capped.startswith("x" * MAX_MESSAGE_CHARS)
    assert capped.endswith(f"… ({53_000 - MAX_MESSAGE_CHARS} chars cut)")


def test_a_53_kb_warning_is_written_short(log_file: tuple[logging.Logger, TidyHandler, Path]
                                          ) -> None:
    logger, tidy, path = log_file
    logger.warning("Invalid value for VR DS: %r", "1" * 53_000)
    tidy.flush()
    text = path.read_text(encoding="utf-8")
    assert len(text) < MAX_MESSAGE_CHARS + 200
    assert "chars cut)" in text


def test_consecutive_repeats_fold_into_one_line(log_file: tuple[logging.Logger, TidyHandler, Path]
                                               ) -> None:
    logger, tidy, path = log_file
    for _ in range(4):
        logger.warning("same warning")
    logger.info("something else")
    tidy.flush()
    lines = path.read_text(encoding="utf-8").splitlines()
    name = f"hostile.{path.parent.name}"
    assert lines == [f"WARNING {name} same warning",
                     f"WARNING {name} (last message repeated 3 more times)",
                     f"INFO {name} something else"]


def test_the_repeat_note_is_written_at_flush(log_file: tuple[logging.Logger, TidyHandler, Path]
                                             ) -> None:
    logger, tidy, path = log_file
    logger.warning("again")
    logger.warning("again")
    tidy.flush()
    assert "repeated 1 more time)" in path.read_text(encoding="utf-8")


def test_a_message_that_keeps_returning_is_logged_a_bounded_number_of_times(
        log_file: tuple[logging.Logger, TidyHandler, Path]) -> None:
    logger, tidy, path = log_file
    for k in range(1000):  # alternating, so that folding consecutive repeats does not apply
        logger.warning("pydicom: invalid value")
        logger.warning("file %d rejected", k)
    tidy.flush()
    text = path.read_text(encoding="utf-8")
    assert text.count("pydicom: invalid value") == 6  # 5 times, then once with the note
    assert "further repeats are not logged" in text
    assert text.count("rejected") == 1000  # distinct messages are all kept


def test_exceptions_are_never_folded(log_file: tuple[logging.Logger, TidyHandler, Path]) -> None:
    logger, tidy, path = log_file
    for _ in range(2):
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    tidy.flush()
    assert path.read_text(encoding="utf-8").count("Traceback") == 2


def test_other_handlers_see_the_record_unchanged(
        log_file: tuple[logging.Logger, TidyHandler, Path]) -> None:
    logger, _tidy, _path = log_file
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    keep = Keep()
    logger.addHandler(keep)
    try:
        logger.warning("y" * 5000)
    finally:
        logger.removeHandler(keep)
    assert seen == ["y" * 5000]


def test_flush_after_the_stream_closed_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    """At interpreter exit logging flushes every handler; stderr may be closed by then."""
    import io

    stream = io.StringIO()
    tidy = TidyHandler(logging.StreamHandler(stream))
    logger = logging.getLogger("hostile.closed")
    logger.propagate = False
    logger.addHandler(tidy)
    try:
        logger.warning("twice")
        logger.warning("twice")
        stream.close()
        tidy.flush()
        tidy.close()
    finally:
        logger.removeHandler(tidy)
    assert "Logging error" not in capsys.readouterr().err


def test_console_shows_the_apps_messages_once_without_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    """The console is the user's: a library's error lines (pydicom names every decoder that
    failed on a corrupt frame, with tracebacks) go to the log file only; the app's own messages
    come without their traceback, and always to the stderr of the moment (a replaced, closed
    stream must not produce '--- Logging error ---')."""
    from app.logsetup import CurrentStderrHandler

    console = TidyHandler(CurrentStderrHandler())
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    for name in ("pydicom", "app.dicom.volume"):
        log = logging.getLogger(name)
        log.addHandler(console)
        log.propagate = False
    try:
        try:
            raise ValueError("corrupt RLE segment")
        except ValueError:
            logging.getLogger("pydicom").exception("The decoded segment length does not match")
            logging.getLogger("app.dicom.volume").exception("cannot decode IM0001")
        err = capsys.readouterr().err
        assert "decoded segment" not in err  # the library's line: log file only
        assert "ERROR: cannot decode IM0001 (details in the log file)" in err
        assert "Traceback" not in err and "corrupt RLE segment" not in err
        capsys.readouterr()  # pytest swaps sys.stderr: the handler follows it
        logging.getLogger("app.dicom.volume").warning("second message")
        assert "WARNING: second message" in capsys.readouterr().err
    finally:
        for name in ("pydicom", "app.dicom.volume"):
            logging.getLogger(name).removeHandler(console)
            logging.getLogger(name).propagate = True

"""Progress that leaves a trace (pnag._progress): periodic lines off a terminal, a summary line at the end."""

import io

from pnag._progress import Progress, shows


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_when_not_on_a_terminal_and_a_summary_at_the_end():
    f = io.StringIO()
    p = Progress(4, "profile torch", True, unit="timing", every_s=0.0, file=f)
    for _ in range(4):
        p.update()
    p.close("table /x.json")
    lines = f.getvalue().splitlines()
    assert lines[0].startswith("profile torch: 1/4 timings (25 %)") and "s left" in lines[0]
    assert len(lines) == 5 and lines[-1].startswith("profile torch: done, 4 timings in ")
    assert lines[-1].endswith("; table /x.json")
    p.close()  # a second close says nothing more
    assert len(f.getvalue().splitlines()) == 5


def test_quiet_and_terminal_only_modes():
    f = io.StringIO()
    for progress in (False, None):  # None: a bar on a terminal only, and this is no terminal
        p = Progress(2, "x", progress, every_s=0.0, file=f)
        p.update(2)
        p.close("s")
    assert f.getvalue() == ""
    assert shows(None, _Tty()) and shows(True, f) and not shows(False, _Tty())


def test_on_a_terminal_the_bar_is_cleared_and_the_summary_stays():
    f = _Tty()
    p = Progress(3, "train", None, initial=1, file=f)
    p.update(2)
    p.close()
    last = f.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("train: done, 2 steps in ") and "(1 found saved)" in last

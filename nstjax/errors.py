"""The one exception type that the command line turns into a one-line message."""


class NstjaxError(Exception):
    """A problem with the user's input (a file, an option, a config field).

    The CLI prints ``nstjax: error: <message>`` and exits with status 2, without a traceback.
    The message must name the file or option at fault and say what is wrong.
    """


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def run_script(main) -> int:
    """A script's ``main()`` under the command line's rule for bad input: an
    :class:`NstjaxError` is one line on stderr (``<script>: error: <message>``) and exit status
    2, without a traceback; otherwise ``main``'s status (0 for ``None``)."""
    import sys
    from pathlib import Path

    try:
        return main() or 0
    except NstjaxError as e:
        print(f"{Path(sys.argv[0]).name}: error: {one_line(e)}", file=sys.stderr)
        return 2

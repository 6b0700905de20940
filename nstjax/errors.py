"""The one exception type that the command line turns into a one-line message."""


class NstjaxError(Exception):
    """A problem with the user's input (a file, an option, a config field).

    The CLI prints ``nstjax: error: <message>`` and exits with status 2, without a traceback.
    The message must name the file or option at fault and say what is wrong.
    """


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__

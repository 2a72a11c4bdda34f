"""The one exception type the CLI turns into a one-sentence message and exit code 1."""


class LionError(Exception):
    """A problem with the user's input or environment, phrased for the user.

    The message names the file or setting, what was expected, what was found and, where
    possible, the fix. The CLI prints it as ``lion <command>: error: <message>`` and exits 1.
    """

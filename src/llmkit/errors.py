"""The one exception type for bad user input.

The CLI turns an `LlmkitError` into a one-line message and exit code 2; anything else is a bug
and keeps its traceback.
"""


class LlmkitError(Exception):
    """A problem with the user's input (file, name, shape, flag); the message says the fix."""

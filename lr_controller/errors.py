"""The one exception type for mistakes a user can make (flags, gin, files, values).

Binaries catch it at the edge and print its message as a single line with a
non-zero exit (see `lr_controller.bin.cli`); library code raises it with a
message that names the bad value and what would be accepted.
"""


class UserError(ValueError):
  """A bad input from the user: printed as one line, never as a traceback."""


def first_line(error: BaseException) -> str:
  """The first line of `error`'s message (gin and gRPC append more), else its type."""
  return (str(error).strip().splitlines() or [type(error).__name__])[0]

"""Pure stages only: no test in this folder may start a process."""

from no_subprocess import no_subprocess  # noqa: F401  (an autouse fixture, on for this folder)

"""Errors a user can act on: each names where the problem is and what was expected."""


class HarnessError(Exception):
    """Base of every error the harness reports to a user without a traceback."""


class ConfigError(HarnessError):
    """A YAML file, a CLI flag or a manifest is wrong.

    Formats as ``<file>: <field>: expected <what>, got <value>``.
    """

    def __init__(self, source, field, expected, got=None, hint=""):
        self.source, self.field, self.expected, self.got = str(source), field, expected, got
        if hint and got is None:  # "unknown field", "it is missing": say that first
            msg = f"{source}: {field}: {hint}; expected {expected}"
        else:
            msg = f"{source}: {field}: expected {expected}"
            if got is not None:
                msg += f", got {got!r}"
            if hint:
                msg += f" ({hint})"
        super().__init__(msg)


class ModelError(HarnessError):
    """A model file is missing, unreadable, or cannot be fed."""


class RuntimeMissing(ModelError):
    """No runtime on this host can run the model (a .tflite without LiteRT); a device may still."""


class DeviceError(HarnessError):
    """A device could not be reached, or a run on it failed."""


class RunnerError(DeviceError):
    """The on-device runner reported a failure; carries its error type and stderr."""

    def __init__(self, device, error_type, message, stderr=""):
        self.device, self.error_type, self.stderr = device, error_type, stderr
        text = f"{device}: runner failed: {error_type}: {message}"
        if stderr.strip():
            tail = "\n".join(stderr.strip().splitlines()[-15:])
            text += f"\n--- stderr of the runner on {device} (last lines) ---\n{tail}"
        super().__init__(text)


class StoreError(HarnessError):
    """The measurement store cannot be opened or written."""

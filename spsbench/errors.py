"""User-facing errors. Anything raised as SpsbenchError is printed by the CLI as one line, exit code 2."""


class SpsbenchError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class TaskError(SpsbenchError):
    """A task file or its data is malformed (message names the file and the field)."""


class GradingError(SpsbenchError):
    """A grader could not be set up (unknown grader, bad policy)."""


class ConfigError(SpsbenchError):
    """A config or recipe has an unknown key or an invalid value."""


class EngineError(SpsbenchError):
    """A generation engine could not load a model or reach a server."""


class StoreError(SpsbenchError):
    """The results store cannot be opened or is inconsistent."""


class WriteError(SpsbenchError):
    """A file could not be written (full disk, file-size limit, read-only folder); the file is left as it was
    (spsbench.io writes beside it and renames), never half-written."""


class CheckpointError(SpsbenchError):
    """A checkpoint folder is not a loadable model (partial save, missing or corrupt weights)."""


class TrainingError(SpsbenchError):
    """Training cannot continue (bad reward, NaN loss, unusable model); message is one line."""


class BudgetError(ConfigError):
    """A prompt does not fit the model's context at all (no room left for a single completion token)."""


def one_line(exc: BaseException | str, limit: int = 400) -> str:
    """A library's message as one line: every line joined (a first line alone can end mid-sentence, as
    "Couldn't instantiate the backend tokenizer from one of:" does), whitespace collapsed, and shortened
    at a word boundary with a visible ellipsis past `limit` characters."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text

"""simulsub's one exception tree: every error the project raises on purpose derives from :class:`SimulsubError`.

The families live here so that every package can use them (``streaming`` imports nothing of the others); a module
may keep a narrower subclass next to the code that raises it when a caller catches that one specifically (for
example ``models.waitk.runtime.WaitkModelDirError``). The ``simulsub`` CLI turns any :class:`SimulsubError` that
reaches it into one ``simulsub COMMAND: error: MESSAGE`` line on stderr and the exception's ``exit_code`` (2), never
a traceback; library code raises these instead of ``SystemExit``.

Each family also keeps the built-in base its callers have always caught (``ValueError`` for bad input or files,
``RuntimeError`` for a failure while running), so ``except ValueError`` around a loader keeps working.

::

    SimulsubError
    ├── ModelDirError (ValueError)        a model directory or file is missing, invalid or cannot be loaded
    ├── ModelBuildError (ValueError)      a model cannot be converted, exported or initialised from its inputs
    ├── WorkDirError (ValueError)         a training work directory cannot be continued as asked
    ├── SourceTooLongError (ValueError)   an input has more tokens or positions than the model accepts
    ├── LanguageError (ValueError)        a language (pair) the model does not offer
    ├── AudioError (ValueError)           audio that is missing, unreadable or empty
    ├── InputFormatError (ValueError)     a malformed record: an instances-log line, a client message
    ├── ModelRunError (RuntimeError)      a loaded model or an external engine failed at run time
    └── app.errors.UserError              bad input or configuration caught at the CLI's edge
"""

from __future__ import annotations


class SimulsubError(Exception):
    """The root of every exception simulsub raises on purpose; its message is one line that says what to do.

    ``exit_code`` is what the CLI exits with when one reaches it (2, the code of a usage error).
    """

    exit_code: int = 2


class ModelDirError(SimulsubError, ValueError):
    """A model directory or file is missing, incomplete, invalid, or onnxruntime / CTranslate2 cannot load it."""


class ModelBuildError(SimulsubError, ValueError):
    """A model cannot be converted, exported or initialised from the given inputs (conversion, export, training)."""


class WorkDirError(SimulsubError, ValueError):
    """A training or distillation work directory is in a state the command cannot continue from."""


class SourceTooLongError(SimulsubError, ValueError):
    """A sentence has more subword tokens (or a sequence more positions) than the model accepts."""


class LanguageError(SimulsubError, ValueError):
    """A source or target language the model does not offer, or a multilingual model without one named."""


class AudioError(SimulsubError, ValueError):
    """An audio file is missing, unreadable or empty."""


class InputFormatError(SimulsubError, ValueError):
    """A record read from outside is malformed: an instances-log line, a client's protocol message."""


class ModelRunError(SimulsubError, RuntimeError):
    """A loaded model or an external engine (onnxruntime, a TTS program) failed on an input at run time."""

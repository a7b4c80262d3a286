"""Load a model file: a Python file that defines a module-level `model`."""

from __future__ import annotations

import runpy
from pathlib import Path

from symgrad.errors import ModelFileError, SymgradError
from symgrad.model import Model


def load_model(path: str | Path) -> Model:
    return model_from(load_namespace(path), path)


def load_namespace(path: str | Path) -> dict:
    """Run the model file and return its globals."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        namespace = runpy.run_path(str(path), run_name="__symgrad_model__")
    except SymgradError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())    # one line, for the CLI's one-line errors
        raise ModelFileError(f"model file {str(path)!r} failed to run: "
                             f"{type(exc).__name__}: {detail}") from exc
    return namespace


def model_from(namespace: dict, path: str | Path) -> Model:
    """The file's module-level `model`, checked."""
    path = Path(path)
    model = namespace.get("model")
    if model is None:
        raise ModelFileError(f"model file {str(path)!r} defines no module-level `model`; "
                             f"assign a symgrad.Model to a variable named model")
    if not isinstance(model, Model):
        raise ModelFileError(f"`model` in {str(path)!r} is a {type(model).__name__}, "
                             f"not a symgrad.Model")
    if model.name is None:
        model.name = path.name
    return model

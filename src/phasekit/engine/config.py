"""Strict algorithm configurations (pydantic), and their validation into one-line errors.

Every algorithm has a config model that maps one-to-one onto its keyword parameters: unknown
keys and out-of-range values are :class:`~phasekit.core.errors.ConfigError`.  Fields may hold
arbitrary Python objects (a learned denoiser, a callable prior) when typed with
:data:`CallableParam` or a :class:`typing.Protocol` checked at run time.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from ..core.errors import ConfigError


class StrictConfig(BaseModel):
    """Base of every algorithm config: unknown keys and out-of-range values are errors.

    ``arbitrary_types_allowed`` lets a field hold any object (a ``torch.nn.Module`` denoiser,
    a callable); such fields are validated by the protocol they declare, not by pydantic's
    schema.

    Examples
    --------
    >>> class MyConfig(StrictConfig):
    ...     beta: float = 0.9
    >>> MyConfig(beta=0.5).beta
    0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True,
                              allow_inf_nan=False)


def _must_be_callable(v: Any) -> Any:
    if v is not None and not callable(v):
        raise ValueError(f"expected a callable (e.g. a torch.nn.Module), got {type(v).__name__}")
    return v


#: a config field that takes any callable ``f(x) -> x`` (a denoiser, a prior), or None
CallableParam = Annotated[Any, AfterValidator(_must_be_callable)]


def config_error(name: str, exc: ValidationError, fields=None) -> ConfigError:
    """One-line :class:`ConfigError` from a pydantic ``ValidationError`` of algorithm ``name``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = " ".join(str(err.get("msg", "invalid value")).split())
    if msg.startswith(("Value error, ", "Assertion failed, ")):
        msg = msg.split(", ", 1)[1]
    if err.get("type") == "extra_forbidden" and fields is not None:
        return ConfigError(f"{name}: unknown parameter {loc!r} (accepted: {', '.join(sorted(fields)) or 'none'})")
    if not loc:  # a model-level check involving several parameters
        return ConfigError(f"{name}: invalid parameters: {msg}")
    return ConfigError(f"{name}: invalid parameter {loc!r}: {msg}")


def validate_params(spec, params: dict) -> dict:
    """Validate ``params`` against ``spec.config``; return the given keys with validated values."""
    try:
        cfg = spec.config(**params)
    except ValidationError as exc:
        raise config_error(spec.name, exc, spec.config.model_fields) from None
    except (TypeError, ValueError) as exc:  # a validator that raised outside pydantic's wrapping
        raise ConfigError(f"{spec.name}: {' '.join(str(exc).split())}") from None
    return {k: getattr(cfg, k) for k in params}

"""Block configuration base: one frozen dataclass per block, validated field by field.

Each field declares its allowed values through :func:`param`; the same metadata drives
validation (``ValueError`` naming the field), the command line's ``--set key=value`` parsing
and ``tensorgates list``.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

__all__ = ["BlockConfig", "param"]


def param(default: Any, doc: str, *, choices: tuple | None = None,
          minimum: float | None = None, maximum: float | None = None) -> Any:
    """A config field with its documentation and allowed values."""
    return dataclasses.field(default=default, metadata={
        "doc": doc, "choices": choices, "minimum": minimum, "maximum": maximum})


def _allowed(field: dataclasses.Field) -> str:
    meta = field.metadata
    if meta.get("choices") is not None:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return f"{kind} from {lo} to {hi}"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


_PARSERS = {"int": int, "float": float, "str": str}


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """Base of every block config: validates fields in ``__post_init__``."""

    block_name: ClassVar[str] = "block"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            self._check_field(field, getattr(self, field.name))
        self.check()

    def check(self) -> None:
        """Cross-field checks of a subclass (raise ``ValueError`` naming the fields)."""

    def check_rtl(self) -> None:
        """What the RTL cannot build yet although the golden model accepts it (``ValueError``
        naming the field); the command line calls it before generating anything."""

    @classmethod
    def _check_field(cls, field: dataclasses.Field, value: Any) -> None:
        kind = field.type if isinstance(field.type, str) else field.type.__name__
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[kind]
        if (isinstance(value, bool) and kind != "bool") or not isinstance(value, expected):
            raise ValueError(f"{cls.block_name}: {field.name}={value!r} is not allowed; "
                             f"expected {_allowed(field)}")
        meta = field.metadata
        bad = ((meta.get("choices") is not None and value not in meta["choices"])
               or (meta.get("minimum") is not None and value < meta["minimum"])
               or (meta.get("maximum") is not None and value > meta["maximum"]))
        if bad:
            raise ValueError(f"{cls.block_name}: {field.name}={value!r} is not allowed; "
                             f"expected {_allowed(field)}")

    @classmethod
    def parameters(cls) -> list[dict]:
        """Name, default, allowed values and documentation of every field."""
        return [{"name": f.name, "default": f.default, "allowed": _allowed(f),
                 "doc": f.metadata.get("doc", "")} for f in dataclasses.fields(cls)]

    @classmethod
    def check_value(cls, key: str, text: str) -> None:
        """``ValueError`` (naming ``key`` and its allowed values) unless ``key=text`` is a
        value the field allows on its own, whatever the other fields are."""
        value = cls._parse(key, text)
        cls._check_field(next(f for f in dataclasses.fields(cls) if f.name == key), value)

    @classmethod
    def _parse(cls, key: str, text: str) -> Any:
        """``text`` parsed as field ``key``'s type (``ValueError`` naming it)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if key not in fields:
            raise ValueError(f"{cls.block_name}: unknown parameter {key!r}; "
                             f"allowed: {', '.join(fields)}")
        field = fields[key]
        kind = field.type if isinstance(field.type, str) else field.type.__name__
        try:
            return _parse_bool(text) if kind == "bool" else _PARSERS[kind](text)
        except ValueError:
            raise ValueError(f"{cls.block_name}: {key}={text!r} is not allowed; "
                             f"expected {_allowed(field)}") from None

    @classmethod
    def from_strings(cls, settings: dict[str, str], base: BlockConfig | None = None) -> BlockConfig:
        """Build a config from ``key=value`` strings (the command line's ``--set``)."""
        values = dataclasses.asdict(base) if base is not None else {}
        for key, text in settings.items():
            values[key] = cls._parse(key, text)
        return cls(**values)

    def to_dict(self) -> dict:
        return {"block": self.block_name, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def slug(self) -> str:
        """A short, filesystem-safe name of this design point."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        parts = [f"{k}{v}" for k, v in dataclasses.asdict(self).items() if v != defaults[k]]
        return "-".join([self.block_name, *parts]) if parts else f"{self.block_name}-default"

"""The typed tool registry: one pydantic params model + one pure function per tool.

The params model is the single source of truth for the LLM-facing schema, the
validation, the stored recipe and the CLI listing. Tools are pure: they never
read files or call models; the agent and the I/O layer do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin
from weakref import WeakKeyDictionary

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

Tensor = Any  # torch.Tensor; torch is imported lazily by the ops themselves


class Params(BaseModel):
    """Base of every tool's parameters: strict, immutable, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    VERSION: ClassVar[int] = 1
    # Fields measured in pixels: scaled when a recipe made on a preview is replayed larger.
    PIXEL_FIELDS: ClassVar[tuple[str, ...]] = ()
    # version v -> upgrade of a params dict stored at v to v + 1; one entry per VERSION bump
    MIGRATIONS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic takes true as 1 in lax mode; a model that sends `"stops": true` has made a mistake
        if info.field_name in _number_fields(cls) and _holds_bool(value):
            raise PydanticCustomError("bool_not_number", "must be a number, not true or false")
        return value

    def scaled(self, factor: float) -> Params:
        """These params for an image `factor` times larger (pixel fields scaled, kept in bounds)."""
        if factor == 1 or not self.PIXEL_FIELDS:
            return self
        update: dict[str, Any] = {}
        for name in self.PIXEL_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            meta = {type(m).__name__: m for m in type(self).model_fields[name].metadata}
            new = value * factor
            lo, hi = getattr(meta.get("Ge"), "ge", None), getattr(meta.get("Le"), "le", None)
            new = max(lo, new) if lo is not None else new
            new = min(hi, new) if hi is not None else new
            update[name] = round(new) if isinstance(value, int) else new
        return self.model_copy(update=update)

    @classmethod
    def migrate(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Upgrade params stored at `version` to this VERSION, one MIGRATIONS step at a time.

        Bumping a tool's VERSION means adding MIGRATIONS[old] (old params dict -> the next
        version's); a recipe written before still loads and replays as it looked.
        """
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ToolError(
                f"version {version!r} is invalid: versions start at 1; set the step's \"version\" to the one "
                f"it was written with (this imagent writes {cls.VERSION})"
            )
        if version > cls.VERSION:
            raise ToolError(
                f"recipe step was written by a newer imagent (version {version}, "
                f"this one knows up to {cls.VERSION}); upgrade imagent"
            )
        for v in range(version, cls.VERSION):
            if v not in cls.MIGRATIONS:
                raise ToolError(f"params of version {v} cannot be upgraded to {v + 1} (no migration); "
                                "make this step again with the current tool")
            data = cls.MIGRATIONS[v](dict(data))
        return data


class ToolError(ValueError):
    """A bad call to a tool: the message is meant to be read by a person or a model.

    `fields`: the arguments at fault (empty when the call as a whole is wrong, e.g. an unknown tool).
    """

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


@dataclass(frozen=True)
class Tool:
    """A registered tool and the flags the rest of the house reasons with."""

    name: str
    params: type[Params]
    fn: Callable[..., Any]
    family: str
    pointwise: bool = False  # per-pixel colour map: output pixel depends on that input pixel only
    per_channel: bool = False  # a 1-D curve per channel (implies pointwise): runs fuse into one LUT
    supports_mask: bool = True  # blend m*edited + (1-m)*image when given a mask
    read_only: bool = False  # measures, returns no image
    needs_mask: bool = False  # fn(image, p, mask): acts on the region itself (inpainting); refuses to run without one
    differentiable: bool = True
    cost: float = 1.0  # rough relative cost, 1 = one pointwise pass

    @property
    def description(self) -> str:
        """The first docstring line of the params model: what the LLM reads to pick a tool."""
        return first_line(self.params.__doc__)

    def validate(self, params: Params | dict[str, Any] | None) -> Params:
        """Validate raw arguments into the params model; errors name each bad field."""
        if isinstance(params, self.params):
            return params
        if isinstance(params, Params):
            raise ToolError(f"{self.name}: expected {self.params.__name__} params, got {type(params).__name__}")
        try:
            return self.params.model_validate(params or {})
        except ValidationError as exc:
            fields = tuple(dict.fromkeys(".".join(str(x) for x in e["loc"]) for e in exc.errors()))
            raise ToolError(explain_validation(self.name, exc), fields=fields) from None

    def __call__(
        self,
        image: Tensor,
        params: Params | dict[str, Any] | None = None,
        mask: Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the tool on a (B,3,H,W) image in [0,1]; with a mask, only inside it."""
        p = self.validate(params if params is not None or not kwargs else kwargs)
        check_image(image, self.name)
        if self.needs_mask:
            if mask is None:
                raise ToolError(f"{self.name} needs a mask: make one first (mask_rect, mask_brush, ...) "
                                "and pass its name as `mask`")
            m = check_mask(mask, image, self.name)
            return blend(image, self.fn(image, p, m), m)
        out = self.fn(image, p)
        if self.read_only or mask is None:
            return out
        if not self.supports_mask:
            raise ToolError(f"{self.name} cannot be restricted to a mask; call it without one")
        return blend(image, out, check_mask(mask, out, self.name))


_REGISTRY: dict[str, Tool] = {}


def register(
    params: type[Params],
    *,
    family: str,
    name: str | None = None,
    **flags: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: record `fn(image, p)` as a tool whose arguments are `params`."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        tool_name = name or fn.__name__
        if tool_name in _REGISTRY and _REGISTRY[tool_name].fn is not fn:
            raise RuntimeError(f"tool {tool_name!r} registered twice")
        if not params.__doc__:
            raise RuntimeError(f"{params.__name__} needs a docstring: it is the tool's description")
        _REGISTRY[tool_name] = Tool(tool_name, params, fn, family, **flags)
        return fn

    return deco


def _load_all() -> None:
    # Importing the families registers their tools.
    from tools import analysis, color, detail, gan, geometry, inpaint, masks, tone  # noqa: F401


def get(name: str) -> Tool:
    """Look a tool up by name; the error lists the close matches."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `imagent tools` for the list"
        raise ToolError(f"unknown tool {name!r}{hint}") from None


def all_tools() -> list[Tool]:
    """Every registered tool, sorted by family then name."""
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda t: (t.family, t.name))


# ----------------------------------------------------------------- validation helpers


def first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if doc and doc.strip() else ""


def explain_validation(tool: str, exc: ValidationError) -> str:
    """Turn pydantic errors into one line per field a model can act on."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"]) or "arguments"
        value = err.get("input")
        kind = err["type"]
        if kind == "extra_forbidden":
            parts.append(f"unknown argument {field!r}")
        elif kind == "missing":
            parts.append(f"missing argument {field!r}")
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            lo, hi = _bounds(exc, err)
            rng = f"must be between {lo} and {hi}" if lo is not None and hi is not None else err["msg"].lower()
            parts.append(f"{field}={value!r} is out of range: {rng}")
        else:
            parts.append(f"{field}={value!r} is invalid: {err['msg']}")
    return f"{tool}: " + "; ".join(parts)


def _bounds(exc: ValidationError, err: dict[str, Any]) -> tuple[Any, Any]:
    """Both bounds of the offending field, read from its JSON schema."""
    title = exc.title
    model = next((t.params for t in _REGISTRY.values() if t.params.__name__ == title), None)
    if model is None or not err["loc"]:
        return None, None
    prop = model.model_json_schema().get("properties", {}).get(str(err["loc"][0]), {})
    lo = prop.get("minimum", prop.get("exclusiveMinimum"))
    hi = prop.get("maximum", prop.get("exclusiveMaximum"))
    return lo, hi


_NUMBER_FIELDS: WeakKeyDictionary[type[BaseModel], frozenset[str]] = WeakKeyDictionary()


def _number_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields whose values are numbers (or lists of numbers) and never booleans."""
    if model not in _NUMBER_FIELDS:
        _NUMBER_FIELDS[model] = frozenset(n for n, f in model.model_fields.items() if _numbers_only(f.annotation))
    return _NUMBER_FIELDS[model]


def _numbers_only(annotation: Any) -> bool:
    leaves: set[Any] = set()
    todo = [annotation]
    while todo:
        a = todo.pop()
        origin = get_origin(a)
        if origin is Literal:
            leaves.update(type(v) for v in get_args(a))
        elif origin is Annotated:
            todo.append(get_args(a)[0])
        elif origin is not None:  # Union, X | None, list[...], tuple[...]
            todo.extend(x for x in get_args(a) if x is not Ellipsis)
        else:
            leaves.add(a)
    return bool(leaves & {int, float}) and bool not in leaves


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, (list, tuple)) and any(_holds_bool(v) for v in value)


def check_image(image: Tensor, where: str) -> None:
    """Images are float (B,3,H,W) in [0,1]; anything else is a programming error named here."""
    import torch

    if not isinstance(image, torch.Tensor):
        raise ToolError(f"{where}: image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ToolError(f"{where}: image must have shape (B,3,H,W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ToolError(f"{where}: image must be float in [0,1], got {image.dtype}")


def check_mask(mask: Tensor, image: Tensor, where: str) -> Tensor:
    """A mask is (B|1,1,H,W) in [0,1] on the image's grid."""
    import torch

    if not isinstance(mask, torch.Tensor):
        raise ToolError(f"{where}: mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:  # (B,H,W)
        mask = mask[:, None]
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:]:
        raise ToolError(
            f"{where}: mask of shape {tuple(mask.shape)} does not fit the image "
            f"{tuple(image.shape[-2:])}; it must be (B,1,H,W) at the image's size"
        )
    return mask.to(device=image.device, dtype=image.dtype).clamp(0, 1)


def blend(image: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """Local edit: `m * edited + (1 - m) * image`."""
    return image + mask * (edited - image)


# ----------------------------------------------------------------- LangChain / JSON export


def llm_args_model(tool: Tool) -> type[Params]:
    """The params model the LLM sees: the tool's own fields, plus `mask` (a name) if local."""
    if not tool.supports_mask or tool.read_only:
        return tool.params
    from pydantic import Field, create_model

    return create_model(  # type: ignore[call-overload]
        tool.params.__name__ + "Args",
        __base__=tool.params,
        __doc__=tool.params.__doc__,
        mask=(
            str | None,
            Field(None, description="name of a mask in the session to restrict the edit to; null = whole image"),
        ),
    )


def json_schema(tool: Tool) -> dict[str, Any]:
    """OpenAI-style function schema of a tool (strict: every field listed, no extras)."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return convert_to_openai_tool(to_langchain(tool), strict=True)


Runner = Callable[[str, Params, "str | None"], "tuple[str, Any]"]


def to_langchain(tool: Tool, run: Runner | None = None) -> Any:
    """Export as a LangChain StructuredTool answering (short text, artifact).

    `run(name, params, mask_name)` is supplied by the agent: it applies the tool to
    the session's current version and returns the text the model reads plus the
    artifact the program keeps (version id, metrics). Pixels never enter the text.
    A bad argument comes back to the model as a readable error, not a crash.
    """
    from langchain_core.tools import StructuredTool, ToolException

    args_model = llm_args_model(tool)

    def call(**kwargs: Any) -> tuple[str, Any]:
        mask = kwargs.pop("mask", None)
        try:
            p = tool.validate(kwargs)
        except ToolError as exc:
            raise ToolException(str(exc)) from None
        if run is None:
            text = f"{tool.name} accepted {p.model_dump_json()}" + (f" on mask {mask!r}" if mask else "")
            return text, {"tool": tool.name, "params": p.model_dump(), "mask": mask}
        return run(tool.name, p, mask)

    return StructuredTool.from_function(
        func=call,
        name=tool.name,
        description=tool.description,
        args_schema=args_model,
        response_format="content_and_artifact",
        handle_tool_error=True,
        handle_validation_error=lambda exc: _lc_validation_text(tool.name, exc),
    )


def _lc_validation_text(name: str, exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return explain_validation(name, exc)
    return f"{name}: invalid arguments: {exc}"

"""Every registered tool: a strict-mode schema, field-level errors, LangChain conformance."""

from __future__ import annotations

import pytest
import torch
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.unit_tests import ToolsUnitTests

from tests.helpers import sample
from tools.registry import ToolError, all_tools, get, json_schema, to_langchain

TOOLS = all_tools()
NAMES = [t.name for t in TOOLS]


def _strict_ok(schema: dict) -> None:
    """OpenAI strict mode: every object lists all its properties as required, no extras."""
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        assert schema.get("additionalProperties") is False, schema
        assert sorted(schema.get("required", [])) == sorted(props), schema
        for sub in props.values():
            _strict_ok(sub)
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in schema.get(key, []):
            _strict_ok(sub)
    if "items" in schema and isinstance(schema["items"], dict):
        _strict_ok(schema["items"])
    for sub in schema.get("$defs", {}).values():
        _strict_ok(sub)


def test_the_house_has_the_tools_the_issue_names() -> None:
    wanted = {
        "exposure", "brightness", "contrast", "gamma", "saturation", "vibrance", "hue", "white_balance",
        "auto_white_balance", "curves", "levels", "shadows_highlights", "whites_blacks", "clahe", "equalize",
        "hsl", "split_toning", "sharpen", "denoise", "blur", "clarity", "dehaze", "vignette", "crop", "rotate",
        "flip", "resize", "measure",
    }
    assert wanted <= set(NAMES), wanted - set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_schema_converts_in_openai_strict_mode(name: str) -> None:
    tool = get(name)
    spec = convert_to_openai_tool(to_langchain(tool), strict=True)
    assert spec["function"]["strict"] is True
    assert spec["function"]["name"] == name
    assert spec["function"]["description"], "the first docstring line is the description"
    _strict_ok(spec["function"]["parameters"])
    assert json_schema(tool) == spec
    for prop, sub in spec["function"]["parameters"]["properties"].items():
        assert sub.get("description"), f"{name}.{prop} needs a description: the LLM reads it"


@pytest.mark.parametrize("name", NAMES)
def test_defaults_validate_and_flags_are_consistent(name: str) -> None:
    tool = get(name)
    tool.validate({})
    assert tool.params.VERSION >= 1
    missing = [v for v in range(1, tool.params.VERSION) if v not in tool.params.MIGRATIONS]
    assert not missing, f"{name}: VERSION {tool.params.VERSION} has no MIGRATIONS for {missing}: old recipes would not load"
    if tool.per_channel:
        assert tool.pointwise, "a per-channel curve is a pointwise map"
    if tool.read_only:
        assert not tool.pointwise


def test_out_of_range_error_names_field_and_bounds() -> None:
    with pytest.raises(ToolError, match=r"stops=9(\.0)? is out of range: must be between -4(\.0)? and 4"):
        get("exposure").validate({"stops": 9})


def test_unknown_argument_and_tool_are_named() -> None:
    with pytest.raises(ToolError, match="unknown argument 'brightness'"):
        get("exposure").validate({"brightness": 1})
    with pytest.raises(ToolError, match="did you mean exposure"):
        get("exposur")


def test_langchain_tool_reports_bad_arguments_to_the_model_instead_of_raising() -> None:
    lc = to_langchain(get("exposure"))
    msg = lc.invoke({"type": "tool_call", "id": "1", "name": "exposure", "args": {"stops": 9}})
    assert "out of range" in msg.content
    ok = lc.invoke({"type": "tool_call", "id": "2", "name": "exposure", "args": {"stops": 1, "mask": None}})
    assert "accepted" in ok.content and ok.artifact["params"]["stops"] == 1


def test_runner_gets_validated_params_and_mask_name() -> None:
    seen = {}

    def run(name, params, mask):
        seen.update(name=name, params=params, mask=mask)
        return "done", {"version": "v1"}

    lc = to_langchain(get("saturation"), run)
    msg = lc.invoke({"type": "tool_call", "id": "1", "name": "saturation", "args": {"mask": "sky"}})
    assert msg.content == "done" and msg.artifact == {"version": "v1"}
    assert seen["name"] == "saturation" and seen["mask"] == "sky"
    assert seen["params"] == get("saturation").params()


def test_mask_of_wrong_size_is_a_clear_error() -> None:
    img = sample()
    with pytest.raises(ToolError, match="does not fit the image"):
        get("exposure")(img, {"stops": 1}, mask=torch.ones(1, 1, 5, 5))


def test_image_contract_is_checked_at_the_edge() -> None:
    with pytest.raises(ToolError, match=r"shape \(B,3,H,W\)"):
        get("exposure")(torch.rand(3, 8, 8), {"stops": 1})
    with pytest.raises(ToolError, match="float"):
        get("exposure")(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), {"stops": 1})


def _conformance(tool):
    example = {k: v for k, v in tool.params().model_dump().items()}
    if tool.supports_mask and not tool.read_only:
        example["mask"] = None
    return type(
        f"TestLangChainConformance_{tool.name}",
        (ToolsUnitTests,),
        {
            "tool_constructor": property(lambda self: to_langchain(tool)),
            "tool_invoke_params_example": property(lambda self: example),
        },
    )


for _t in TOOLS:
    globals()[f"TestLangChainConformance_{_t.name}"] = _conformance(_t)

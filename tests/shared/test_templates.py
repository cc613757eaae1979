"""The template rules as plain functions: the list item's shape, approval, and body parameters."""

from __future__ import annotations

from shared.models import WhatsAppTemplate
from shared.templates import (
    TemplateInfo,
    approval_problem,
    body_parameters,
    parameter_problems,
    template_info,
    template_key,
)


def _template(values: dict[str, str], bindings: list[str], name: str = "order_update") -> WhatsAppTemplate:
    return WhatsAppTemplate.model_validate(
        {"name": name, "language": "en_US", "values": values, "bodyBindings": bindings}
    )


def _item(status: str, text: str) -> dict[str, object]:
    content = {"components": [{"type": "HEADER", "text": "{{9}}"}, {"type": "BODY", "text": text}]}
    return {"kind": "whatsApp", "name": "order_update", "language": "en_US", "status": status, "content": content}


def test_a_list_item_becomes_its_state_and_the_body_placeholders_in_order() -> None:
    """Only the BODY component's placeholders count, each once, in order of first appearance."""
    info = template_info(_item("APPROVED", "Order {{2}} for {{1}}: {{2}} again"))
    assert info == TemplateInfo("order_update", "en_US", "approved", ("2", "1"))
    assert info.approved


def test_content_without_components_expects_no_parameters() -> None:
    """A template item whose content is missing or odd expects nothing (never a crash)."""
    assert body_parameters(None) == ()
    assert body_parameters({"components": "BODY"}) == ()
    assert body_parameters({"components": [{"type": "body", "text": "Hi {{ name }}"}]}) == ("name",)


def test_languages_match_whatever_their_case_or_separator() -> None:
    """`en_US`, `en_us` and `en-US` name one template language."""
    assert template_key("t", "en_US") == template_key("t", "en-us") == ("t", "en_us")


def test_every_state_but_approved_and_an_unknown_template_are_refused() -> None:
    """Unknown, pending, paused and rejected all give template-not-approved on content.template."""
    template = _template({"1": "a", "2": "b"}, ["1", "2"])
    assert approval_problem(template, TemplateInfo("order_update", "en_US", "approved")) is None
    for state in ("pending", "paused", "rejected", "disabled"):
        problem = approval_problem(template, TemplateInfo("order_update", "en_US", state))
        assert problem is not None and problem.field == "content.template"
        assert problem.message.startswith(f"template-not-approved: the template is {state}")
    unknown = approval_problem(template, None)
    assert unknown is not None and "no template 'order_update'" in unknown.message


def test_bindings_must_match_the_body_count_and_name_given_values() -> None:
    """Too few bindings, or a binding with no value, are template-parameters-mismatch field errors."""
    info = TemplateInfo("order_update", "en_US", "approved", ("1", "2"))
    assert parameter_problems(_template({"1": "a", "2": "b"}, ["1", "2"]), info) == []
    short = parameter_problems(_template({"1": "a"}, ["1"]), info)
    assert [p.field for p in short] == ["content.template.bodyBindings"]
    assert "expects 2 parameter(s), got 1" in short[0].message
    missing = parameter_problems(_template({"1": "a"}, ["1", "2"]), info)
    assert [p.field for p in missing] == ["content.template.values"]
    assert missing[0].message == "template-parameters-mismatch: no value for 2"


def test_named_placeholders_must_be_bound_by_their_names() -> None:
    """A template with named parameters wants bindings with exactly those names, in order."""
    info = TemplateInfo("greeting", "en_US", "approved", ("first_name", "order"))
    good = _template({"first_name": "Ann", "order": "A-1"}, ["first_name", "order"])
    assert parameter_problems(good, info) == []
    wrong = _template({"1": "Ann", "2": "A-1"}, ["1", "2"])
    assert [p.message for p in parameter_problems(wrong, info)] == [
        "template-parameters-mismatch: the template's body expects first_name, order"
    ]

"""Audit entries as the domain builds them: known actions, an actor, small JSON details that
can never carry a credential."""

from __future__ import annotations

import json

import pytest

from voxmeter.domain import audit


def test_an_entry_keeps_what_it_was_given_with_details_as_compact_sorted_json() -> None:
    entry = audit.new_entry(7, "cli:alice", audit.TOKEN_CREATE, 3, {"token": "tok_1", "a": [1]})
    assert (entry.time, entry.actor, entry.action, entry.operation_id) == (
        7,
        "cli:alice",
        audit.TOKEN_CREATE,
        3,
    )
    assert entry.details == '{"a":[1],"token":"tok_1"}'
    assert json.loads(entry.details) == {"token": "tok_1", "a": [1]}


def test_every_action_the_log_will_hold_is_known() -> None:
    for action in audit.ACTIONS:
        assert audit.new_entry(0, audit.SYSTEM, action, None, {}).action == action
    assert {audit.PRICE_SET, audit.PRICE_DELETE, audit.ALERT_CREATE, audit.ALERT_DELETE} <= (
        audit.ACTIONS
    )
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.new_entry(0, audit.SYSTEM, "token.steal", None, {})


def test_an_entry_needs_an_actor() -> None:
    with pytest.raises(ValueError, match="actor"):
        audit.new_entry(0, "", audit.MAINTENANCE_ON, None, {})


@pytest.mark.parametrize(
    "details",
    [
        {"secret": "vxm_abc"},
        {"Hash": "deadbeef"},
        {"token": {"id": "tok_1", "secret_hash": "x"}},
        {"changes": [{"field": "licenses"}, {"password": "x"}]},
    ],
)
def test_details_never_hold_a_credential_even_nested(details: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must not hold"):
        audit.new_entry(0, audit.SYSTEM, audit.TOKEN_CREATE, 1, details)


def test_details_stay_small() -> None:
    assert audit.new_entry(0, audit.SYSTEM, audit.PRICE_SET, 1, {"x": "a" * 4000})
    with pytest.raises(ValueError, match="longer than"):
        audit.new_entry(0, audit.SYSTEM, audit.PRICE_SET, 1, {"x": "a" * audit.MAX_DETAILS})


def test_the_cli_actor_names_the_os_user() -> None:
    assert audit.cli_actor("alice") == "cli:alice"
    assert audit.cli_actor("") == "cli:unknown"

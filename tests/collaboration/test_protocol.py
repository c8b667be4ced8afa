"""The pure protocol module: enums, validation, the message envelope (no database)."""

import ast
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path

import pytest

from collaboration import protocol
from collaboration.protocol import (
    CollaborationProtocol,
    EmployeeRole,
    MessagePriority,
    MessageType,
    ProtocolError,
    ProtocolMessage,
)


def imported_modules(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_protocol_module_imports_no_django():
    assert not {m for m in imported_modules(protocol) if m.split(".")[0] in {"django", "rest_framework"}}


def test_builtin_enums_match_api_md():
    assert {t.value for t in MessageType} == {
        "task_request", "task_response", "notification", "status_update",
        "query", "query_response", "error", "conversation",
    }  # fmt: skip
    assert [int(p) for p in MessagePriority] == [1, 2, 3, 4]
    assert MessagePriority.URGENT > MessagePriority.LOW
    assert EmployeeRole.DEVELOPER == "developer" and EmployeeRole.QA_ENGINEER.value == "qa_engineer"


@pytest.mark.parametrize("value", [0, 5, -1, "x", "3", 2.0, True, None])
def test_priority_rejects_anything_but_1_to_4(value):
    with pytest.raises(ProtocolError) as info:
        protocol.validate_priority(value)
    assert "priority" in info.value.errors


def test_priority_accepts_levels():
    assert protocol.validate_priority(3) is MessagePriority.HIGH


def test_unknown_message_type_names_the_known_ones():
    with pytest.raises(ProtocolError) as info:
        protocol.validate_message_type("teleport")
    assert "task_request" in info.value.errors["message_type"][0]


def test_extra_types_from_settings_are_accepted():
    assert protocol.validate_message_type("deploy_request", extra=["deploy_request"]) == "deploy_request"


def test_enum_extension_registers_custom_types():
    class CustomMessageType(Enum):
        CUSTOM_REQUEST = "custom_request"
        CUSTOM_RESPONSE = "custom_response"

    try:
        assert protocol.register_message_types(CustomMessageType) == ["custom_request", "custom_response"]
        assert protocol.validate_message_type(CustomMessageType.CUSTOM_REQUEST) == "custom_request"
        assert "custom_response" in protocol.message_type_names()
    finally:
        protocol.unregister_message_types(["custom_request", "custom_response"])
    with pytest.raises(ProtocolError):
        protocol.validate_message_type("custom_request")


def test_register_refuses_malformed_type_names():
    with pytest.raises(ProtocolError):
        protocol.register_message_types(["Bad Name"])


@pytest.mark.parametrize("role", ["developer", "ml_ops_2", EmployeeRole.ARCHITECT])
def test_roles_any_well_formed_name_without_a_deployment_list(role):
    assert protocol.validate_role(role) in {"developer", "ml_ops_2", "architect"}


@pytest.mark.parametrize("role", ["", "Developer", "9lives", "a-b", "x" * 65, 3])
def test_malformed_roles_are_refused(role):
    with pytest.raises(ProtocolError):
        protocol.validate_role(role)


def test_deployment_role_list_restricts_roles():
    assert protocol.validate_role("ml_ops", extra_roles=["ml_ops"]) == "ml_ops"
    assert protocol.validate_role("developer", extra_roles=["ml_ops"]) == "developer"
    with pytest.raises(ProtocolError):
        protocol.validate_role("janitor", extra_roles=["ml_ops"])


@pytest.mark.parametrize("value", ["dev_001", "a", "A.b-c_9", "x" * 128])
def test_valid_employee_ids(value):
    assert protocol.validate_employee_id(value) == value


@pytest.mark.parametrize("value", ["", "role:developer", "_x", "a b", "x" * 129, "ü", 5])
def test_invalid_employee_ids(value):
    with pytest.raises(ProtocolError):
        protocol.validate_employee_id(value)


def test_protocol_message_header_payload_and_round_trip():
    proto = CollaborationProtocol(employee_id="dev_001", role=EmployeeRole.DEVELOPER)
    message = proto.create_message(
        "qa_001", MessageType.TASK_REQUEST, "test_code", {"file_path": "src/main.py"},
        priority=MessagePriority.HIGH, ttl=timedelta(minutes=5),
    )  # fmt: skip
    assert message.payload.action == "test_code"
    assert message.payload.data == {"file_path": "src/main.py"}
    assert message.header.ttl_seconds == 300
    assert message.header.expires_at - message.header.timestamp == timedelta(minutes=5)
    flat = message.to_dict()
    assert flat["sender_id"] == "dev_001" and flat["receiver_id"] == "qa_001" and flat["priority"] == 3
    again = ProtocolMessage.from_dict(flat)
    assert again.to_dict() == flat


def test_from_dict_accepts_header_and_payload_form():
    message = ProtocolMessage.from_dict(
        {"header": {"sender": "a", "receiver": "b", "type": "query", "priority": 4}, "payload": {"action": "ask"}}
    )
    assert message.header.priority is MessagePriority.URGENT
    assert message.payload.action == "ask"


def test_validation_reports_every_bad_field():
    message = ProtocolMessage.from_dict(
        {"sender_id": "a:b", "receiver_id": "b", "message_type": "nope", "priority": 9, "ttl_seconds": 0, "data": []}
    )
    with pytest.raises(ProtocolError) as info:
        message.validate()
    assert set(info.value.errors) == {"sender_id", "message_type", "priority", "ttl_seconds", "data"}


def test_validation_bounds_ttl():
    message = ProtocolMessage.from_dict(
        {"sender_id": "a", "receiver_id": "b", "message_type": "query", "ttl_seconds": 61}
    )
    with pytest.raises(ProtocolError) as info:
        message.validate(max_ttl_seconds=60)
    assert "ttl_seconds" in info.value.errors


def test_from_dict_missing_fields_and_bad_time():
    with pytest.raises(ProtocolError) as info:
        ProtocolMessage.from_dict({"sender_id": "a"})
    assert set(info.value.errors) == {"receiver_id", "message_type"}
    with pytest.raises(ProtocolError):
        ProtocolMessage.from_dict({"sender_id": "a", "receiver_id": "b", "message_type": "query", "created_at": "soon"})
    with pytest.raises(ProtocolError):
        ProtocolMessage.from_dict(["not", "a", "dict"])


def test_expiry_and_reply_correlation():
    proto = CollaborationProtocol("qa_001", "qa_engineer")
    request = CollaborationProtocol("dev_001", "developer").create_message("qa_001", "query", "ask", ttl=1)
    assert not request.is_expired(request.header.timestamp)
    assert request.is_expired(datetime.now(UTC) + timedelta(seconds=2))
    reply = proto.reply(request, MessageType.QUERY_RESPONSE, "answer", {"ok": True})
    assert reply.header.receiver == "dev_001"
    assert reply.header.correlation_id == request.header.id

"""The seed document's collaboration examples, end to end through the REST API."""

import pytest

from tests.collaboration.conftest import url

pytestmark = pytest.mark.django_db


def test_seed_collaboration_example(api):
    # 注册AI员工 / 建立员工连接 (setup_collaboration)
    assert api.post(url("employees/register"), {"employee_id": "dev_001", "role": "developer"}).status_code == 201
    assert api.post(url("employees/register"), {"employee_id": "qa_001", "role": "qa_engineer"}).status_code == 201
    assert api.post(url("employees/dev_001/connect"), {"target_employee_id": "qa_001"}).status_code == 201

    # 发送消息 (send_task_request)
    sent = api.post(
        url("employees/dev_001/messages"),
        {
            "receiver_id": "qa_001",
            "message_type": "task_request",
            "action": "test_code",
            "data": {"file_path": "src/main.py", "test_type": "unit"},
            "priority": 3,
            "ttl_seconds": 300,
        },
    )
    assert sent.status_code == 201 and sent.json()["success"] is True
    message = sent.json()["message"]

    # qa_001 receives it, answers with a correlated task_response, acks
    [received] = api.post(url("employees/qa_001/messages/receive"), {"limit": 10}).json()["messages"]
    assert received["id"] == message["id"] and received["data"]["file_path"] == "src/main.py"
    reply = api.post(
        url("employees/qa_001/messages"),
        {"receiver_id": "dev_001", "message_type": "task_response", "action": "test_result",
         "data": {"passed": True}, "correlation_id": received["id"]},
    )  # fmt: skip
    assert reply.status_code == 201
    assert api.post(url(f"employees/qa_001/messages/{received['id']}/ack")).status_code == 200
    [answer] = api.post(url("employees/dev_001/messages/receive"), {}).json()["messages"]
    assert answer["correlation_id"] == message["id"]

    # 创建协作会话 with designer_001
    assert api.post(url("employees/register"), {"employee_id": "designer_001", "role": "designer"}).status_code == 201
    created = api.post(
        url("employees/dev_001/conversations"),
        {
            "participants": ["dev_001", "qa_001", "designer_001"],
            "topic": "新功能开发讨论",
            "initial_message": {"content": "开始讨论新的用户界面功能"},
        },
    )
    assert created.status_code == 201
    conversation = created.json()["conversation"]
    [post] = api.post(url("employees/designer_001/messages/receive"), {}).json()["messages"]
    assert post["conversation_id"] == conversation["id"] and post["data"]["content"] == "开始讨论新的用户界面功能"

    # 调试工具: employee stats and system stats
    stats = api.get(url("employees/dev_001/stats")).json()["stats"]
    assert stats["message_stats"]["sent"] == 3 and stats["conversations"] == 1
    system = api.get(url("system/stats")).json()["stats"]
    assert system["employees"]["total"] == 3 and system["conversations"] == 1 and system["connections"] == 1

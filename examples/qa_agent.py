"""A QA agent: answers every ``test_code`` request (run from the repository root: python -m examples.qa_agent)."""

import asyncio
import os

from collaboration.client import CollaborationProtocol, EmployeeRole, ProtocolMessage

protocol = CollaborationProtocol(
    employee_id=os.environ.get("QA_ID", "qa_001"),
    role=EmployeeRole.QA_ENGINEER,
    seed_urls=[os.environ.get("SEED_URL", "http://localhost:8000")],
    enrollment_token=os.environ.get("SEED_ENROLLMENT_TOKEN"),  # not needed against `make run`
)


@protocol.handler("test_code")
async def test_code(message: ProtocolMessage) -> dict:
    print(f"testing {message.payload.data.get('file_path')} for {message.header.sender}", flush=True)
    return {"file_path": message.payload.data.get("file_path"), "passed": True, "tests_run": 12}  # the reply


if __name__ == "__main__":
    asyncio.run(protocol.run())

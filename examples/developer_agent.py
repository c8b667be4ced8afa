"""A developer agent: asks a QA engineer to test a file and prints the answer (python -m examples.developer_agent)."""

import asyncio
import os

from collaboration.client import CollaborationProtocol, EmployeeRole


async def main() -> None:
    seed_urls = [os.environ.get("SEED_URL", "http://localhost:8000")]
    enrollment_token = os.environ.get("SEED_ENROLLMENT_TOKEN")  # not needed against `make run`
    async with CollaborationProtocol(
        employee_id="dev_001", role=EmployeeRole.DEVELOPER, seed_urls=seed_urls, enrollment_token=enrollment_token
    ) as dev:
        await dev.connect(os.environ.get("QA_ID", "qa_001"))
        answer = await dev.request("role:qa_engineer", "test_code", {"file_path": "src/main.py"}, timeout=30)
        print(f"{answer.header.sender} answered: {answer.payload.data}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())

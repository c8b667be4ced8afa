"""The seed's 协作通信 client example, verbatim (tests/e2e/test_seed_examples.py runs it)."""

import asyncio
import aiohttp

async def setup_collaboration():
    """设置协作环境"""
    async with aiohttp.ClientSession() as session:
        # 注册开发者员工
        dev_data = {"employee_id": "dev_001", "role": "developer"}
        await session.post(
            "http://localhost:8000/api/v1/collaboration/employees/register",
            json=dev_data
        )
        
        # 注册QA员工
        qa_data = {"employee_id": "qa_001", "role": "qa_engineer"}
        await session.post(
            "http://localhost:8000/api/v1/collaboration/employees/register",
            json=qa_data
        )
        
        # 建立连接
        connection_data = {"target_employee_id": "qa_001"}
        await session.post(
            "http://localhost:8000/api/v1/collaboration/employees/dev_001/connect",
            json=connection_data
        )
        
        print("协作环境设置完成")

async def send_task_request():
    """发送任务请求"""
    async with aiohttp.ClientSession() as session:
        message_data = {
            "receiver_id": "qa_001",
            "message_type": "task_request",
            "action": "test_code",
            "data": {
                "file_path": "src/main.py",
                "test_type": "unit"
            },
            "priority": 3
        }
        
        async with session.post(
            "http://localhost:8000/api/v1/collaboration/employees/dev_001/messages",
            json=message_data
        ) as response:
            result = await response.json()
            print(f"任务请求发送结果: {result}")

# 运行示例
asyncio.run(setup_collaboration())
asyncio.run(send_task_request())

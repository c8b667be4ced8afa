"""The seed's 多实例管理 client example, verbatim (tests/e2e/test_seed_examples.py runs it)."""

import asyncio
import aiohttp

async def register_instance():
    """注册实例到集群"""
    async with aiohttp.ClientSession() as session:
        data = {
            "host": "localhost",
            "port": 8001,
            "weight": 2
        }
        
        async with session.post(
            "http://localhost:8000/api/v1/multi-instance/instances",
            json=data
        ) as response:
            result = await response.json()
            print(f"实例注册结果: {result}")

async def get_load_balanced_instance():
    """获取负载均衡实例"""
    async with aiohttp.ClientSession() as session:
        async with session.get(
            "http://localhost:8000/api/v1/multi-instance/instances/loadbalance"
        ) as response:
            result = await response.json()
            print(f"推荐实例: {result['instance']['url']}")

# 运行示例
asyncio.run(register_instance())
asyncio.run(get_load_balanced_instance())

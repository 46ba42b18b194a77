"""fedchain models: pure JAX/numpy networks, training, EWC/FedCurv, aggregation, blob codec, data.

Never imports asyncio, web3, aiohttp or aioipfs (tests/models/test_purity.py enforces it).
"""

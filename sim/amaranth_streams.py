"""``amaranth.sim`` helpers for stream ports: put and get with random gaps."""
from __future__ import annotations

import random

__all__ = ["stream_get", "stream_put"]


async def stream_put(ctx, stream, payload, *, rng: random.Random | None = None,
                     gap: float = 0.0) -> None:
    """Offer ``payload`` on ``stream`` (after random idle cycles) until it is taken."""
    while rng is not None and rng.random() < gap:
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng: random.Random | None = None, gap: float = 0.0):
    """Take one transfer from ``stream``, holding ``ready`` low on random cycles."""
    while rng is not None and rng.random() < gap:
        await ctx.tick()
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload

"""Typed keys for what the application shares between handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import ClientSession, web

if TYPE_CHECKING:
    from channels.base import BaseChannel
    from gateway.core.pipeline import Pipeline
    from gateway.core.units import TaskRunner
    from gateway.db import Database
    from gateway.media import MediaStore
    from gateway.metrics import Metrics
    from gateway.settings import Settings
    from gateway.tasks.runners import TaskContext

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[Database] = web.AppKey("db")
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
RUNNER: web.AppKey[TaskRunner] = web.AppKey("runner")
TASK_CONTEXT: web.AppKey[TaskContext] = web.AppKey("task_context")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
MEDIA: web.AppKey[MediaStore] = web.AppKey("media")
REDIS: web.AppKey[Any] = web.AppKey("redis")  # redis.asyncio.Redis when GATEWAY_REDIS_URL is set
HTTP: web.AppKey[ClientSession] = web.AppKey("http")
CHANNELS: web.AppKey[dict[str, BaseChannel]] = web.AppKey("channels")  # name -> channel instance

"""Typed keys for what the application shares between handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import ClientSession, web

if TYPE_CHECKING:
    from channels.base import BaseChannel
    from gateway.db import Database
    from gateway.media import MediaStore
    from gateway.metrics import Metrics
    from gateway.pipeline import Pipeline
    from gateway.settings import Settings
    from gateway.tasks import TaskContext, TaskRunner

SETTINGS = web.AppKey("settings", "Settings")
DB = web.AppKey("db", "Database")
PIPELINE = web.AppKey("pipeline", "Pipeline")
RUNNER = web.AppKey("runner", "TaskRunner")
TASK_CONTEXT = web.AppKey("task_context", "TaskContext")
METRICS = web.AppKey("metrics", "Metrics")
MEDIA = web.AppKey("media", "MediaStore")
REDIS = web.AppKey("redis", Any)
HTTP = web.AppKey("http", ClientSession)
CHANNELS = web.AppKey("channels", dict)  # name -> channel instance

__all__ = ["CHANNELS", "DB", "HTTP", "MEDIA", "METRICS", "PIPELINE", "REDIS", "RUNNER", "SETTINGS", "TASK_CONTEXT"]
if TYPE_CHECKING:
    _ = (BaseChannel, Database, MediaStore, Metrics, Pipeline, Settings, TaskContext, TaskRunner)

"""Workbench API simulator: a real HTTP stand-in for the external Workbench API."""

from .app import AnswerLost, create_app, get_state
from .config import ConfigError, SimConfig
from .server import SimServer

__all__ = ["AnswerLost", "ConfigError", "SimConfig", "SimServer", "create_app", "get_state"]

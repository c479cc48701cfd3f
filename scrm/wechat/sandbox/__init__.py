"""The WeChat sandbox: a local stand-in for WeChat's servers and users, for tests, demos and offline work."""

from scrm.wechat.sandbox.app import create_sandbox_app
from scrm.wechat.sandbox.client import SandboxClient, SandboxControlError
from scrm.wechat.sandbox.server import RunningSandbox, running_sandbox
from scrm.wechat.sandbox.state import SandboxState

__all__ = [
    "RunningSandbox",
    "SandboxClient",
    "SandboxControlError",
    "SandboxState",
    "create_sandbox_app",
    "running_sandbox",
]

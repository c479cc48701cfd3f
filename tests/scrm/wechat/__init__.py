"""Tests of the WeChat gateway, token stores and sandbox (``scrm.wechat``)."""

"""A thin Python client for the sandbox's control API, for tests, demos and the SMS one-time-code sender."""

from __future__ import annotations

from typing import Any

import requests


class SandboxControlError(Exception):
    """The sandbox refused a control request."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"sandbox answered {status}: {message}")


class SandboxClient:
    """Drives a running sandbox over HTTP: set it up, act as users, inject faults, read what happened."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()

    def __repr__(self) -> str:
        return f"SandboxClient({self.base_url!r})"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        response = self._http.request(
            method, f"{self.base_url}/sandbox{path}", json=body, params=params or None, timeout=self._timeout
        )
        answer = response.json()
        if response.status_code >= 400:
            raise SandboxControlError(response.status_code, answer.get("error", response.text))
        return answer

    # -- setup ----------------------------------------------------------------------------------------------------

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change ``target_url``, ``callback_timeout_s`` or ``callback_attempts``."""
        return self._call("PUT", "/config", settings)

    def reset(self) -> None:
        self._call("POST", "/reset")

    def register_app(self, appid: str, **fields: Any) -> dict[str, Any]:
        """Register an app; returns ``{"app", "credentials"}`` (generated secrets are only shown here)."""
        return self._call("POST", "/apps", {"appid": appid, **fields})

    def apps(self) -> list[dict[str, Any]]:
        return self._call("GET", "/apps")["apps"]

    def users(self) -> list[dict[str, Any]]:
        return self._call("GET", "/users")["users"]

    def create_user(self, user_id: str | None = None, **profile: Any) -> dict[str, Any]:
        body = {"user_id": user_id, **profile} if user_id else profile
        return self._call("POST", "/users", body)["user"]

    def update_user(self, user_id: str, **profile: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/users/{user_id}", profile)["user"]

    def user(self, user_id: str) -> dict[str, Any]:
        return self._call("GET", f"/users/{user_id}")["user"]

    def openid(self, user_id: str, appid: str) -> str:
        return self._call("GET", f"/users/{user_id}", appid=appid)["user"]["openids"][appid]

    # -- acting as a user -----------------------------------------------------------------------------------------

    def follow(self, user_id: str, appid: str, **extra: Any) -> dict[str, Any]:
        return self._call("POST", f"/users/{user_id}/follow", {"appid": appid, **extra})

    def scan(self, user_id: str, ticket: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{user_id}/scan", {"ticket": ticket})

    def unfollow(self, user_id: str, appid: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{user_id}/unfollow", {"appid": appid})

    def send_text(self, user_id: str, appid: str, content: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{user_id}/text", {"appid": appid, "content": content})

    def click(self, user_id: str, appid: str, key: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{user_id}/click", {"appid": appid, "key": key})

    def view(self, user_id: str, appid: str, url: str) -> dict[str, Any]:
        return self._call("POST", f"/users/{user_id}/view", {"appid": appid, "url": url})

    def answer_subscribe_popup(
        self, user_id: str, appid: str, template_ids: list[str], *, accept: bool = True
    ) -> dict[str, Any]:
        body = {"appid": appid, "template_ids": template_ids, "accept": accept}
        return self._call("POST", f"/users/{user_id}/subscribe-popup", body)

    def login_code(self, user_id: str, appid: str) -> str:
        """Open the mini-program as the user and return the ``wx.login`` code."""
        return self._call("POST", f"/users/{user_id}/miniprogram/login", {"appid": appid})["code"]

    def phone_code(self, user_id: str, appid: str) -> str:
        """Tap the phone-number button as the user and return the ``getuserphonenumber`` code."""
        return self._call("POST", f"/users/{user_id}/miniprogram/phone", {"appid": appid})["code"]

    # -- what happened --------------------------------------------------------------------------------------------

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        return self._call("GET", "/messages", **filters)["messages"]

    def callbacks(self) -> list[dict[str, Any]]:
        return self._call("GET", "/callbacks")["callbacks"]

    def tickets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/tickets")["tickets"]

    def send_sms(self, phone: str, text: str) -> dict[str, Any]:
        return self._call("POST", "/sms", {"phone": phone, "text": text})

    def sms(self, phone: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/sms", **({"phone": phone} if phone else {}))["messages"]

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def reset_stats(self) -> None:
        self._call("DELETE", "/stats")

    # -- faults and limits ----------------------------------------------------------------------------------------

    def stall(self, path: str, seconds: float, *, count: int | None = None) -> None:
        self._call("POST", "/faults/stall", {"path": path, "seconds": seconds, "count": count})

    def inject_errcode(self, path: str, errcode: int, *, count: int = 1, errmsg: str | None = None) -> None:
        self._call("POST", "/faults/errcode", {"path": path, "errcode": errcode, "count": count, "errmsg": errmsg})

    def inject_http_status(self, path: str, status: int, *, count: int = 1) -> None:
        self._call("POST", "/faults/http-status", {"path": path, "status": status, "count": count})

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_tokens(self, appid: str) -> int:
        return self._call("POST", f"/apps/{appid}/expire-tokens")["expired"]

    def set_quota(self, path: str, limit: int | None, *, appid: str | None = None) -> dict[str, Any]:
        return self._call("PUT", "/quotas", {"path": path, "limit": limit, "appid": appid})

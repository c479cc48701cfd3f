"""The gateway as the kernel builds it: apps from the `wechat_apps` table, tokens in Redis or a table."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from scrm.cache import TTLCache
from scrm.config import Config
from scrm.db import Database
from scrm.models import WeChatAccessToken
from scrm.secretbox import SecretBox
from scrm.wechat.apps import AppCredentials
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.tokens import CachedToken, LocalTokenStore, RedisTokenStore, TokenStore
from scrm.wechat_apps import AppRecord, load_all_apps, load_app

APP_CACHE_TTL_S = 10.0


def credentials(record: AppRecord) -> AppCredentials:
    return AppCredentials(
        appid=record.appid,
        secret=record.secret,
        kind=record.kind,
        token=record.token,
        encoding_aes_key=record.encoding_aes_key,
        mode=record.mode,
        original_id=record.original_id,
        name=record.name,
    )


class DatabaseAppDirectory:
    """Active apps from `wechat_apps`, decrypted, cached per process for a few seconds."""

    def __init__(self, db: Database, box: SecretBox, *, ttl_s: float = APP_CACHE_TTL_S) -> None:
        self.db = db
        self.box = box
        self._cache: TTLCache[str, AppCredentials | None] = TTLCache(ttl_s)

    def get(self, appid: str) -> AppCredentials | None:
        def load() -> AppCredentials | None:
            with self.db.transaction() as session:
                record = load_app(session, self.box, appid)
            return credentials(record) if record is not None else None

        return self._cache.get(appid, load)

    def all(self) -> list[AppCredentials]:
        with self.db.transaction() as session:
            return [credentials(record) for record in load_all_apps(session, self.box)]


class DatabaseTokenStore(LocalTokenStore):
    """The embedded mode's token cache: a table row per app, so a restart does not refetch.

    Single-flight holds within this process (the embedded mode is one process); deployments with
    several processes configure Redis and get `RedisTokenStore`.
    """

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db

    def get(self, appid: str) -> CachedToken | None:
        with self.db.transaction() as session:
            row = session.get(WeChatAccessToken, appid)
            cached = CachedToken(row.token, row.expires_at) if row is not None else None
        return cached if cached is not None and cached.is_fresh() else None

    def set(self, appid: str, token: str, expires_at: float) -> None:
        with self.db.transaction() as session:
            builder = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
            stmt = builder(WeChatAccessToken).values(appid=appid, token=token, expires_at=expires_at)
            session.execute(
                stmt.on_conflict_do_update(index_elements=["appid"], set_={"token": token, "expires_at": expires_at})
            )

    def invalidate(self, appid: str, token: str) -> None:
        with self.db.transaction() as session:
            session.execute(
                delete(WeChatAccessToken).where(WeChatAccessToken.appid == appid, WeChatAccessToken.token == token)
            )

    def tokens(self) -> list[str]:
        with self.db.transaction() as session:
            return list(session.scalars(select(WeChatAccessToken.appid)))


def build_gateway(config: Config, db: Database, redis: object | None) -> WeChatGateway:
    """The gateway for this deployment; it differs from the sandbox's only by `SCRM_WECHAT_API_BASE`."""
    tokens: TokenStore = RedisTokenStore(redis) if redis is not None else DatabaseTokenStore(db)
    return WeChatGateway(
        DatabaseAppDirectory(db, SecretBox(config.secret_key)),
        tokens,
        api_base=config.wechat_api_base,
        open_base=config.wechat_open_base,
        connect_timeout=config.wechat_connect_timeout_s,
        read_timeout=config.wechat_read_timeout_s,
    )

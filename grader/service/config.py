"""The service's settings: one object, read from flags and the environment, validated at
start-up, built in a dependency (`get_settings`) so tests can give each app its own."""

from __future__ import annotations

import functools
from pathlib import Path

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8765


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ankigen", appauthor=False)) / "service"


class Settings(BaseSettings):
    """ANKIGEN_* environment variables; the model endpoint as the grader CLI reads it."""

    model_config = SettingsConfigDict(env_prefix="ANKIGEN_", frozen=True, extra="ignore",
                                      populate_by_name=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    # "" means SQLite (WAL) in data_dir; any SQLAlchemy URL moves it (issue 17: PostgreSQL)
    db_url: str = ""
    # "" puts the job queue beside the database: a SQLite file in data_dir, or huey's
    # PostgreSQL storage in the same database (issue 17: workers on many machines)
    queue_url: str = ""
    worker: bool = True  # `grader serve` starts a grading worker beside the web process
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    base_url: str = Field(default="", validation_alias=AliasChoices("OPENAI_BASE_URL",
                                                            "ANKIGEN_BASE_URL"))
    model: str = ""
    api_key: SecretStr = Field(default=SecretStr(""), repr=False,
                               validation_alias=AliasChoices("OPENAI_API_KEY"))
    offline: bool = False
    run_code: bool = True
    device: str = "auto"  # where recalled code runs: auto | cpu | cuda
    timeout_s: float = 60.0  # one model request
    budget_s: float = 300.0  # all of one session's model requests
    lease_s: float = 60.0  # a job's lease; renewed every third of it while grading
    reap_every_s: float = 5.0  # how often the worker looks for expired leases
    max_recall_bytes: int = 1_000_000
    max_source_bytes: int = 20_000_000
    submissions_per_hour: int = 30
    immediate: bool = False  # run jobs inline (tests only: huey's immediate mode)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda"):
            raise ValueError("device must be auto, cpu or cuda")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 1 <= v <= 65535:
            raise ValueError(f"a port is 1-65535 (got {v})")
        return v

    @field_validator("lease_s", "reap_every_s", "timeout_s", "budget_s")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be more than 0")
        return v

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'grader.sqlite').resolve()}"

    @property
    def queue_path(self) -> Path:
        """huey's SQLite queue sits beside the SQLite store, so every process that opens the
        store (`--db`, whatever its data folder) shares the one queue (issue 17)."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(str(url.database)).resolve().parent / "queue.sqlite"
        return self.data_dir / "queue.sqlite"

    @property
    def cache_path(self) -> Path:
        return self.data_dir / "llm-cache.sqlite"


@functools.cache
def get_settings() -> Settings:
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives another process (the worker) these same settings."""
    env = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        alias = field.validation_alias
        key = (alias.choices[0] if isinstance(alias, AliasChoices) else f"ANKIGEN_{name}")
        env[str(key).upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env

"""Process settings: the one place that reads the environment (prefix ``PARKLEIT_``)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.clock import Clock

__all__ = ["MqttTarget", "Settings", "SettingsError", "get_settings"]

_DB_SCHEMES = ("postgresql", "postgres")
_MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
# A browser origin: scheme, host, optional port; no path (as browsers send it in Origin).
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class SettingsError(Exception):
    """A setting is missing, malformed or points at nothing; the message is one line."""


class MqttTarget(BaseModel):
    """An MQTT broker address split out of ``MQTT_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    v5: bool = True


class Settings(BaseSettings):
    """Everything a parkleit process can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="PARKLEIT_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    DATABASE_URL: str = "postgresql://postgres@127.0.0.1:5432/parkleit"
    # The API's read pool (its read-only queries: history, export, forecasts, signs, the
    # dashboard), e.g. a streaming replica; empty: DATABASE_URL. Writes, LISTEN and the lots'
    # live views stay on DATABASE_URL, the primary (docs/operations.md, "The read replica").
    DATABASE_READ_URL: str | None = None
    # ``db migrate``: also create the services' own database roles (DB_ROLE_PREFIX + api,
    # ingest, signage, forecast, ocpp, ocpi) and grant each what core/sql/roles.sql lists. A
    # role gets LOGIN and its password where DB_<SERVICE>_PASSWORD is set; without one a new
    # role is NOLOGIN and an existing role's login is left as it is.
    DB_ROLES: bool = False
    DB_ROLE_PREFIX: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,40}$")] = "parkleit_"
    DB_API_PASSWORD: SecretStr | None = None
    DB_INGEST_PASSWORD: SecretStr | None = None
    DB_SIGNAGE_PASSWORD: SecretStr | None = None
    DB_FORECAST_PASSWORD: SecretStr | None = None
    DB_OCPP_PASSWORD: SecretStr | None = None
    DB_OCPI_PASSWORD: SecretStr | None = None
    MQTT_URL: str = "mqtt://127.0.0.1:1883"
    MQTT_CA_FILE: Path | None = None
    # "5" everywhere it can be; "3.1.1" only for brokers without MQTT 5 (the amqtt demo
    # broker): then no shared subscriptions (one ingest worker) and no Receive Maximum.
    MQTT_PROTOCOL: Literal["5", "3.1.1"] = "5"
    CITY: str = "zeitz"
    # The cities of this installation (comma list of config names or paths), served side by
    # side by the API and run by ``demo``; empty: CITY alone. Ingest, signage, the forecaster
    # and the simulators serve CITY: one set of them per city.
    CITIES: Annotated[tuple[str, ...], NoDecode] = ()
    # Shifts this process's clock by so many seconds (``core.clock``): tests run at a fixed
    # instant, a replay of another day sees that day. Every process of an installation must
    # have the same value; 0 in production.
    CLOCK_OFFSET_S: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    # ingest
    # Empty: ``parkleit-ingest-{city}``, so the workers of several cities on one broker never
    # share a session. Give each further worker of a city an id of its own.
    INGEST_CLIENT_ID: str = ""
    INGEST_BATCH_SIZE: Annotated[int, Field(ge=1, le=50_000)] = 5000
    INGEST_BATCH_WAIT_MS: Annotated[int, Field(ge=1, le=10_000)] = 50
    INGEST_RECEIVE_MAXIMUM: Annotated[int, Field(ge=1, le=65_535)] = 5000
    # Scale-down: on stop, leave the shared subscription (unsubscribe, drain, acknowledge after
    # commit, end the MQTT session) instead of keeping the session for a restart; ``parkleit
    # ingest --leave`` sets it.
    INGEST_LEAVE_ON_STOP: bool = False
    INGEST_METRICS_PORT: Annotated[int, Field(ge=0, le=65_535)] = 9101
    INGEST_STALE_CHECK_S: Annotated[float, Field(gt=0)] = 30.0
    DEAD_LETTER_MAX_BYTES: Annotated[int, Field(ge=64)] = 4096
    # alarms (ingest evaluates them at every stale check): a raised or cleared alarm is also
    # POSTed as JSON to ALARM_WEBHOOK_URL (http or https; empty: off), waiting at most
    # ALARM_WEBHOOK_TIMEOUT_S; a failed POST is logged and counted, not repeated.
    ALARM_WEBHOOK_URL: str = ""
    ALARM_WEBHOOK_TIMEOUT_S: Annotated[float, Field(gt=0, le=60)] = 3.0
    SHUTDOWN_TIMEOUT_S: Annotated[float, Field(gt=0)] = 20.0
    # Leadership among replicas (core/leader.py): the leader checks its lock's session every
    # LEADER_CHECK_S and stops acting when a check fails or is late; the database ends a
    # session idle for LEADER_LEASE_S, so a frozen or cut-off leader's lock is free after it
    # (a standby takes over within about LEASE + CHECK). LEASE must be at least 3 × CHECK.
    LEADER_CHECK_S: Annotated[float, Field(ge=0.1, le=60)] = 1.0
    LEADER_LEASE_S: Annotated[float, Field(ge=1, le=600)] = 5.0
    # forecasting
    FORECAST_HORIZONS: Annotated[tuple[int, ...], NoDecode] = (15, 30, 60, 120)
    FORECAST_INTERVAL_S: Annotated[float, Field(gt=0)] = 300.0
    FORECAST_RETRAIN_HOUR: Annotated[int, Field(ge=0, le=23)] = 3
    FORECAST_TRAIN_DAYS: Annotated[int, Field(ge=1, le=3660)] = 91
    FORECAST_ACCURACY_DAYS: Annotated[int, Field(ge=1, le=366)] = 7
    # A lot's free count moving by this share of its capacity since the last prediction
    # triggers a new one, at most once per FORECAST_DEBOUNCE_S.
    FORECAST_CHANGE_SHARE: Annotated[float, Field(gt=0, le=1)] = 0.10
    FORECAST_DEBOUNCE_S: Annotated[float, Field(ge=0)] = 30.0
    # Threads of model fitting and prediction (0 = one per core). One by default: OpenMP
    # threads competing with other processes for the cores made training 10x slower.
    FORECAST_THREADS: Annotated[int, Field(ge=0, le=256)] = 1
    # signage: a sign whose content did not change is pushed again every KEEPALIVE_S (well
    # inside its comm-loss time, so it falls back only when the service is gone); every sign
    # is rendered again every TICK_S (staleness and the wiggle hold need no message); lot
    # states and forecasts are read again every RESYNC_S; a failing sign is retried after
    # RETRY_MIN_S, doubling up to RETRY_MAX_S.
    SIGNAGE_KEEPALIVE_S: Annotated[float, Field(gt=0)] = 60.0
    SIGNAGE_TICK_S: Annotated[float, Field(gt=0, le=60)] = 1.0
    SIGNAGE_RESYNC_S: Annotated[float, Field(gt=0)] = 10.0
    SIGNAGE_RETRY_MIN_S: Annotated[float, Field(gt=0)] = 1.0
    SIGNAGE_RETRY_MAX_S: Annotated[float, Field(gt=0)] = 60.0
    SIGNAGE_METRICS_PORT: Annotated[int, Field(ge=0, le=65_535)] = 9102
    # ocpp: the central system (``parkleit ocpp``) listens on OCPP_HOST:OCPP_PORT, path
    # /ocpp/{charge_point_id}. Stations log in with HTTP Basic (OCPP security profiles 1 and
    # 2), checked against OCPP_CREDENTIALS_FILE (``charge_point_id:scrypt$...`` lines,
    # ``parkleit ocpp add-station``); with OCPP_TLS_CERT_FILE and OCPP_TLS_KEY_FILE it speaks
    # wss (profile 2), else ws (profile 1: inside a trusted network only). A station is told
    # at boot to send a heartbeat every OCPP_HEARTBEAT_S.
    OCPP_HOST: str = "127.0.0.1"
    OCPP_PORT: Annotated[int, Field(ge=1, le=65_535)] = 9000
    OCPP_CREDENTIALS_FILE: Path | None = None
    OCPP_TLS_CERT_FILE: Path | None = None
    OCPP_TLS_KEY_FILE: Path | None = None
    OCPP_HEARTBEAT_S: Annotated[int, Field(ge=10, le=86_400)] = 300
    # A station without a link for this long has its points set UNKNOWN (stale is not free);
    # its statuses after it reconnects and boots set them again.
    OCPP_STALE_AFTER_S: Annotated[float, Field(gt=0)] = 900.0
    OCPP_METRICS_PORT: Annotated[int, Field(ge=0, le=65_535)] = 9103  # 0: none
    # ocpi: the pull's Prometheus metrics (0: none)
    OCPI_METRICS_PORT: Annotated[int, Field(ge=0, le=65_535)] = 9104
    # ``parkleit simulate chargers``: the central system's URL (empty: ws://OCPP_HOST:OCPP_PORT
    # /ocpp) and the simulated stations' passwords, ``charge_point_id:password`` lines (what
    # each charge point keeps itself).
    SIMULATE_OCPP_URL: str = ""
    SIMULATE_OCPP_PASSWORDS_FILE: Path | None = None
    # web pages: a raster tile URL template ({z}/{x}/{y}, optional {s}) and its attribution.
    # Empty: no tiles, the lots drawn by their coordinates on a plain background (works
    # offline, and no visitor's browser is sent to a third party).
    API_TILE_URL: str = ""
    API_TILE_ATTRIBUTION: str = ""
    # The AFIR publications (DATEX II energy infrastructure) carry the charging points the city
    # operates itself (``operator = "city"``); true: every operator's in the config.
    API_AFIR_ALL_OPERATORS: bool = False
    # admin writes: ``name:scrypt$...`` lines (``parkleit api add-key``); none: no admin.
    API_KEYS_FILE: Path | None = None
    # Browser origins that may read the API (GET/HEAD; comma list of ``https://host[:port]``).
    # ``*``: any, as open data should be. Admin routes never answer cross-origin requests.
    API_CORS_ORIGINS: Annotated[tuple[str, ...], NoDecode] = ("*",)
    # Origins that may show the web pages in a frame (CSP frame-ancestors), besides this one.
    API_FRAME_ANCESTORS: Annotated[tuple[str, ...], NoDecode] = ()
    # Proxies whose X-Forwarded-For/-Proto uvicorn believes (comma list of IPs or networks,
    # ``*`` any): the reverse proxy's address as the API sees it, so rate limits and the admin
    # audit count clients, not the proxy. Empty: none; a client's headers are never believed
    # (loopback neither: any local process could name itself anyone).
    API_FORWARDED_ALLOW_IPS: str = ""
    # Token buckets: every request takes one token of its client IP's bucket, an admin request
    # one of its key's too. Rate in requests per second (0 = no limit), burst = bucket size.
    # In each process, unless RATE_LIMIT_URL names a Redis (redis://host:6379/0) that every
    # API process shares: then a client gets these rates across all of them, not N times.
    API_RATE_LIMIT_URL: str = ""
    API_RATE_PER_IP: Annotated[float, Field(ge=0)] = 20.0
    API_BURST_PER_IP: Annotated[int, Field(ge=1)] = 100
    API_RATE_PER_KEY: Annotated[float, Field(ge=0)] = 2.0
    API_BURST_PER_KEY: Annotated[int, Field(ge=1)] = 20
    # Request limits (api/_limits.py; ``parkleit api``'s server stops reading at the same
    # bounds): the request line and header fields at most MAX_HEADER_BYTES (414, 431), a body
    # (POST, PUT, PATCH; other methods none) at most MAX_BODY_BYTES (413), the head complete
    # HEADER_TIMEOUT_S after its first byte, the body BODY_TIMEOUT_S after the head (408).
    API_MAX_HEADER_BYTES: Annotated[int, Field(ge=1024, le=1_048_576)] = 16_384
    API_MAX_BODY_BYTES: Annotated[int, Field(ge=1024, le=67_108_864)] = 16_384
    API_HEADER_TIMEOUT_S: Annotated[float, Field(gt=0, le=3600)] = 10.0
    API_BODY_TIMEOUT_S: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # GET /v1/stream: a comment line this often keeps proxies from closing the connection;
    # a client keeps the newest pending event per lot and sign (a burst is coalesced), and one
    # whose oldest pending event has waited MAX_LAG_S is not reading: it is dropped (it
    # reconnects and gets the current state); at most MAX_PER_IP streams per client address
    # (the one the rate limits count), the next is answered 429; lots are judged stale every
    # STALE_CHECK_S without any message.
    API_STREAM_HEARTBEAT_S: Annotated[float, Field(gt=0)] = 15.0
    API_STREAM_MAX_LAG_S: Annotated[float, Field(gt=0)] = 30.0
    API_STREAM_MAX_PER_IP: Annotated[int, Field(ge=1)] = 20
    API_STREAM_STALE_CHECK_S: Annotated[float, Field(gt=0)] = 5.0
    # operator console (/console): a session ends after CONSOLE_IDLE_TIMEOUT_S without a
    # request, and CONSOLE_SESSION_MAX_S after its login whatever happens; login attempts take
    # a token of the address's and of the user name's bucket (CONSOLE_LOGIN_BURST, refilled
    # at CONSOLE_LOGIN_RATE per second; 0: no limit).
    CONSOLE_IDLE_TIMEOUT_S: Annotated[int, Field(ge=60, le=86_400)] = 1800
    CONSOLE_SESSION_MAX_S: Annotated[int, Field(ge=60, le=604_800)] = 43_200
    CONSOLE_LOGIN_RATE: Annotated[float, Field(ge=0)] = 1 / 30
    CONSOLE_LOGIN_BURST: Annotated[int, Field(ge=1)] = 10
    # ``parkleit api``: where the HTTP server listens (0.0.0.0 in a container).
    API_HOST: str = "127.0.0.1"
    API_PORT: Annotated[int, Field(ge=1, le=65_535)] = 8000

    @field_validator("DATABASE_URL", "DATABASE_READ_URL")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in _DB_SCHEMES:
            raise ValueError(f"scheme must be postgresql://, got {parts.scheme or 'none'!r}")
        if not (parts.hostname or "host=" in parts.query):
            raise ValueError("no host in the URL")
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        return value

    @field_validator("DB_API_PASSWORD", "DB_INGEST_PASSWORD", "DB_SIGNAGE_PASSWORD",
                     "DB_FORECAST_PASSWORD", "DB_OCPP_PASSWORD", "DB_OCPI_PASSWORD")
    @classmethod
    def _check_role_password(cls, value: SecretStr | None,
                             info: ValidationInfo) -> SecretStr | None:
        if value is not None and not info.data.get("DB_ROLES"):
            raise ValueError("set only with PARKLEIT_DB_ROLES=true (db migrate sets it then)")
        return value

    @field_validator("ALARM_WEBHOOK_URL")
    @classmethod
    def _check_webhook(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("an http:// or https:// URL with a host (or empty: off)")
        return value

    @field_validator("API_FORWARDED_ALLOW_IPS")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        entries = [part.strip() for part in value.split(",") if part.strip()]
        if entries == ["*"]:
            return "*"
        for entry in entries:
            try:
                ip_network(entry)  # strict, as uvicorn reads it: 10.0.0.0/8, not 10.0.0.1/8
            except ValueError as exc:
                raise ValueError(f"not an IP address or network (or a lone '*'): {exc}"
                                 ) from None
        return ",".join(entries)

    @field_validator("FORECAST_HORIZONS", mode="before")
    @classmethod
    def _split_horizons(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(int(part) for part in value.split(","))
            except ValueError:
                raise ValueError(f"not a comma list of minutes: {value!r}") from None
        return value

    @field_validator("FORECAST_HORIZONS")
    @classmethod
    def _check_horizons(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(horizon <= 0 or horizon % 15 for horizon in value):
            raise ValueError(f"horizons must be positive multiples of 15 minutes: {value}")
        return tuple(dict.fromkeys(value))

    @field_validator("CITIES", "API_CORS_ORIGINS", "API_FRAME_ANCESTORS", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("API_CORS_ORIGINS", "API_FRAME_ANCESTORS")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.field_name == "API_CORS_ORIGINS" and "*" in value:
            if len(value) > 1:
                raise ValueError("'*' stands alone: any origin, or a list without it")
            return value
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"not an origin like https://example.org[:port]: {origin!r}")
        return value

    @field_validator("MQTT_URL")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in _MQTT_SCHEMES:
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise ValueError("no host in the URL")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_ocpp_tls(self) -> Settings:
        if (self.OCPP_TLS_CERT_FILE is None) != (self.OCPP_TLS_KEY_FILE is None):
            raise ValueError("PARKLEIT_OCPP_TLS_CERT_FILE and PARKLEIT_OCPP_TLS_KEY_FILE go "
                             "together (both: wss, neither: ws)")
        return self

    @model_validator(mode="after")
    def _check_lease(self) -> Settings:
        if self.LEADER_LEASE_S < 3 * self.LEADER_CHECK_S:
            raise ValueError("PARKLEIT_LEADER_LEASE_S must be at least 3 × PARKLEIT_LEADER_CHECK_S"
                             " (a leader must see that it lost its lock before another takes it)")
        return self

    @property
    def city_refs(self) -> tuple[str, ...]:
        """The config names or paths of every city of the installation (CITIES or CITY)."""
        return tuple(dict.fromkeys(self.CITIES)) or (self.CITY,)

    def secret(self, name: str) -> str | None:
        """The value of the environment variable ``name`` that a city config names for a
        secret (an OCPI peer's token, ``OcpiPeer.token_env``); None if unset or empty."""
        return os.environ.get(name, "").strip() or None

    @property
    def read_database_url(self) -> str:
        """Where the API's read-only queries go: DATABASE_READ_URL, else DATABASE_URL."""
        return self.DATABASE_READ_URL or self.DATABASE_URL

    @property
    def clock(self) -> Clock:
        """The process's clock (the wall clock shifted by ``CLOCK_OFFSET_S``)."""
        return Clock(timedelta(seconds=self.CLOCK_OFFSET_S))

    @property
    def mqtt(self) -> MqttTarget:
        """The broker address, credentials and TLS flag from ``MQTT_URL``."""
        parts = urlsplit(self.MQTT_URL)
        return MqttTarget(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or _MQTT_SCHEMES[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "mqtts",
            v5=self.MQTT_PROTOCOL == "5",
        )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; raises SettingsError with a one-line reason."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        # A check of several settings (a model validator) names them in its reason.
        raise SettingsError(f"PARKLEIT_{field}: {reason}" if field else reason) from None

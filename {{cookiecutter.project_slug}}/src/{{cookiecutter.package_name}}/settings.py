"""Service configuration, read once from the environment.

Every setting is an environment variable (case-insensitive) or a line in `.env`.
Cloud Run sets `PORT`; the deploy configuration sets the rest per environment.
See the settings table in README.md for who sets what where.
"""

from enum import StrEnum
{% if cookiecutter.use_secret_manager %}
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError
{% else %}
from typing import Literal

from pydantic import Field, ValidationError
{% endif %}
from pydantic_settings import BaseSettings, SettingsConfigDict
{% if cookiecutter.use_secret_manager %}

from .secret_manager import SecretSource
from .secrets import SecretManager, SecretSettings
{% endif %}


class Environment(StrEnum):
    """Where the service runs. `local` needs no Google Cloud account at all."""

    LOCAL = "local"
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class InvalidSettings(RuntimeError):
    """The environment does not make valid settings; the message names each
    variable and what is wrong with it, never its value."""


class Settings(BaseSettings):
    """Plain configuration: cheap to build, never touches the network."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    environment: Environment = Field(
        description=(
            "Required, so that an image started without it fails instead of serving "
            "as `local` with harmless defaults in place of its secrets. `make dev` "
            "and `.env.example` set `local`; the deployment sets the rest."
        ),
    )
    gcp_project: str = Field(
        default="{{ cookiecutter.gcp_project_id }}",
        description="Project the service runs in; also names the trace in log entries.",
    )
    region: str = "{{ cookiecutter.gcp_region }}"
    service_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Public base URL of this service (the Cloud Run URL when deployed).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, description="Cloud Run sets PORT; honour it.")
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] | None = Field(
        default=None,
        description="Defaults to text in `local` and JSON (for Cloud Logging) everywhere else.",
    )
    request_timeout_seconds: int = Field(
        default=300,
        ge=1,
        le=3600,
        description=(
            "Cloud Run's request timeout for this service, which answers 504 past it. "
            "The deployment sets both from one value; a request (a task's push "
            "included) has this long to finish."
        ),
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description=(
            "Largest request body accepted (413 above it, refused before or while "
            "it is read). Cloud Run allows 32 MiB; a few of those at once would "
            "not fit in the instance's memory."
        ),
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request line and headers accepted (431 above it).",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A connection must send a request's headers within this (408).",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request's body must arrive within this once its headers have (408).",
    )
    forwarded_hops: int = Field(
        default=1,
        ge=1,
        description=(
            "How many X-Forwarded-For entries Google appends: 1 on Cloud Run, 2 behind "
            "an external Application Load Balancer. The client's address is that "
            "entry from the right (forwarded.py)."
        ),
    )
    api_docs: bool | None = Field(
        default=None,
        description=(
            "Serve /docs, /redoc and /openapi.json. Default: in `local` and `dev`, "
            "not in `staging` and `prod`, where the schema would show every caller "
            "the whole surface of the API, internal routes and error shapes included."
        ),
    )
    graceful_shutdown_seconds: int = Field(
        default=8,
        description=(
            "How long in-flight requests may run after SIGTERM. Cloud Run sends "
            "SIGKILL 10 s after SIGTERM, so keep this below 10 with room for "
            "closing clients."
        ),
    )
{% if cookiecutter.use_tracing %}
    traces_endpoint: str = Field(
        default="https://telemetry.googleapis.com/v1/traces",
        description="Where spans go (OTLP over HTTP): Cloud Trace's Telemetry API.",
    )
    trace_sample_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of requests traced when the caller made no sampling decision "
            "(Cloud Run's front end makes one for each request it passes on)."
        ),
    )
{% endif %}
{% if cookiecutter.use_secret_manager %}
    secret_manager_emulator_host: str | None = Field(
        default=None,
        description="host:port of a local Secret Manager server (tests, local runs).",
    )
    secrets_deadline_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Startup fails if the secrets are not all read within this time.",
    )
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
    behind_cloud_run_iam: bool = Field(
        default=False,
        description=(
            "True when Cloud Run checks every caller's ID token (a private service, "
            "callers need roles/run.invoker). Cloud Run then hands the container that "
            "token with its signature removed, and the push endpoint accepts it on the "
            "strength of that check. Never set it on a public service: there anyone "
            "could send such a token."
        ),
    )
    tasks_queue: str = Field(default="default", description="Cloud Tasks queue ID.")
    tasks_location: str | None = Field(default=None, description="Queue region; default REGION.")
    tasks_invoker_service_account: str | None = Field(
        default=None,
        description=(
            "Service account whose OIDC token Cloud Tasks sends with each task, and the "
            "only one the push endpoint accepts; default tasks-invoker@<project>."
        ),
    )
    tasks_audience: str | None = Field(
        default=None, description="Audience of the tasks' OIDC tokens; default SERVICE_URL."
    )
    tasks_oidc_certs_url: str = Field(
        default="https://www.googleapis.com/oauth2/v1/certs",
        description="Where the keys that sign Google's OIDC tokens are published.",
    )
    tasks_enqueue_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long `.defer()` retries a transient failure."
    )
    tasks_warm_up: bool = Field(
        default=True,
        description=(
            "Create the Cloud Tasks client once the server listens, off the request path, so "
            "the first `.defer()` does not wait for the library (about half a second); "
            "false saves its memory (about 40 MiB of gRPC and protobuf) until then."
        ),
    )
    cloud_tasks_emulator_host: str | None = Field(
        default=None, description="host:port of a local Cloud Tasks server (dev, tests)."
    )
{% endif %}

    @property
    def serves_api_docs(self) -> bool:
        if self.api_docs is not None:
            return self.api_docs
        return self.environment in (Environment.LOCAL, Environment.DEV)

    @property
    def json_logs(self) -> bool:
        """Cloud Logging wants one JSON object per line; people want text.
        (The same rule as `logs.wants_json`, which reads the environment.)"""
        if self.log_format is not None:
            return self.log_format == "json"
        return self.environment is not Environment.LOCAL
{% if cookiecutter.use_secret_manager %}

    @property
    def secret_source(self) -> SecretSource:
        """Where this environment's secrets are read from (see secrets.py)."""
        return SecretSource(
            project=self.gcp_project,
            environment=self.environment.value,
            emulator_host=self.secret_manager_emulator_host,
            deadline_seconds=self.secrets_deadline_seconds,
        )
{% endif %}
{% if cookiecutter.use_cloud_tasks %}

    @property
    def queue_location(self) -> str:
        return self.tasks_location or self.region

    @property
    def invoker_email(self) -> str:
        return (
            self.tasks_invoker_service_account
            or f"tasks-invoker@{self.gcp_project}.iam.gserviceaccount.com"
        )

    @property
    def oidc_audience(self) -> str:
        return self.tasks_audience or self.service_url
{% endif %}


def settings_from_environment() -> Settings:
    """`Settings()` from the environment and `.env`, or `InvalidSettings`."""
    try:
        return Settings()
    except ValidationError as error:
        environments = f" ({', '.join(e.value for e in Environment)})"
        problems = []
        for problem in error.errors(include_input=False, include_url=False):
            variable = ".".join(str(part) for part in problem["loc"]).upper()
            hint = environments if variable == "ENVIRONMENT" else ""
            problems.append(f"{variable}: {problem['msg']}{hint}")
        raise InvalidSettings("Invalid settings: " + "; ".join(problems)) from None
{% if cookiecutter.use_secret_manager %}


class Secrets(SecretSettings):
    """Secret configuration, read at startup (see secrets.py).

    In `local` the defaults below apply unless the environment or `.env` sets a
    value; every other environment must get each secret from the environment or
    from Secret Manager, or the service does not start.
    """

    api_key: Annotated[SecretStr, SecretManager("api-key")] = Field(
        default=SecretStr("local-only-api-key"),
        description="Key for the upstream API this service calls.",
    )
{% endif %}

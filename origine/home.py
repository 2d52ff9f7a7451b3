"""``$ORIGINE_HOME``: where the warehouse, the Dagster instance and the segments live.

Layout::

    $ORIGINE_HOME/
      warehouse.duckdb     the embedded warehouse (never a raw number)
      dagster/             DAGSTER_HOME: run and event storage (SQLite by default)
      landing/             deliveries dropped here are picked up by the sensor
      suppressions/        STOP replies, DPO requests, do-not-call lists
      campaigns/           campaign specs (the campaigns sensor audits each one dropped here) and
                           the target lists and send reports they name: RAW NUMBERS, like
                           landing/, until the audit; then the spec moves to campaigns/audited/
                           and those files are deleted (origine.campaign_inbox)
      bundles/             audit bundles written by campaign audit runs
      reports/             lists of subject keys with consents about to expire (never numbers)
      segments/            immutable per-delivery Parquet segments
      profiles/            vendor profiles (<vendor>.yaml)
      gx/                  Great Expectations context and Data Docs
      keys/                the operator's Ed25519 signing key (tree heads, bundles)
      tmp/                 scratch space (unzipped deliveries), emptied after use
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from origine.keys import HashKey, load_key

HOME_ENV = "ORIGINE_HOME"
DEMO_MARKER = ".demo-home"
PG_URL_ENV = "ORIGINE_DAGSTER_PG_URL"

_MANAGED = "# Written by origine."
# A run killed outright (SIGKILL, OOM, power loss) never reports its end. The CLI
# reclaims its own dead runs (pipelines.runs); for runs the daemon launched, run
# monitoring fails them after max_runtime_seconds and then frees the `warehouse`
# pool slot they held, so later commits do not wait forever. The default run
# launcher cannot resume a run: no resume attempts.
_RUN_MONITORING = """\
run_monitoring:
  enabled: true
  poll_interval_seconds: 60
  max_resume_run_attempts: 0
  max_runtime_seconds: 21600
  free_slots_after_run_end_seconds: 60
"""
_DAGSTER_YAML = """\
# Written by origine. SQLite storage under this folder is the embedded default;
# see docs/deployment.md for PostgreSQL.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
""" + _RUN_MONITORING
_DAGSTER_YAML_PG = """\
# Written by origine because $ORIGINE_DAGSTER_PG_URL was set: runs, events and
# schedules are stored in PostgreSQL (see docs/deployment.md). The URL, with its
# password, is read from the environment at each start; it is never written here.
# Delete this file to go back to SQLite.
telemetry:
  enabled: false
storage:
  postgres:
    postgres_url:
      env: ORIGINE_DAGSTER_PG_URL
concurrency:
  pools:
    default_limit: 1
""" + _RUN_MONITORING


def dagster_yaml(env: Mapping[str, str] | None = None) -> str:
    """The ``dagster.yaml`` origine writes: PostgreSQL storage when ``$ORIGINE_DAGSTER_PG_URL`` is set."""
    env = os.environ if env is None else env
    return _DAGSTER_YAML_PG if env.get(PG_URL_ENV) else _DAGSTER_YAML


def check_pg_url(url: str) -> None:
    """Refuse a ``postgresql://`` URL without a driver when SQLAlchemy would pick one that is missing.

    dagster-postgres ships psycopg2; SQLAlchemy 2.1 reads a bare ``postgresql://`` as
    psycopg 3. The message never repeats the URL (it may hold a password).
    """
    from origine.errors import OrigineError

    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise OrigineError(
            f"${PG_URL_ENV} names no driver: write it postgresql+psycopg2://user@host:5432/db "
            "(psycopg2 comes with dagster-postgres; SQLAlchemy 2.1 reads postgresql:// as psycopg 3)"
        ) from None


@dataclass(frozen=True)
class Home:
    """The folders and files of one origine home."""

    root: Path

    @property
    def warehouse(self) -> Path:
        """The DuckDB warehouse file."""
        return self.root / "warehouse.duckdb"

    @property
    def dagster(self) -> Path:
        """DAGSTER_HOME for this home."""
        return self.root / "dagster"

    @property
    def landing(self) -> Path:
        """Where the landing sensor looks for deliveries."""
        return self.root / "landing"

    @property
    def suppressions(self) -> Path:
        """Where suppression files are dropped."""
        return self.root / "suppressions"

    @property
    def campaigns(self) -> Path:
        """Where campaign specs are dropped, with their raw target lists until audited."""
        return self.root / "campaigns"

    @property
    def bundles(self) -> Path:
        """Audit bundles written by the campaign audit job."""
        return self.root / "bundles"

    @property
    def reports(self) -> Path:
        """Nightly lists (subject keys, never numbers) of consents about to expire."""
        return self.root / "reports"

    @property
    def segments(self) -> Path:
        """Per-delivery immutable Parquet segments."""
        return self.root / "segments"

    @property
    def profiles(self) -> Path:
        """Vendor profiles."""
        return self.root / "profiles"

    @property
    def gx(self) -> Path:
        """Great Expectations context root."""
        return self.root / "gx"

    @property
    def keys(self) -> Path:
        """The operator's signing key (never the hashing key)."""
        return self.root / "keys"

    @property
    def scratch(self) -> Path:
        """Temporary files; removed after each use."""
        return self.root / "tmp"

    @property
    def is_demo(self) -> bool:
        """True for a home created by ``origine demo`` (the only place the demo key works)."""
        return (self.root / DEMO_MARKER).exists()

    def ensure(self, *, demo: bool = False) -> "Home":
        """Create the layout (idempotent) and the Dagster instance configuration."""
        for folder in (
            self.root, self.dagster, self.landing, self.suppressions, self.campaigns,
            self.segments, self.profiles, self.gx, self.scratch, self.keys,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        self._write_dagster_yaml()
        if demo:
            (self.root / DEMO_MARKER).write_text(
                "This home was created by `origine demo` with the public demo key.\n",
                encoding="utf-8",
            )
        return self

    def _write_dagster_yaml(self) -> None:
        """Write ``dagster.yaml``; switch an origine-written SQLite one to PostgreSQL when configured,
        and bring an origine-written one up to date.

        Never the other way: a home whose instance moved to PostgreSQL does not silently
        fall back to an empty SQLite instance when the variable is missing (Dagster then
        fails, naming the variable). A file without origine's header is the operator's
        and is left alone.
        """
        config = self.dagster / "dagster.yaml"
        wanted = dagster_yaml()
        if config.exists():
            current = config.read_text(encoding="utf-8")
            if current == wanted or not current.startswith(_MANAGED):
                return
            if wanted == _DAGSTER_YAML and "postgres:" in current:
                return
        partial = config.with_name(f".dagster.yaml.{os.getpid()}")
        partial.write_text(wanted, encoding="utf-8")
        os.replace(partial, config)

    def load_key(self) -> HashKey:
        """The hashing key for this home; the demo key only on a demo home."""
        return load_key(allow_demo=self.is_demo)

    @property
    def exists(self) -> bool:
        """True when ``root`` is an origine home: it has a warehouse, or the layout
        :meth:`ensure` creates (``dagster/dagster.yaml``)."""
        return self.warehouse.is_file() or (self.dagster / "dagster.yaml").is_file()

    def require(self) -> "Home":
        """This home, or :class:`~origine.errors.BadInput` (exit 2) when there is none at
        ``root``: for commands that only read (a mistyped ``--home`` must not read as
        "nothing held")."""
        from origine.errors import BadInput

        if not self.exists:
            raise BadInput(f"no origine home here (no {self.warehouse.name}, no dagster/dagster.yaml): "
                           f"check --home or ${HOME_ENV}", file=str(self.root))
        return self


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    """``--home``, else ``$ORIGINE_HOME``, else ``~/.origine``."""
    if explicit:
        return Home(Path(explicit).expanduser().resolve())
    env = os.environ.get(HOME_ENV)
    if env:
        return Home(Path(env).expanduser().resolve())
    return Home(Path.home() / ".origine")

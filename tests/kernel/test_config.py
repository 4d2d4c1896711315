"""The settings tree (tracehub/config.py): one reader of the environment, typed values with
defaults, and docs/configuration.md in step with it."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from tracehub.config import (
    PROJECT_DIR,
    ApiSettings,
    Settings,
    SmtpSettings,
    StripeSettings,
    markdown_table,
    variables,
)

DOC = PROJECT_DIR / "docs" / "configuration.md"
TABLE = re.compile(r"<!-- settings-table: begin[^>]*-->\n(.*?)<!-- settings-table: end -->", re.S)


def test_nothing_set_gives_the_local_stack() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.run_dir == PROJECT_DIR / ".run"
    assert conninfo_to_dict(settings.postgres_dsn) == {
        "user": "tracehub",
        "host": "127.0.0.1",
        "port": "15432",
        "dbname": "tracehub",
        # the passwords set-up generated (network/postgres/postgres.sh)
        "passfile": str(PROJECT_DIR / ".run" / "postgres-secrets" / "pgpass"),
    }
    gateway = conninfo_to_dict(settings.postgres_dsn_for("gateway"))
    assert gateway["user"] == "tracehub_gateway" and gateway["dbname"] == "tracehub"


def test_a_password_in_the_dsn_is_the_owners_alone() -> None:
    settings = Settings.from_env(
        {"TRACEHUB_POSTGRES_DSN": "postgresql://owner:s3cret@db.example:5432/hub"}
    )
    assert conninfo_to_dict(settings.postgres_dsn)["password"] == "s3cret"
    api = conninfo_to_dict(settings.postgres_dsn_for("api"))
    assert api["user"] == "tracehub_api" and "password" not in api
    assert api["passfile"] == str(settings.postgres_passfile)
    assert settings.mqtt_tls_port == 18883
    assert settings.fabric.crypto_dir == PROJECT_DIR / ".run" / "fabric" / "crypto"
    assert settings.api == ApiSettings(None, "http://127.0.0.1:18000", 2.0)
    assert settings.smtp == SmtpSettings("127.0.0.1", 1025, "tracehub@localhost")
    assert settings.stripe.webhook_secret is None


def test_standbys_make_a_multi_host_string_writers_follow_the_primary_through() -> None:
    """HA PostgreSQL (decision 0033): libpq tries the servers in order and keeps the one that
    takes writes; reads may prefer a standby. Deriving a component's DSN adds no host twice."""
    settings = Settings.from_env({"TRACEHUB_POSTGRES_STANDBYS": "127.0.0.1:15433"})
    for dsn in (settings.postgres_dsn, settings.postgres_dsn_for("gateway")):
        params = conninfo_to_dict(dsn)
        assert params["host"] == "127.0.0.1,127.0.0.1" and params["port"] == "15432,15433"
        assert params["target_session_attrs"] == "read-write"
    again = replace(settings, postgres_dsn=settings.postgres_dsn_for("gateway"))
    assert conninfo_to_dict(again.postgres_dsn)["port"] == "15432,15433"
    reads = conninfo_to_dict(settings.postgres_read_dsn_for("api"))
    assert reads["target_session_attrs"] == "prefer-standby" and reads["user"] == "tracehub_api"
    # Without standbys, reads go where writes go.
    single = Settings.from_env({})
    assert single.postgres_read_dsn_for("api") == single.postgres_dsn_for("api")
    with pytest.raises(ValueError, match="host:port"):
        Settings.from_env({"TRACEHUB_POSTGRES_STANDBYS": "127.0.0.1"})


def test_values_are_typed_and_empty_counts_as_unset(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "TRACEHUB_RUN": str(tmp_path),
            "TRACEHUB_MQTT_TLS_PORT": "28883",
            "TRACEHUB_PAGE_CACHE_S": "0",
            "TRACEHUB_API_SEARCH_PATH": "",
            "TRACEHUB_SMTP_HOST": "",
            "TRACEHUB_EPCIS_SCHEMA": str(tmp_path / "schema.json"),
            "TRACEHUB_STRIPE_WEBHOOK_SECRET": "whsec_x",
        }
    )
    assert settings.run_dir == tmp_path
    assert settings.pki_dir == tmp_path / "pki"
    assert settings.fabric.crypto_dir == tmp_path / "fabric" / "crypto"
    assert settings.mqtt_tls_port == 28883
    assert settings.api.page_cache_s == 0.0
    assert settings.api.search_path is None
    assert settings.smtp.host == "127.0.0.1"
    assert settings.epcis.schema == tmp_path / "schema.json"
    assert settings.stripe == StripeSettings(
        "sk_test_tracehubStripeMock", "http://127.0.0.1:12111", "whsec_x"
    )


def test_a_bad_number_names_its_variable() -> None:
    with pytest.raises(ValueError, match="TRACEHUB_SMTP_PORT='smtp': not an integer"):
        Settings.from_env({"TRACEHUB_SMTP_PORT": "smtp"})


def test_mail_from_is_a_deprecated_alias_of_the_smtp_sender() -> None:
    assert Settings.from_env({"TRACEHUB_MAIL_FROM": "a@x"}).smtp.sender == "a@x"
    both = {"TRACEHUB_MAIL_FROM": "a@x", "TRACEHUB_SMTP_SENDER": "b@x"}
    assert Settings.from_env(both).smtp.sender == "b@x"


def test_every_variable_is_declared_once() -> None:
    names = [v.name for v in variables()] + [a for v in variables() for a in v.aliases]
    assert len(names) == len(set(names))
    assert all(name.startswith("TRACEHUB_") for name in names)


def test_the_documented_table_is_the_trees() -> None:
    match = TABLE.search(DOC.read_text())
    assert match, "docs/configuration.md lost its settings-table markers"
    assert match.group(1) == markdown_table(), (
        "docs/configuration.md disagrees with tracehub/config.py: paste the output of"
        " `.venv/bin/python -m tracehub.config` between the settings-table markers"
    )


def test_every_stack_script_variable_is_documented() -> None:
    doc = DOC.read_text()
    scripts = (PROJECT_DIR / "network").rglob("*.sh")
    honoured = {
        name
        for path in scripts
        for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*):-", path.read_text())
    }
    assert honoured, "no ${VAR:-default} in network/*.sh: the pattern is out of date"
    missing = sorted(name for name in honoured if f"`{name}`" not in doc)
    assert not missing, f"network/*.sh honour {missing}; list them in docs/configuration.md"


# Reads of the environment: os.environ.get / [...] and getenv. `{**os.environ, ...}` (the
# environment handed to a subprocess) is not a read.
_ENV_READ = re.compile(r"\bgetenv\b|\benviron\s*(\.get\b|\[)")
# The chaincode runs in the peer's trust domain and may not import the kernel (pyproject.toml's
# `chaincode` contract); it reads Fabric's CHAINCODE_* variables itself.
_ALLOWED = {Path("tracehub/config.py"), Path("chaincode/__main__.py")}
_PACKAGES = (
    "tracehub", "certs", "ingest", "alerts", "commerce", "gateway", "api", "demo", "edge",
    "chaincode", "bench",
)  # fmt: skip


def test_only_the_settings_tree_reads_the_environment() -> None:
    readers = sorted(
        str(path.relative_to(PROJECT_DIR))
        for package in _PACKAGES
        for path in (PROJECT_DIR / package).rglob("*.py")
        if path.relative_to(PROJECT_DIR) not in _ALLOWED and _ENV_READ.search(path.read_text())
    )
    assert readers == [], f"read the environment through tracehub.config.Settings: {readers}"


def test_witnesses_can_be_turned_off() -> None:
    """An empty variable counts as unset (the default witness), so `none` says none."""
    assert Settings.from_env({"TRACEHUB_LEDGER_WITNESSES": ""}).api.witness_urls == (
        "http://127.0.0.1:18090",
    )
    assert Settings.from_env({"TRACEHUB_LEDGER_WITNESSES": "none"}).api.witness_urls == ()
    assert Settings.from_env(
        {"TRACEHUB_LEDGER_WITNESSES": "https://w.example/, http://x.example"}
    ).api.witness_urls == ("https://w.example", "http://x.example")


def test_the_kubo_nodes_follow_the_topology_unless_listed() -> None:
    assert Settings.from_env({}).ipfs_endpoints == ("http://127.0.0.1:15001",)
    ha = {"TRACEHUB_TOPOLOGY": "ha", "TRACEHUB_IPFS_API": "http://127.0.0.1:25001/"}
    assert Settings.from_env(ha).ipfs_endpoints == (
        "http://127.0.0.1:25001",
        "http://127.0.0.1:25002",
    )
    listed = {**ha, "TRACEHUB_IPFS_APIS": " http://127.0.0.1:1/, ,http://127.0.0.1:2 "}
    assert Settings.from_env(listed).ipfs_endpoints == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert Settings.from_env({"TRACEHUB_IPFS_WRITE_TIMEOUT_S": "5"}).ipfs_write_timeout_s == 5.0


def test_one_port_offset_moves_every_default_port() -> None:
    """TRACEHUB_PORT_OFFSET: a second stack beside the everyday one, as network/stack.sh runs
    it; what is set explicitly stays as given."""
    moved = Settings.from_env({"TRACEHUB_PORT_OFFSET": "13000", "TRACEHUB_TOPOLOGY": "ha"})
    # The ha stack's primary, then its standby: writers follow a failover (decision 0033).
    dsn = conninfo_to_dict(moved.postgres_dsn)
    assert (dsn["port"], dsn["target_session_attrs"]) == ("28432,28433", "read-write")
    assert moved.postgres_standbys == "127.0.0.1:28433"
    elsewhere = Settings.from_env(
        {"TRACEHUB_TOPOLOGY": "ha", "TRACEHUB_POSTGRES_DSN": "postgresql://x@127.0.0.1:5555/t"}
    )
    assert conninfo_to_dict(elsewhere.postgres_dsn)["port"] == "5555"  # not the stack's: as given
    assert moved.ipfs_endpoints == ("http://127.0.0.1:28001", "http://127.0.0.1:28002")
    assert moved.mqtt_tls_port == 31883
    assert moved.api.public_url == "http://127.0.0.1:31000"
    assert moved.api.witness_urls == ("http://127.0.0.1:31090",)
    assert moved.smtp.port == 14025
    assert moved.stripe.api_base == "http://127.0.0.1:25111"
    assert (moved.metrics.api_port, moved.metrics.prometheus_port) == (31001, 32090)
    assert moved.metrics.gateway_port == 0  # 0 means a free port, offset or not
    assert moved.fabric.port_offset == 13000
    assert moved.fabric.gateway_endpoints(1) == ("127.0.0.1:30051", "127.0.0.1:30061")
    given = Settings.from_env(
        {
            "TRACEHUB_PORT_OFFSET": "13000",
            "TRACEHUB_MQTT_TLS_PORT": "1883",
            "TRACEHUB_FABRIC_PORT_OFFSET": "7",
        }
    )
    assert (given.mqtt_tls_port, given.fabric.port_offset) == (1883, 7)
    assert Settings.from_env({"TRACEHUB_PORT_OFFSET": "0"}) == Settings()
    with pytest.raises(ValueError, match="TRACEHUB_PORT_OFFSET='x': not an integer"):
        Settings.from_env({"TRACEHUB_PORT_OFFSET": "x"})


def test_the_stack_scripts_move_by_the_same_offset() -> None:
    """network/stack.sh adds TRACEHUB_PORT_OFFSET to the same base ports as the tree's defaults."""
    script = (PROJECT_DIR / "network" / "stack.sh").read_text()
    defaults = Settings()
    bases = {
        "PGPORT": int(conninfo_to_dict(defaults.postgres_dsn)["port"]),
        "KUBO_API_PORT": int(defaults.ipfs_api.rsplit(":", 1)[1]),
        "MQTT_TLS_PORT": defaults.mqtt_tls_port,
        "STRIPE_MOCK_HTTP_PORT": int(defaults.stripe.api_base.rsplit(":", 1)[1]),
        "API_PORT": int(defaults.api.public_url.rsplit(":", 1)[1]),
        "WITNESS_PORT": int(defaults.api.witnesses.rsplit(":", 1)[1]),
        "SMTP_PORT": defaults.smtp.port,
        "TRACEHUB_PROMETHEUS_PORT": defaults.metrics.prometheus_port,
        "TRACEHUB_API_METRICS_PORT": defaults.metrics.api_port,
    }
    for name, port in bases.items():
        assert re.search(
            rf"\b{name}=(\$\{{{name}:-)?\$\(\({port} \+ STACK_PORT_OFFSET\)\)", script
        ), f"network/stack.sh: {name} is not {port} + STACK_PORT_OFFSET"

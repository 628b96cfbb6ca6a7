"""compose.yaml and the Dockerfile, checked as files: no Docker engine runs where the tests run, so
this proves the structure (services, image, environment, volumes, start order), not that the
containers start. What a member needs from the environment is checked against pipeline.settings."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from pipeline.settings import ENV

ROOT = Path(__file__).parent.parent
COMPOSE = ROOT / "compose.yaml"
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough to read the file as Compose would."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return INTERPOLATION.sub(sub, value)


def test_services_and_image():
    doc = _compose()
    assert set(doc["services"]) == {"postgres", "member"}
    pg, member = doc["services"]["postgres"], doc["services"]["member"]
    assert pg["image"].split(":")[1].startswith("15")
    # members are built from the project's Dockerfile, and that image has the postgres extra
    assert member["build"] == "." and (ROOT / "Dockerfile").exists()
    dockerfile = (ROOT / "Dockerfile").read_text()
    install = next(line for line in dockerfile.splitlines() if line.startswith("RUN pip install"))
    assert "postgres" in re.search(r'"\.\[([a-z,]+)\]"', install).group(1).split(",")
    pyproject = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^postgres = \[(.*)\]", pyproject, re.M).group(1)
    assert "psycopg" in extra and "procrastinate" in extra
    assert member["command"][:2] == ["borderwatch", "run"]


def test_members_can_be_scaled():
    """`docker compose up --scale member=3` refuses a fixed container name or a published host port."""
    member = _compose()["services"]["member"]
    assert "container_name" not in member and "ports" not in member
    assert member["deploy"]["replicas"] >= 2


def test_members_wait_for_a_healthy_database():
    doc = _compose()
    pg, member = doc["services"]["postgres"], doc["services"]["member"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert member["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_member_environment_points_at_the_postgres_service():
    doc = _compose()
    pg, member = doc["services"]["postgres"], doc["services"]["member"]
    env = {k: _interpolate(str(v), {"POSTGRES_PASSWORD": "s3cret"}) for k, v in member["environment"].items()}
    url = urlsplit(env["BORDERWATCH_DB"])
    assert url.scheme == "postgresql" and url.hostname == "postgres"
    assert url.username == pg["environment"]["POSTGRES_USER"]
    assert url.path.lstrip("/") == pg["environment"]["POSTGRES_DB"]
    assert url.password is None and env["PGPASSWORD"] == "s3cret"  # the secret stays out of the URL
    # Both services take the same password, and it has no default: compose stops if it is unset.
    assert member["environment"]["PGPASSWORD"] == pg["environment"]["POSTGRES_PASSWORD"]
    try:
        _interpolate(pg["environment"]["POSTGRES_PASSWORD"], {})
    except KeyError as e:
        assert "POSTGRES_PASSWORD" in str(e)
    else:
        raise AssertionError("POSTGRES_PASSWORD has a default")


def test_member_environment_is_what_settings_reads():
    member = _compose()["services"]["member"]
    names = set(member["environment"])
    libpq = {n for n in names if n.startswith("PG")}
    assert libpq == {"PGPASSWORD"}
    assert names - libpq <= set(ENV), f"unknown to pipeline.settings: {sorted(names - libpq - set(ENV))}"
    # every SMTP setting is passed through from .env / the shell, empty when unset (= no SMTP)
    smtp = {n for n in ENV if n.startswith("SMTP_")} | {"DIGEST_FROM"}
    assert smtp <= names
    for name in smtp:
        assert member["environment"][name] == f"${{{name}:-}}"
        assert _interpolate(member["environment"][name], {}) == ""
        assert _interpolate(member["environment"][name], {name: "x"}) == "x"


def test_config_files_and_volumes():
    doc = _compose()
    member = doc["services"]["member"]
    mounts = {}
    for spec in member["volumes"]:
        source, target, *mode = spec.split(":")
        mounts[target] = (source, mode)
    for var in ("BORDERWATCH_FEEDS", "BORDERWATCH_KEYWORDS"):
        target = member["environment"][var]
        source, mode = mounts[target]
        assert (ROOT / source).is_file() and mode == ["ro"]  # the shipped files, read-only
    named = {s.split(":")[0] for svc in doc["services"].values() for s in svc.get("volumes", [])
             if not s.startswith((".", "/"))}
    assert named == set(doc["volumes"]) == {"pgdata", "outbox"}
    assert mounts["/data/outbox"][0] == "outbox"
    pg_mounts = dict(s.split(":")[::-1] for s in doc["services"]["postgres"]["volumes"])
    assert pg_mounts["/var/lib/postgresql/data"] == "pgdata"


def test_dockerfile_prepares_the_outbox_for_the_non_root_user():
    """A named volume mounted on /data/outbox copies the image's directory (owner included): the
    directory must exist in the image, owned by the user the container runs as."""
    text = (ROOT / "Dockerfile").read_text()
    assert "mkdir -p /data/outbox" in text and "chown -R borderwatch:borderwatch /data" in text
    assert re.search(r"^WORKDIR /data$", text, re.M)  # ./outbox of the member is /data/outbox

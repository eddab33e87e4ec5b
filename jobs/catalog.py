"""A local PostgreSQL for the shared catalog (catalog.type: postgres), its data under catalog.server_dir (var/catalog).

    python jobs/catalog.py --conf conf/shared.yaml up     # initdb once, start on catalog.host:catalog.port
    python jobs/catalog.py --conf conf/shared.yaml down   # stop it (the data stays; delete the folder to forget)

The server listens on catalog.host (127.0.0.1) and catalog.port only, with password authentication (scram-sha-256)
for catalog.user; the password comes from catalog.password_env, or the secret file (catalog.password_file, by
default <server_dir>/password), which `up` writes with a random password when neither exists. Debian's
`postgresql` package provides the server (initdb, pg_ctl); run as root, the server runs as the `postgres` user.
"""
from __future__ import annotations

import argparse
import glob
import os
import secrets
import shutil
import subprocess
import sys
import time

from _common import add_version, load_config

from bold_spark.errors import BoldSparkError
from bold_spark.session import read_secret


def server_binary(name: str) -> str:
    """initdb / pg_ctl from the PATH, else from Debian's versioned folder (its package does not put them on it)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        raise SystemExit(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user the Debian package creates."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _password(catalog) -> str:
    """The catalog password from its variable or file; a new random one in the file when there is neither."""
    if not os.environ.get(catalog.password_env) and not catalog.password_path().exists():
        path = catalog.password_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
        print(f"catalog password written to {path} (mode 600)")
    return read_secret(catalog.password_env, catalog.password_path(), "catalog password",
                       f"{catalog.file}: catalog")


def _run(what: str, command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}")


def _psql(catalog, password: str, sql: str) -> str:
    env = dict(os.environ, PGPASSWORD=password)
    result = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-h", catalog.host, "-p", str(catalog.port), "-U",
                             catalog.user, "-d", "postgres", "-c", sql], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"psql failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout.strip()


def up(catalog) -> int:
    password = _password(catalog)
    server_dir, data = catalog.server_dir, catalog.server_dir / "postgres"
    server_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(server_dir, "postgres")
        reach = subprocess.run(_as_server_user(["test", "-w", str(server_dir)]))
        if reach.returncode != 0:
            raise SystemExit(f"the postgres user cannot write {server_dir}: a folder above it is closed to other "
                             "users; set catalog.server_dir to a folder it can reach")
    if not (data / "PG_VERSION").exists():
        pwfile = server_dir / ".initdb-password"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        try:
            _run("initdb", _as_server_user([server_binary("initdb"), "-D", str(data), "-U", catalog.user,
                                            f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                                            "--no-locale"]))
        finally:
            pwfile.unlink(missing_ok=True)
    log = server_dir / "postgres.log"
    options = (f"-c listen_addresses={catalog.host} -p {catalog.port} -c unix_socket_directories={server_dir} "
               "-c max_connections=200")
    pg_ctl = server_binary("pg_ctl")
    if subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "status"]), capture_output=True).returncode == 0:
        print("catalog: the local PostgreSQL is running already")
    else:
        _run("pg_ctl start", _as_server_user([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t",
                                              "120", "start"]))
    if _psql(catalog, password, f"select 1 from pg_database where datname = '{catalog.database}'") != "1":
        _psql(catalog, password, f"create database {catalog.database}")
    print(f"catalog: PostgreSQL on {catalog.host}:{catalog.port}, database {catalog.database}, data in {data}")
    return 0


def down(catalog) -> int:
    data = catalog.server_dir / "postgres"
    if not (data / "postmaster.pid").exists():
        print("catalog: no local PostgreSQL running")
        return 0
    pg_ctl = server_binary("pg_ctl")
    _run("pg_ctl stop", _as_server_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "120", "stop"]))
    print("catalog: PostgreSQL stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = add_version(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--conf", default="conf/shared.yaml")
    p.add_argument("command", choices=("up", "down"))
    args = p.parse_args(argv)
    try:
        catalog = load_config(args.conf).spark.catalog
    except BoldSparkError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if catalog.type != "postgres":
        raise SystemExit(f"{args.conf}: catalog.type: is {catalog.type!r}; make catalog-up serves catalog.type "
                         "postgres (conf/shared.yaml)")
    started = time.monotonic()
    status = up(catalog) if args.command == "up" else down(catalog)
    print(f"({time.monotonic() - started:.1f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())

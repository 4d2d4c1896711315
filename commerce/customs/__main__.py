"""`python -m commerce.customs import-tariffs [FILE]`: load a duty/VAT table (default: the
shipped one, commerce/customs/data/tariffs.csv) into the database named by the settings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commerce.customs.errors import CustomsInvalidError
from commerce.customs.tariffs import SHIPPED, import_rows, parse_rows
from tracehub import db
from tracehub.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m commerce.customs")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("import-tariffs", help="insert or replace duty/VAT rows")
    load.add_argument("file", nargs="?", default=str(SHIPPED), help="CSV (default: shipped)")
    load.add_argument("--schema", help="database schema (default: the connection's)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        rates = parse_rows(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, CustomsInvalidError) as exc:
        print(f"import-tariffs: {exc}", file=sys.stderr)
        return 2
    extra = {"options": f"-c search_path={args.schema}"} if args.schema else {}
    with db.connect(settings.postgres_dsn, **extra) as conn:
        count = import_rows(conn, rates)
        conn.commit()
    print(f"import-tariffs: {count} rows from {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

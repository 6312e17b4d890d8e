"""Finding the migrations: an installed package without its SQL fails instead of 'up to date'."""

from __future__ import annotations

import pytest

from batchcore import migrate


def test_the_shipped_migrations_are_found_in_order():
    versions = [m.version for m in migrate.discover()]
    assert versions and versions == sorted(versions)
    assert versions[0] == "0001"


def test_no_migrations_at_all_is_an_error_naming_where_it_looked(tmp_path):
    (tmp_path / "README.txt").write_text("not a migration")
    with pytest.raises(migrate.MigrationError, match="no migrations found in") as caught:
        migrate.discover(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_a_missing_folder_is_the_same_error(tmp_path):
    with pytest.raises(migrate.MigrationError, match=f"no migrations found in {tmp_path}/absent"):
        migrate.discover(tmp_path / "absent")


def test_the_command_fails_before_connecting_when_it_finds_none(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    # Unreachable on purpose: the command must stop before it tries the database.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    assert migrate.main([]) == 1
    err = capsys.readouterr().err
    assert f"no migrations found in {tmp_path}" in err
    assert "applied" not in err


def test_help_describes_the_command_and_touches_nothing(capsys):
    with pytest.raises(SystemExit) as caught:
        migrate.main(["--help"])
    assert caught.value.code == 0
    assert "DATABASE_URL" in capsys.readouterr().out

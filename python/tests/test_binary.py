"""Finding the litekeep binary: LITEKEEP first and only, else PATH."""

import os
import stat

import pytest

from litekeep_client import LitekeepNotFound, find_litekeep


def make_program(directory, name="litekeep", executable=True):
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / name
    program.write_text("#!/bin/sh\nexit 0\n")
    mode = stat.S_IRUSR | stat.S_IWUSR | (stat.S_IXUSR if executable else 0)
    program.chmod(mode)
    return program


def test_found_on_path(tmp_path):
    program = make_program(tmp_path / "bin")
    env = {"PATH": f"{tmp_path / 'empty'}{os.pathsep}{tmp_path / 'bin'}"}
    assert find_litekeep(env) == str(program)


def test_litekeep_variable_wins_over_path(tmp_path):
    make_program(tmp_path / "bin")
    chosen = make_program(tmp_path / "build", "litekeep-dev")
    env = {"PATH": str(tmp_path / "bin"), "LITEKEEP": str(chosen)}
    assert find_litekeep(env) == str(chosen)


def test_litekeep_variable_may_name_a_program_on_path(tmp_path):
    program = make_program(tmp_path / "bin", "litekeep-1.2")
    env = {"PATH": str(tmp_path / "bin"), "LITEKEEP": "litekeep-1.2"}
    assert find_litekeep(env) == str(program)


def test_a_relative_litekeep_variable_becomes_absolute(tmp_path, monkeypatch):
    program = make_program(tmp_path / "bin")
    monkeypatch.chdir(tmp_path)
    assert find_litekeep({"PATH": "", "LITEKEEP": os.path.join("bin", "litekeep")}) == str(program)


@pytest.mark.parametrize(
    "setup, why",
    [
        (lambda d: d / "missing", "no such file"),
        (lambda d: make_program(d, executable=False), "it is not executable"),
        (lambda d: d, "it is a directory"),
    ],
)
def test_a_wrong_litekeep_variable_is_an_error_not_a_fallback(tmp_path, setup, why):
    make_program(tmp_path / "bin")  # a good one on PATH must not be used instead
    named = setup(tmp_path / "named")
    (tmp_path / "named").mkdir(exist_ok=True)
    env = {"PATH": str(tmp_path / "bin"), "LITEKEEP": str(named)}
    with pytest.raises(LitekeepNotFound) as caught:
        find_litekeep(env)
    assert caught.value.where == f"LITEKEEP={named}"
    assert why in str(caught.value)
    assert "point LITEKEEP at the litekeep binary" in str(caught.value)


def test_not_on_path_says_how_to_build_it(tmp_path):
    with pytest.raises(LitekeepNotFound) as caught:
        find_litekeep({"PATH": str(tmp_path)})
    assert "PATH has none" in str(caught.value)
    assert "cargo build --release --features duckdb" in str(caught.value)
    assert "scripts/duckdb-env" in str(caught.value)


def test_reads_the_process_environment_by_default(tmp_path, monkeypatch):
    program = make_program(tmp_path / "bin")
    monkeypatch.setenv("LITEKEEP", str(program))
    assert find_litekeep() == str(program)

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from loyalnest.allocator import SYSTEM_ENV, allocator_env, find_jemalloc


@pytest.fixture
def jemalloc(tmp_path: Path) -> Path:
    library = tmp_path / "lib" / "libjemalloc.so.2"
    library.parent.mkdir()
    library.write_bytes(b"\x7fELF")
    return library


def test_jemalloc_is_preloaded_when_found(jemalloc: Path, tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "libjemalloc.so.2"

    env = allocator_env("jemalloc", {}, candidates=[missing, jemalloc])

    assert env == {"LD_PRELOAD": str(jemalloc)}


def test_a_preload_already_there_is_kept_after_jemalloc(jemalloc: Path) -> None:
    env = allocator_env("jemalloc", {"LD_PRELOAD": "/opt/trace.so"}, candidates=[jemalloc])

    assert env == {"LD_PRELOAD": f"{jemalloc} /opt/trace.so"}


def test_without_jemalloc_flows_use_glibc_with_two_arenas_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        env = allocator_env("jemalloc", {}, candidates=[tmp_path / "libjemalloc.so.2"])

    assert env == SYSTEM_ENV == {"MALLOC_ARENA_MAX": "2"}
    assert "libjemalloc2" in caplog.text


def test_system_never_preloads(jemalloc: Path) -> None:
    assert allocator_env("system", {"LD_PRELOAD": "/opt/trace.so"}, [jemalloc]) == SYSTEM_ENV


def test_an_unknown_allocator_is_refused() -> None:
    with pytest.raises(ValueError, match="FLOW_ALLOCATOR must be one of jemalloc, system"):
        allocator_env("tcmalloc", {})


def test_find_jemalloc_takes_the_first_existing_path(jemalloc: Path, tmp_path: Path) -> None:
    assert find_jemalloc([tmp_path / "nope.so", jemalloc]) == jemalloc
    assert find_jemalloc([tmp_path / "nope.so"]) is None

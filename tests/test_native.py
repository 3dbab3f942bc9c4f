"""The Python <-> C bridge: the hand-written cffi CDEF equals csrc/vecdb.h, status codes map to
the right exceptions, and the VECDB_SIMD environment override works (checked in subprocesses,
since the level is chosen once at import)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vecdb import _ffi_build, _native
from vecdb._core import ffi, lib
from vecdb.errors import InvalidArgumentError, NativeError, VecDBError

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "csrc" / "vecdb.h"


def parse_declarations(text: str):
    """(defines {name: value}, structs {name: fields}, prototypes set) of C declarations."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    defines, body = {}, []
    for line in text.splitlines():
        m = re.match(r"\s*#\s*define\s+(\w+)(?:\s+(.*?))?\s*$", line)
        if m:
            if m.group(2):  # valueless defines are include guards
                defines[m.group(1)] = m.group(2)
        elif not line.strip().startswith("#"):
            body.append(line)

    def norm(s: str) -> str:
        s = re.sub(r"\s+", " ", s).strip()
        return re.sub(r"\s*([*(),;{}])\s*", r"\1", s)

    body = " ".join(body)
    structs = {}
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", body, flags=re.S):
        fields = tuple(norm(f) for f in m.group(2).split(";") if f.strip())
        structs[(m.group(1), m.group(3))] = fields
    body = re.sub(r"typedef\s+struct\s+\w+\s*\{.*?\}\s*\w+\s*;", " ", body, flags=re.S)
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s+(\w+)\s*;", body):  # opaque types
        structs[(m.group(1), m.group(2))] = None
    body = re.sub(r"typedef\s+struct\s+\w+\s+\w+\s*;", " ", body)
    prototypes = {norm(p) for p in body.split(";") if p.strip()}
    return defines, structs, prototypes


def test_cdef_declares_exactly_the_header():
    h_defines, h_structs, h_protos = parse_declarations(HEADER.read_text())
    c_defines, c_structs, c_protos = parse_declarations(_ffi_build.CDEF)
    assert c_defines == h_defines
    assert c_structs == h_structs
    assert c_protos == h_protos
    # the parse found what vecdb.h is known to hold (guards against a parser that sees nothing)
    assert {"VDB_OK", "VDB_ERR_UNSUPPORTED", "VDB_METRIC_COSINE", "VDB_SIMD_AVX512"} <= set(h_defines)
    assert ("vdb_rows", "vdb_rows") in h_structs
    assert len(h_protos) == 26 and all(p.startswith("int vdb_") or "vdb_strerror" in p
                                      for p in h_protos)


def test_compiled_module_matches_cdef():
    defines, _, protos = parse_declarations(_ffi_build.CDEF)
    for name, value in defines.items():
        assert getattr(lib, name) == int(value)
    for proto in protos:
        name = re.search(r"(vdb_\w+)\(", proto).group(1)
        assert callable(getattr(lib, name))


def test_strerror_covers_every_status():
    messages = {rc: ffi.string(lib.vdb_strerror(rc)).decode()
                for rc in (lib.VDB_OK, lib.VDB_ERR_INVALID, lib.VDB_ERR_NOMEM,
                           lib.VDB_ERR_THREAD, lib.VDB_ERR_UNSUPPORTED, -999)}
    assert len(set(messages.values())) == len(messages)  # all distinct, none empty
    assert all(messages.values())


@pytest.mark.parametrize("rc, exc, builtin", [
    (lib.VDB_ERR_INVALID, InvalidArgumentError, ValueError),
    (lib.VDB_ERR_UNSUPPORTED, InvalidArgumentError, ValueError),
    (lib.VDB_ERR_NOMEM, NativeError, MemoryError),
    (lib.VDB_ERR_THREAD, NativeError, RuntimeError),
    (-999, NativeError, RuntimeError),
])
def test_check_maps_status_to_exception(rc, exc, builtin):
    with pytest.raises(exc) as info:
        _native._check(rc, "some_call")
    assert isinstance(info.value, builtin) and isinstance(info.value, VecDBError)
    assert "some_call" in str(info.value)
    _native._check(lib.VDB_OK, "fine")  # no exception


def test_c_refuses_levels_the_cpu_lacks():
    best = ffi.new("int *")
    assert lib.vdb_simd_best(best) == lib.VDB_OK
    assert _native.simd_supported() == _native.SIMD_LEVELS[: best[0] + 1]
    q = ffi.new("float[]", [1.0, 2.0])
    out = ffi.new("float[]", 1)
    for level in range(best[0] + 1, 3):
        assert lib.vdb_distances(level, 0, q, q, 1, 2, out) == lib.VDB_ERR_UNSUPPORTED
    assert lib.vdb_distances(7, 0, q, q, 1, 2, out) == lib.VDB_ERR_INVALID
    assert lib.vdb_distances(0, 9, q, q, 1, 2, out) == lib.VDB_ERR_INVALID
    assert lib.vdb_distances(0, 0, q, q, 1, 0, out) == lib.VDB_ERR_INVALID
    assert lib.vdb_distances(0, 0, ffi.NULL, q, 1, 2, out) == lib.VDB_ERR_INVALID
    assert lib.vdb_simd_best(ffi.NULL) == lib.VDB_ERR_INVALID


def test_default_level_is_the_best_without_env():
    if os.environ.get("VECDB_SIMD"):
        assert _native.SIMD == os.environ["VECDB_SIMD"].strip().lower()
    else:
        assert _native.SIMD == _native.simd_supported()[-1]


def run_with_simd(value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VECDB_SIMD=value)
    code = "from vecdb import _native; print(_native.SIMD)"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("level", _native.simd_supported())
def test_env_selects_a_supported_level(level):
    result = run_with_simd(level)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == level


def test_env_unknown_level_fails_at_import():
    result = run_with_simd("sse9000")
    assert result.returncode != 0
    assert "InvalidArgumentError" in result.stderr
    assert "VECDB_SIMD" in result.stderr and "sse9000" in result.stderr


def test_env_unsupported_level_fails_at_import():
    unsupported = [s for s in _native.SIMD_LEVELS if s not in _native.simd_supported()]
    if not unsupported:
        pytest.skip("this CPU supports every SIMD level, so none can be refused")
    result = run_with_simd(unsupported[-1])
    assert result.returncode != 0
    assert "VECDB_SIMD" in result.stderr and unsupported[-1] in result.stderr
    assert "not supported" in result.stderr

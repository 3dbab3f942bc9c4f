"""SQ8 (csrc/sq.c, sq_avx2.c, sq_avx512.c) through vecdb._native: training, encode / decode
round trip, the code layout, ADC distances against the decoded rows (within a derived bound)
and against an exact numpy model of the documented formula (bit for bit, on every SIMD level
this CPU runs, which checks that the integer dot kernels are exact)."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb import _native
from vecdb.errors import InvalidArgumentError

LEVELS = _native.simd_supported()
METRICS = ("l2", "ip", "cosine")
QMAX = 16383
EPS32 = 2.0 ** -24  # float32 unit roundoff


def data(dim, n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 2.0, (n, dim)).astype(np.float32)
    return x, rng.normal(0, 1.5, dim).astype(np.float32)


def split(params, dim):
    return params[:dim], params[dim:]


def decoded_norms(dec):
    """|x^|^2 as the C code stores it: a double sum in d order, rounded to float32."""
    return np.cumsum(dec.astype(np.float64) ** 2, axis=1)[:, -1].astype(np.float32)


def adc_model(params, q, codes, metric):
    """The ADC distance of vecdb.h, step by step in float64 as sq.c computes it."""
    dim = q.shape[0]
    vmin, step = (p.astype(np.float64) for p in split(params, dim))
    qd = q.astype(np.float64)
    w = np.abs(qd * step)
    maxw = w.max()
    base = np.cumsum(qd * vmin)[-1]
    qn2 = np.cumsum(qd * qd)[-1]
    if maxw > 0 and np.isfinite(maxw):
        r = qd * step * (QMAX / maxw)
        qi = np.minimum(np.floor(np.abs(r) + 0.5), QMAX) * np.sign(r)
        scale = maxw / QMAX
    else:
        qi, scale = np.zeros(dim), 0.0
    idot = codes[:, :dim].astype(np.int64) @ qi.astype(np.int64)
    dot = base + idot.astype(np.float64) * scale
    if metric == "ip":
        return (-dot).astype(np.float32), scale
    norm = codes[:, dim:].copy().view(np.float32)[:, 0].astype(np.float64)
    if metric == "l2":
        return (qn2 - 2.0 * dot + norm).astype(np.float32), scale
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = 1.0 - dot / (np.sqrt(qn2) * np.sqrt(norm))
    return np.where((qn2 > 0) & (norm > 0), cos, 1.0).astype(np.float32), scale


def test_train_is_min_and_step():
    x, _ = data(7)
    params = _native.sq8_train(x)
    vmin, step = split(params, 7)
    np.testing.assert_array_equal(vmin, x.min(0))
    expect = ((x.max(0).astype(np.float64) - x.min(0)) / 255).astype(np.float32)
    np.testing.assert_array_equal(step, expect)


@pytest.mark.parametrize("dim", [1, 17, 384])
def test_round_trip_error_is_at_most_half_a_step(dim):
    x, _ = data(dim, seed=dim)
    params = _native.sq8_train(x)
    vmin, step = split(params, dim)
    q = _native.Quantizer("sq8", "l2", dim, params)
    codes, errors = q.encode(x, errors=True)
    dec = q.decode(codes)
    # rounding to the nearest level plus a few float32 roundings of the values involved
    slack = 4 * EPS32 * (np.abs(x) + np.abs(vmin) + 255 * step)
    assert (np.abs(dec - x) <= step / 2 + slack).all()
    np.testing.assert_allclose(errors, ((dec.astype(np.float64) - x) ** 2).sum(1), rtol=1e-5)
    # the decoded value is exactly vmin + c * step in float32
    np.testing.assert_array_equal(dec, vmin + codes[:, :dim].astype(np.float32) * step)


def test_code_layout():
    x, _ = data(9)
    params = _native.sq8_train(x)
    for metric, size in (("l2", 13), ("cosine", 13), ("ip", 9)):
        q = _native.Quantizer("sq8", metric, 9, params)
        assert q.code_size == size
        codes = q.encode(x)
        assert codes.shape == (300, size) and codes.dtype == np.uint8
        # the min of every dimension codes to 0, its max to 255
        assert (codes[:, :9].min(0) == 0).all() and (codes[:, :9].max(0) == 255).all()
        if size == 13:  # trailing float32 norm of the decoded row
            stored = codes[:, 9:].copy().view(np.float32)[:, 0]
            np.testing.assert_array_equal(stored, decoded_norms(q.decode(codes)))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dim", [1, 15, 16, 17, 33, 100, 384])
def test_adc_equals_decoded_distances_within_the_rounding_bound(metric, dim):
    x, query = data(dim, seed=dim + 1)
    params = _native.sq8_train(x)
    q = _native.Quantizer("sq8", metric, dim, params)
    codes = q.encode(x)
    dec = q.decode(codes).astype(np.float64)
    qd = query.astype(np.float64)
    got = q.distances(query, codes).astype(np.float64)

    # Rounding qi_d to an integer moves it by at most 1/2, i.e. the scaled query by at most
    # max|w| / 16383 / 2 per dimension, so the dot product moves by at most that times
    # sum_d c_d (the codes are the other factor). The rest is float32: the stored norm and
    # the final result are rounded once each (and the double arithmetic is far finer).
    step = params[dim:].astype(np.float64)
    e_dot = np.abs(qd * step).max() / QMAX / 2 * codes[:, :dim].sum(1)
    dot = dec @ qd
    norm = (dec * dec).sum(1)
    if metric == "l2":
        want = (qd @ qd) - 2 * dot + norm
        tol = 2 * e_dot + 2 * EPS32 * (norm + np.abs(want))
    elif metric == "ip":
        want = -dot
        tol = e_dot + 2 * EPS32 * np.abs(want)
    else:
        denom = np.sqrt(qd @ qd) * np.sqrt(norm)
        want = 1 - dot / denom
        tol = e_dot / denom + 4 * EPS32 * (1 + np.abs(want))
    assert (np.abs(got - want) <= tol + 1e-30).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dim", [1, 15, 16, 17, 31, 32, 33, 100, 384, 2100])
def test_adc_is_the_documented_formula_bit_for_bit_on_every_level(metric, dim):
    x, query = data(dim, n=120, seed=3 * dim)
    params = _native.sq8_train(x)
    q = _native.Quantizer("sq8", metric, dim, params)
    codes = q.encode(x)
    want, _ = adc_model(params, query, codes, metric)
    for simd in LEVELS:
        np.testing.assert_array_equal(q.encode(x, simd=simd), codes)
        np.testing.assert_array_equal(q.distances(query, codes, simd=simd), want)


def test_integer_dot_extremes_are_exact():
    # codes of 255 and |qi| = 16383 everywhere, over more than one 2048-dim int32 block:
    # the dot product (2100 * 16383 * 255 ~ 8.8e9) only fits int64
    dim = 2100
    x = np.zeros((4, dim), np.float32)
    x[1] = 1.0
    x[2, ::2] = 1.0
    x[3, : dim // 2] = 1.0
    params = _native.sq8_train(x)
    for metric in METRICS:
        q = _native.Quantizer("sq8", metric, dim, params)
        codes = q.encode(x)
        assert codes[1, :dim].min() == 255
        for query in (np.ones(dim, np.float32), -np.ones(dim, np.float32),
                      np.where(np.arange(dim) % 3 == 0, 1.0, -1.0).astype(np.float32)):
            want, _ = adc_model(params, query, codes, metric)
            for simd in LEVELS:
                np.testing.assert_array_equal(q.distances(query, codes, simd=simd), want)
        np.testing.assert_allclose(
            _native.Quantizer("sq8", "ip", dim, params).distances(np.ones(dim, np.float32),
                                                                  codes[:, :dim].copy()),
            -x.sum(1), rtol=1e-6)


def test_constant_dimensions_have_step_zero():
    x, query = data(6, seed=5)
    x[:, 1] = 7.25
    x[:, 4] = -3.0
    params = _native.sq8_train(x)
    vmin, step = split(params, 6)
    assert step[1] == 0 and step[4] == 0 and vmin[1] == 7.25 and vmin[4] == -3.0
    for metric in METRICS:
        q = _native.Quantizer("sq8", metric, 6, params)
        codes = q.encode(x)
        assert (codes[:, [1, 4]] == 0).all()
        dec = q.decode(codes)
        np.testing.assert_array_equal(dec[:, [1, 4]], x[:, [1, 4]])
        got = q.distances(query, codes)
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(got, adc_model(params, query, codes, metric)[0])
    # every dimension constant: all codes 0, max|w| = 0, the query's dot is q.vmin exactly
    flat = np.tile(np.float32([1, 2, 3]), (5, 1))
    q = _native.Quantizer("sq8", "ip", 3, _native.sq8_train(flat))
    codes = q.encode(flat)
    assert (codes == 0).all()
    np.testing.assert_array_equal(q.distances(np.float32([1, 1, 1]), codes), np.full(5, -6.0))


def test_zero_query_and_zero_rows_under_cosine():
    x = np.zeros((3, 4), np.float32)
    x[1] = [1, 2, 3, 4]
    params = _native.sq8_train(x)
    q = _native.Quantizer("sq8", "cosine", 4, params)
    codes = q.encode(x)
    assert q.distances(np.zeros(4, np.float32), codes).tolist() == [1.0, 1.0, 1.0]
    d = q.distances(np.float32([1, 2, 3, 4]), codes)
    assert d[0] == 1.0 and abs(d[1]) < 1e-3


def test_values_outside_the_trained_range_clamp():
    x, _ = data(4, seed=8)
    params = _native.sq8_train(x)
    q = _native.Quantizer("sq8", "l2", 4, params)
    far = np.vstack([x.min(0) - 100, x.max(0) + 100]).astype(np.float32)
    codes = q.encode(far)
    assert (codes[0, :4] == 0).all() and (codes[1, :4] == 255).all()


def test_bad_inputs():
    x, query = data(4)
    params = _native.sq8_train(x)
    bad = x.copy()
    bad[5, 2] = np.nan
    with pytest.raises(InvalidArgumentError):
        _native.sq8_train(bad)
    bad[5, 2] = np.inf
    with pytest.raises(InvalidArgumentError):
        _native.sq8_train(bad)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.sq8_train(x.astype(np.float64))
    with pytest.raises(InvalidArgumentError, match=r"^params:"):
        _native.Quantizer("sq8", "l2", 4, params[:7])
    negative = params.copy()
    negative[5] = -1
    with pytest.raises(InvalidArgumentError):
        _native.Quantizer("sq8", "l2", 4, negative)
    with pytest.raises(InvalidArgumentError, match=r"^metric:"):
        _native.Quantizer("sq8", "hamming", 4, params)
    q = _native.Quantizer("sq8", "l2", 4, params)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        q.encode(x[:, :3].copy())
    with pytest.raises(InvalidArgumentError, match=r"^query:"):
        q.distances(query[:3].copy(), q.encode(x))
    with pytest.raises(InvalidArgumentError, match=r"^codes:"):
        q.distances(query, q.encode(x)[:, :4].copy())
    with pytest.raises(InvalidArgumentError, match=r"^codes:"):
        q.decode(q.encode(x).astype(np.int16))

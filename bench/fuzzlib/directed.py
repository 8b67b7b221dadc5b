"""Directed cases: every hostile value of issue 14 at least once, before the random cases.

A random campaign of a few hundred files may miss a value that matters (one NaN slope among
thousands of draws); these cases put each hostile header value on one slice inside the liver
of a synthetic study, the sizes that allocate memory (Rows/Columns 65535 and 20000) on a whole
compressed series, and — for predict — the cases of issue 14 that produced a result silently.
"""

from __future__ import annotations

from bench.fuzzlib.mutations import (
    DS_VALUES,
    HTML_VALUES,
    IS_VALUES,
    US_VALUES,
    Mutation,
    SeedInfo,
)


def _slice(seed: SeedInfo, phase: str = "portal") -> tuple[str, ...]:
    """The slice with the most liver (else one two thirds down the series)."""
    if phase in seed.focus:
        return (seed.focus[phase],)
    files = seed.phases.get(phase) or seed.files
    return (files[(2 * len(files)) // 3],)


def _series(seed: SeedInfo, phase: str = "portal") -> tuple[str, ...]:
    return tuple(seed.phases.get(phase) or seed.files)


def directed_scan(seeds: list[SeedInfo]) -> list[tuple[SeedInfo, list[Mutation]]]:
    """Each DS/IS value on one slice, the odd sizes and bits on one slice of a compressed seed,
    Rows/Columns 65535/20000 on a whole compressed series, HTML in every shown text tag."""
    syn = [s for s in seeds if s.predictable]
    if not syn:
        return []
    plain = syn[0]
    compressed = syn[1:] or syn
    out: list[tuple[SeedInfo, list[Mutation]]] = []
    for key, values in sorted(DS_VALUES.items()):
        for v in values:
            out.append((plain, [Mutation("set_ds", _slice(plain), {"keyword": key, "value": v})]))
    for key, ivalues in sorted(IS_VALUES.items()):
        for v in ivalues:
            out.append((plain, [Mutation("set_is", _slice(plain), {"keyword": key, "value": v})]))
    for k, (key, uvalues) in enumerate(sorted(US_VALUES.items())):
        seed = compressed[k % len(compressed)]
        for u in uvalues:
            out.append((seed, [Mutation("set_us", _slice(seed), {"keyword": key, "value": u})]))
    for seed in compressed:
        for rows, cols in ((65535, 65535), (20000, 20000), (65535, 64)):
            out.append((seed, [Mutation("set_us", _series(seed), {"keyword": "Rows", "value": rows}),
                               Mutation("set_us", _series(seed), {"keyword": "Columns",
                                                                  "value": cols})]))
    html = [Mutation("html", _series(plain, ph), {"keyword": key, "value": HTML_VALUES[i % 5]})
            for i, (ph, key) in enumerate([("portal", "SeriesDescription"),
                                           ("plain", "PatientName"), ("arterial", "PatientID"),
                                           ("portal", "StudyDescription")])]
    out.append((plain, html))
    return out


def directed_predict(seeds: list[SeedInfo]) -> list[tuple[SeedInfo, list[Mutation]]]:
    """The predict cases of issue 14, most telling first (a short run takes the first few)."""
    syn = [s for s in seeds if s.predictable]
    if not syn:
        return []
    s0 = syn[0]
    s1 = syn[1] if len(syn) > 1 else s0

    def ds(seed: SeedInfo, key: str, value: str, series: bool = False) -> Mutation:
        return Mutation("set_ds", _series(seed) if series else _slice(seed),
                        {"keyword": key, "value": value})

    return [
        (s0, [ds(s0, "RescaleSlope", "NaN")]),
        (s0, [ds(s0, "PixelSpacing", "1e308\\1e308")]),
        (s0, [Mutation("copy_series", _series(s0), {"copies": 2, "force_phases": True,
                                                    "confirm": True, "seed": 14})]),
        (s0, [ds(s0, "RescaleIntercept", "1e308")]),
        (s1, [Mutation("set_us", _series(s1), {"keyword": "Rows", "value": 65535}),
              Mutation("set_us", _series(s1), {"keyword": "Columns", "value": 65535})]),
        (s0, [ds(s0, "ImageOrientationPatient", "0\\0\\0\\0\\0\\0")]),
        (s0, [Mutation("copy_series", _series(s0), {"copies": 2, "force_phases": True,
                                                    "confirm": False, "seed": 15})]),
        (s0, [ds(s0, "RescaleSlope", "Inf", series=True)]),
        (s0, [ds(s0, "SliceThickness", "NaN", series=True)]),
        (s0, [Mutation("html", _series(s0), {"keyword": "PatientName", "value": HTML_VALUES[0]}),
              Mutation("html", _series(s0), {"keyword": "SeriesDescription",
                                             "value": HTML_VALUES[1]})]),
    ]
